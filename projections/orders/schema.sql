-- The orders read model's tables, without keys or indexes (keys.sql, indexes.sql): a bulk load
-- builds those once the rows are in.
create table if not exists orders (
  order_id text not null,
  customer_id text not null,
  status text not null,
  total_cents bigint not null,
  lines jsonb not null,
  placed_at timestamptz not null,
  updated_at timestamptz not null,
  cancelled_at timestamptz,
  cancel_reason text not null default '');
create table if not exists order_history (
  order_id text not null,
  revision bigint not null,
  status text not null,
  at timestamptz not null);
