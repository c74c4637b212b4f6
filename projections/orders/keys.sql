-- The tables' primary keys.
alter table orders add primary key (order_id);
alter table order_history add primary key (order_id, revision);
