create table if not exists activity (
  commit_position  bigint not null,
  prepare_position bigint not null,
  stream           text not null,
  revision         bigint not null,
  actor            text not null,
  type             text not null,
  correlation_id   text not null default '',
  recorded_at      timestamptz not null,
  primary key (stream, revision)
);
create index if not exists activity_by_actor on activity (actor, commit_position desc, prepare_position desc);
