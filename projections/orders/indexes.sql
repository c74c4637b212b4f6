-- The read model's secondary indexes.
create index if not exists orders_by_customer on orders (customer_id, placed_at desc, order_id desc);
create index if not exists orders_by_status on orders (status, placed_at desc, order_id desc);
create index if not exists orders_by_time on orders (placed_at desc, order_id desc);
