-- During a bulk load only: the changes each batch leaves to orders placed in earlier batches,
-- applied once at the end with one join (see BulkFinish).
create table if not exists order_changes (
  commit_position bigint not null,
  prepare_position bigint not null,
  order_id text not null,
  status text not null,
  updated_at timestamptz not null,
  cancel boolean not null,
  cancelled_at timestamptz,
  cancel_reason text not null);
