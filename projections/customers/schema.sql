create table if not exists customers (
  customer_id text primary key,
  name text not null,
  email text not null,
  shipping_address jsonb not null,
  active boolean not null default true,
  registered_at timestamptz not null,
  updated_at timestamptz not null);
alter table customers add column if not exists erased boolean not null default false;
-- One row per order: what it adds to its customer's figures. Kept here because a cancellation
-- names only the order.
create table if not exists customer_orders (
  order_id text primary key,
  customer_id text not null,
  total_cents bigint not null,
  cancelled boolean not null default false,
  placed_at timestamptz not null);
create index if not exists customer_orders_by_customer on customer_orders (customer_id);
