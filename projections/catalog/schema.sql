create table if not exists products (
  product_id text primary key,
  sku text not null,
  name text not null,
  price_cents bigint not null,
  on_hand bigint not null default 0,
  reserved bigint not null default 0,
  discontinued boolean not null default false,
  added_at timestamptz not null,
  updated_at timestamptz not null);
create index if not exists products_by_name on products (lower(name) text_pattern_ops, product_id);
create index if not exists products_by_sku on products (sku text_pattern_ops);
create index if not exists products_by_available on products ((on_hand - reserved), product_id) where not discontinued;
