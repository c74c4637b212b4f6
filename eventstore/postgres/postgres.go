// Package postgres is the PostgreSQL event store adapter (pgx/v5).
//
// # Why no subscriber ever skips an event
//
// A sequence number is taken when a row is inserted but becomes visible when its transaction
// commits, so transactions commit out of sequence order. A reader that follows
// "global_position > checkpoint" can pass a row whose transaction commits later and never see it.
//
// Every row therefore records the id of the transaction that wrote it
// (tx_id xid8 default pg_current_xact_id()), and every append takes a shared advisory lock, the
// append fence, before its transaction has an id, holding it until after its commit. Readers take
// only rows whose transaction id is below a horizon that no append still running is below: the
// oldest transaction id of the read's snapshot that holds the fence or has ended since, else the
// snapshot's xmax (appendFence says why this skips nothing). Rows are read in
// (tx_id, global_position) order and that pair is the checkpoint (eventstore.Position's Commit
// and Prepare). An append still running holds the horizon, and with it every reader, until it
// ends; it never causes a skip. A transaction that is not an append holds nothing: a long one in
// another database (a backup, a migration, an analyst's session) does not stall the projectors and
// the saga, as the cluster's oldest transaction (pg_snapshot_xmin) would.
//
// Appends stay concurrent: the fence is shared (appends never wait on each other; only an
// exclusive holder, which nothing takes, would), and the unique index on (stream_id,
// stream_version) serializes writers of one stream and nothing else.
//
// Payloads and metadata are json, not jsonb: stored as the producer wrote them (validated, not
// parsed into a tree) and read back without re-serializing. Nothing queries inside them, and
// turning jsonb back into text was most of PostgreSQL's cost of a replay (3.5 µs of 5 per event,
// timed with psql on pages of 200,000 events).
// Tables made with jsonb columns work as they are.
//
// Event ids are unique within a stream, as in EventStoreDB, not across the log: a global unique
// index on random UUIDs cost about a fifth of the append rate (pgbench, 16 clients) and buys
// nothing the port promises. An append whose ids the stream holds already is a retry.
//
// Rules that keep this correct and fast:
//   - the append is the first write of its transaction: the xid is taken at the first write, and
//     one taken before the fence would let readers pass the transaction, and skip its events;
//   - no NOTIFY in an append transaction: a pending NOTIFY takes a cluster-wide lock at commit and
//     serializes committers. Subscribers in this process are woken in memory after each append;
//     others poll (SubscribeOptions, Options.PollInterval);
//   - an append transaction is short (Append's is one statement; AppendTx's must commit promptly):
//     while it runs it holds the horizon back, and HorizonAge reports how far.
//
// When a read reaches the end of what is committed below the horizon, the page's position moves
// to (horizon, 0): every event at or before it has been seen, whether the filter kept it or not.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgschema"
)

// Options configure a Store.
type Options struct {
	// Schema holds the events table; default "eventstore".
	Schema string
	// PollInterval bounds how long a subscriber waits to see appends made by other processes
	// or transactions committed out of order; default 50ms.
	PollInterval time.Duration
	// FenceAfter is how long the cluster's oldest running transaction may hold readers before
	// they look past it to the appends in flight (see oldestWatch); default HeldAfter. Negative:
	// always look at the appends in flight.
	FenceAfter time.Duration
	// AppendGroups is how many group appends (see Append) may run at once; default 2. 1 groups
	// the most; more keep one slow statement from holding every other writer of the process.
	AppendGroups int
	// TailEvents is how many of the latest events the store keeps in memory for its
	// subscriptions to share (eventstore.Tail): they read the end of the log once between them.
	// Default 10,000; negative: each subscription reads the store itself.
	TailEvents int
}

// Store is an eventstore.Store over PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	wake   eventstore.Signal
	sql    statements
	oldest oldestWatch
	group  appendGroup
	tail   *eventstore.Tail // nil: subscriptions read on their own
}

var _ eventstore.Store = (*Store)(nil)

type statements struct {
	appendExact, appendExactOne, appendHead, appendMany, findIDs, head, readFwd, readBack, readAll, readAllOldest, horizonAge, byCorrelation string
	// generic and genericRead go before the group append and the reads of $all (generic.go).
	generic, genericRead string
}

// New returns a store over pool. Call Migrate once before the first append.
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.Schema == "" {
		opts.Schema = "eventstore"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.FenceAfter == 0 {
		opts.FenceAfter = HeldAfter
	}
	if opts.AppendGroups <= 0 {
		opts.AppendGroups = 2
	}
	t := pgx.Identifier{opts.Schema, "events"}.Sanitize()
	cols := "tx_id::text, global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at"
	fence := appendFence(opts.Schema)
	// After a horizon (h.x, with the cluster's oldest running transaction h.m and next one h.n),
	// the page's rows. A lateral subquery runs as a nested loop under its one outer row, so rows
	// keep its order (scanAll checks): an outer ORDER BY sorted every page again, on disk for
	// pages of 10,000. $6..$8: a partitioned reader's share (eventstore.Partition: its parts, of
	// how many, by order or by stream), computed as eventstore.PartitionOf does.
	readAllRows := `
select h.x::text || ' ' || h.m::text || ' ' || h.n::text, e.tx_id::text, e.global_position, e.stream_id, e.stream_version, e.event_id, e.event_type, e.data, e.metadata, e.recorded_at
  from h left join lateral (
  select * from ` + t + `
   where (tx_id, global_position) > ($1::text::xid8, $2::bigint)
     and tx_id < h.x
     and left(stream_id, 1) <> '$'
     and (cardinality($3::text[]) = 0 or event_type ^@ any($3::text[]))
     and (cardinality($4::text[]) = 0 or stream_id ^@ any($4::text[]))
     and (cardinality($6::int[]) = 0 or ('x' || left(md5(case when $8::bool then coalesce(nullif(data->>'orderId', ''), stream_id) else stream_id end), 8))::bit(32)::bigint % $7::int = any($6::int[]))
   order by tx_id, global_position
   limit $5) e on true`
	if opts.TailEvents == 0 {
		opts.TailEvents = 10_000
	}
	s := &Store{pool: pool, opts: opts, sql: statements{
		generic: genericSQL, genericRead: genericReadSQL,
		// Exact revisions (and NoStream) need no head: the unique index on (stream_id,
		// stream_version) refuses revision n+1 if it exists, and the exists() refuses a stream
		// shorter than n. One cheap statement, one round trip.
		//
		// Every append first takes the fence (see appendFence): a rows' join with it produces
		// nothing before the lock is held, and the transaction id is taken at the first row.
		appendExact: fence.with + `insert into ` + t + ` (stream_id, stream_version, event_id, event_type, data, metadata)
select $1, $6::bigint + e.ord, e.id, e.typ, e.data, e.meta
  from fence, unnest($2::uuid[], $3::text[], $4::json[], $5::json[]) with ordinality as e(id, typ, data, meta, ord)
 where $6::bigint = -1 or exists (select 1 from ` + t + ` where stream_id = $1 and stream_version = $6::bigint)
returning tx_id::text, global_position, stream_version`,
		appendExactOne: fence.with + `insert into ` + t + ` (stream_id, stream_version, event_id, event_type, data, metadata)
select $1, $6::bigint + 1, $2::uuid, $3::text, $4::json, $5::json
  from fence
 where $6::bigint = -1 or exists (select 1 from ` + t + ` where stream_id = $1 and stream_version = $6::bigint)
returning tx_id::text, global_position, stream_version`,
		// Any and StreamExists append after the current head. Any first checks that the stream
		// does not hold these ids yet: that is its only way to see a retry.
		appendHead: fence.with + `insert into ` + t + ` (stream_id, stream_version, event_id, event_type, data, metadata)
select $1, h.v + e.ord, e.id, e.typ, e.data, e.meta
  from fence, (select coalesce(max(stream_version), -1) as v from ` + t + ` where stream_id = $1) h,
       unnest($2::uuid[], $3::text[], $4::json[], $5::json[]) with ordinality as e(id, typ, data, meta, ord)
 where case when $6::bigint = -2 then h.v >= 0
            else not exists (select 1 from ` + t + ` where stream_id = $1 and event_id = any($2::uuid[])) end
returning tx_id::text, global_position, stream_version`,
		// Several streams' appends at exact revisions in one statement (a group: see Append).
		// Each stream is checked on its own, and only the streams whose check passes append: a
		// stream left out of what it returns failed its expectation, and is answered alone. Rows
		// insert in the order of $3..$8, so each stream's events take increasing positions.
		//
		// Each stream's head is a correlated lookup of its last revision (ORDER BY ... LIMIT 1):
		// a subquery the planner cannot turn into a join, so its plan is the index's whatever the
		// table's size was when the statement was first planned. (With EXISTS and NOT EXISTS
		// the generic plan made on a young table hashed the whole table twice per append, and
		// kept doing so as the log grew.) Revisions of a stream have no gaps, so its last one
		// equals the expected revision exactly when the expected exists and the next does not.
		// $9..$12 are the appends' conditions (AppendIf), a row per event type ('': any): the
		// stream whose append depends on one, the other stream, the revision after which it must
		// have no event of that type; an index range of the stream's newest events (a scalar
		// subquery with a LIMIT, which no plan turns into a join over the log, as EXISTS was).
		appendMany: fence.with + `, a as materialized (
  select a.stream, a.expected from fence, unnest($1::text[], $2::bigint[]) as a(stream, expected)
   where a.expected = coalesce((select x.stream_version from ` + t + ` x where x.stream_id = a.stream
                                 order by x.stream_version desc limit 1), -1)
     and not exists (select 1 from unnest($9::text[], $10::text[], $11::bigint[], $12::text[]) as c(owner, stream, expected, typ)
                      where c.owner = a.stream
                        and coalesce((select true from ` + t + ` y where y.stream_id = c.stream and y.stream_version > c.expected
                                         and (c.typ = '' or y.event_type = c.typ) limit 1), false)))
insert into ` + t + ` (stream_id, stream_version, event_id, event_type, data, metadata)
select e.stream, a.expected + e.ord, e.id, e.typ, e.data, e.meta
  from unnest($3::text[], $4::bigint[], $5::uuid[], $6::text[], $7::json[], $8::json[]) with ordinality as e(stream, ord, id, typ, data, meta, n)
  join a on a.stream = e.stream
 order by e.n
returning stream_id, tx_id::text, global_position, stream_version`,
		findIDs:  `select event_id, stream_version, tx_id::text, global_position from ` + t + ` where stream_id = $1 and event_id = any($2::uuid[]) order by stream_version`,
		head:     `select coalesce(max(stream_version), -1) from ` + t + ` where stream_id = $1`,
		readFwd:  `select ` + cols + ` from ` + t + ` where stream_id = $1 and stream_version >= $2 order by stream_version limit $3`,
		readBack: `select ` + cols + ` from ` + t + ` where stream_id = $1 and stream_version <= $2 order by stream_version desc limit $3`,
		// The table's own tx_id: a bare tx_id in ORDER BY names the output column tx_id::text.
		byCorrelation: `select ` + cols + ` from ` + t + ` e where (e.metadata->>'correlationId') = $1 order by e.tx_id, e.global_position limit $2`,
		readAll:       fence.horizon + readAllRows,
		readAllOldest: fence.oldest + readAllRows,
		horizonAge: `select coalesce(extract(epoch from now() - min(act.xact_start)), 0)::float8
  from pg_locks a join pg_stat_activity act on act.pid = a.pid
 where ` + fence.held("a"),
	}}
	if opts.TailEvents > 0 {
		s.tail = eventstore.NewTail(s.ReadAll, &s.wake, opts.PollInterval, opts.TailEvents)
	}
	return s
}

// fenceSQL is the SQL of a store's append fence: the lock every append takes first (with), the
// horizon readers read below (horizon), and the condition that pg_locks row a is the fence, held.
type fenceSQL struct {
	with, horizon, oldest string
	held                  func(a string) string
}

// appendFence is the append fence of the events table in schema: a shared, transaction-scoped
// advisory lock on a key of the table's own, which every append takes before its first row, so
// before its transaction has an id, and holds until it has committed (locks are released after
// the commit is visible).
//
// It is what readers wait on. A reader may pass a transaction id x only once no transaction
// below x can still add rows. The cluster's oldest running transaction (pg_snapshot_xmin) is a
// safe bound but a blunt one: any transaction in any database of the cluster holds it, so an
// analyst's session, a backup or a migration elsewhere stalled every projector and the saga.
// The horizon here waits only for appends: with S the read's own snapshot,
//
//	horizon = min(xmax(S), min{x in xip(S) : x holds the fence, or x is no longer running})
//
// Why no event is skipped: an append T running at S has an id in xip(S), or gets one later, at or
// past xmax(S). If T is in xip(S): the holders are listed after S was taken and each x's status is
// asked after that; T holds the fence from before its id until after its commit, so either T is
// listed, or T ended before the listing and its status says so. Both bound the horizon at or
// below T. A holder's id is its backend's xid (pg_stat_activity.backend_xid, read from the same
// field as snapshots read): a transaction's id is in snapshots before it takes the lock on its own
// id, so pg_locks' transactionid rows would miss a holder for a moment, and a reader that looked
// then skipped its events (one saga in a few thousand was stuck in the chaos test). A transaction of xip(S) that is still running and does not hold the fence appends
// nothing: it is passed, which is the point. The rule that makes it hold is the one of the
// package doc: the append is its transaction's first write.
func appendFence(schema string) fenceSQL {
	h := fnv.New64a()
	h.Write([]byte("orderflow:eventstore:append-fence:" + schema))
	key := int64(h.Sum64())
	hi, lo := uint32(uint64(key)>>32), uint32(uint64(key))
	held := func(a string) string {
		return fmt.Sprintf(`%[1]s.locktype = 'advisory' and %[1]s.classid = %[2]d and %[1]s.objid = %[3]d and %[1]s.objsubid = 1 and %[1]s.granted
   and %[1]s.database = (select oid from pg_database where datname = current_database())`, a, hi, lo)
	}
	return fenceSQL{
		held: held,
		with: fmt.Sprintf("with fence as materialized (select pg_advisory_xact_lock_shared(%d))\n", key),
		horizon: `with snap as materialized (select pg_current_snapshot() as s),
holders as materialized (
  select act.backend_xid as xid
    from pg_locks a join pg_stat_activity act on act.pid = a.pid
   where ` + held("a") + ` and act.backend_xid is not null),
h as (select least(pg_snapshot_xmax(snap.s), (
         select min(r) from pg_snapshot_xip(snap.s) r
          where case when (r::text::bigint % 4294967296)::text::xid in (select xid from holders) then true
                     else pg_xact_status(r) is distinct from 'in progress' end)) as x,
              pg_snapshot_xmin(snap.s) as m, pg_snapshot_xmax(snap.s) as n
        from snap)`,
		// The cluster's oldest running transaction: a safe horizon, and a cheap one (no list of
		// locks and backends) while it moves. Same columns as horizon.
		oldest: `with snap as (select pg_current_snapshot() as s),
h as (select pg_snapshot_xmin(snap.s) as x, pg_snapshot_xmin(snap.s) as m, pg_snapshot_xmax(snap.s) as n from snap)`,
	}
}

// Migrate creates the schema and table if they do not exist. Safe to run concurrently: migrations
// of one database take turns (pgschema.MigrationLock).
func (s *Store) Migrate(ctx context.Context) error {
	schema := pgx.Identifier{s.opts.Schema}.Sanitize()
	t := pgx.Identifier{s.opts.Schema, "events"}.Sanitize()
	ddl := `create schema if not exists ` + schema + `;
create table if not exists ` + t + ` (
  global_position bigint generated always as identity primary key,
  tx_id xid8 not null default pg_current_xact_id(),
  stream_id text not null,
  stream_version bigint not null,
  event_id uuid not null,
  event_type text not null,
  data json not null,
  metadata json not null default '{}',
  recorded_at timestamptz not null default now(),
  unique (stream_id, stream_version));
create index if not exists events_tx_position on ` + t + ` (tx_id, global_position);
create index if not exists events_correlation on ` + t + ` ((metadata->>'correlationId'));
create table if not exists ` + pgx.Identifier{s.opts.Schema, "snapshots"}.Sanitize() + ` (
  stream_id text primary key,
  revision bigint not null,
  version text not null,
  data bytea not null,
  saved_at timestamptz not null default now());`
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := pgschema.Lock(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate event store schema %s: %w", s.opts.Schema, err)
	}
	return nil
}

// Querier is what AppendTx needs of a transaction: pgx.Tx and *pgxpool.Conn both fit.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// AppendIf implements eventstore.ConditionalStore. An append at an exact revision (or to no
// stream) checks its conditions in its statement, in a group as Append's do: against the log as
// that statement sees it, as it checks the stream's own revision (a transaction appending to a
// condition's stream that commits while the statement runs is not seen; no lock orders the two).
// Other appends read the conditions' streams first.
func (s *Store) AppendIf(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData, conditions []eventstore.Condition) (eventstore.AppendResult, error) {
	rev, exact := expected.Revision()
	if !exact || len(conditions) == 0 {
		if err := eventstore.CheckConditions(ctx, s, conditions); err != nil {
			return eventstore.AppendResult{}, err
		}
		return s.Append(ctx, stream, expected, events)
	}
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.appendGrouped(ctx, stream, rev, events, conditions)
}

// Append implements eventstore.Store. Appends at an exact revision (and to no stream) that
// arrive while others are being written commit together (appendGrouped).
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if rev, exact := expected.Revision(); exact {
		return s.appendGrouped(ctx, stream, rev, events, nil)
	}
	query, args, err := s.appendArgs(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	// "Any" has no revision to conflict on: a unique violation only means another writer took the
	// next revision first, so try again with the new head.
	for attempt := 0; ; attempt++ {
		res, err := s.appendOnce(ctx, s.pool, stream, query, args)
		if err == nil {
			s.wake.NotifyAppend(stream, events)
			return res, nil
		}
		if !expected.IsAny() || !errors.Is(err, errRaced) || attempt == 20 {
			return s.translate(ctx, stream, expected, events, err)
		}
	}
}

// AppendTx appends within the caller's transaction, for writes that must commit atomically with
// the events. The append must be tx's first write (see the package doc), and tx must commit
// promptly: until it ends, no subscriber sees any later event. Subscribers of this Store learn of
// the commit by polling.
func (s *Store) AppendTx(ctx context.Context, tx Querier, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	query, args, err := s.appendArgs(stream, expected, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := s.appendOnce(ctx, tx, stream, query, args)
	if err != nil {
		if errors.Is(err, errRaced) {
			// The transaction is aborted; it cannot look up what raced it.
			return res, fmt.Errorf("append to %s: %w", stream, eventstore.ErrWrongVersion)
		}
		return s.translate(ctx, stream, expected, events, err)
	}
	return res, nil
}

// errRaced: the insert hit a unique index (a concurrent writer of the same stream, or an event id
// already stored). errExpectation: the head did not satisfy the expected revision.
var (
	errRaced       = errors.New("unique violation")
	errExpectation = errors.New("expectation not met")
)

// appendArgs returns the statement for the append and its arguments: $1 stream, $2..$5 ids,
// types, data and metadata (arrays, or scalars for one event on an exact revision), $6 the
// expected revision, -1 for no stream; for appendHead -2 means "stream exists", -3 "any".
func (s *Store) appendArgs(stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (string, []any, error) {
	meta := make([]string, len(events))
	for i, e := range events {
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return "", nil, fmt.Errorf("append to %s: event %s metadata: %w", stream, e.ID, err)
		}
		meta[i] = string(m)
	}
	if rev, exact := expected.Revision(); exact {
		query, args := s.exactArgs(stream, rev, events, meta)
		return query, args, nil
	}
	ids, types, data := columns(events)
	head := int64(-3)
	if expected.IsStreamExists() {
		head = -2
	}
	return s.sql.appendHead, []any{stream, ids, types, data, meta, head}, nil
}

// exactArgs is appendArgs for an exact revision rev (-1: no stream), with the events' metadata.
func (s *Store) exactArgs(stream string, rev int64, events []eventstore.EventData, meta []string) (string, []any) {
	if len(events) == 1 {
		e := events[0]
		return s.sql.appendExactOne, []any{stream, pgUUID(e.ID), e.Type, string(e.Data), meta[0], rev}
	}
	ids, types, data := columns(events)
	return s.sql.appendExact, []any{stream, ids, types, data, meta, rev}
}

// columns are events' ids, types and payloads as statement arguments.
func columns(events []eventstore.EventData) (ids []pgtype.UUID, types, data []string) {
	types, data = make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		types[i], data[i] = e.Type, string(e.Data)
	}
	return eventIDs(events), types, data
}

// eventIDs are events' ids as a uuid[] argument (pgUUID).
func eventIDs(events []eventstore.EventData) []pgtype.UUID {
	ids := make([]pgtype.UUID, len(events))
	for i, e := range events {
		ids[i] = pgUUID(e.ID)
	}
	return ids
}

// pgUUID is an event id as a uuid parameter pgx encodes in binary at once. A uuid.UUID goes
// through its driver.Valuer: formatted as text, parsed back, and for a list by reflection, about
// 20 allocations per id (BenchmarkEventIDs).
func pgUUID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

func (s *Store) appendOnce(ctx context.Context, q Querier, stream string, query string, args []any) (eventstore.AppendResult, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return eventstore.AppendResult{}, s.insertError(stream, err)
	}
	var res eventstore.AppendResult
	n := 0
	for rows.Next() {
		var (
			txID    string
			gp, rev int64
		)
		if err := rows.Scan(&txID, &gp, &rev); err != nil {
			rows.Close()
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		commit, err := strconv.ParseUint(txID, 10, 64)
		if err != nil {
			rows.Close()
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: transaction id %q: %w", stream, txID, err)
		}
		if pos := (eventstore.Position{Commit: commit, Prepare: uint64(gp)}); pos.Compare(res.Position) > 0 {
			res = eventstore.AppendResult{NextRevision: rev, Position: pos}
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, s.insertError(stream, err)
	}
	if n == 0 {
		return eventstore.AppendResult{}, errExpectation
	}
	return res, nil
}

func (s *Store) insertError(stream string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return errRaced
		case pgErr.Code == "22P02" || pgErr.Code == "22P05" || strings.HasPrefix(pgErr.Code, "22"):
			return fmt.Errorf("append to %s: %s: %w", stream, pgErr.Message, eventstore.ErrInvalid)
		}
	}
	return fmt.Errorf("append to %s: %w", stream, err)
}

// translate turns a refused append into the port's answer: success for a retry of an append that
// already happened, ErrDuplicateEvent for ids stored elsewhere, else *WrongVersionError.
func (s *Store) translate(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData, cause error) (eventstore.AppendResult, error) {
	if !errors.Is(cause, errRaced) && !errors.Is(cause, errExpectation) {
		return eventstore.AppendResult{}, cause
	}
	if res, ok, err := s.retried(ctx, stream, expected, events); ok || err != nil {
		return res, err
	}
	var actual int64
	if err := s.pool.QueryRow(ctx, s.sql.head, stream).Scan(&actual); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: read head: %w", stream, err)
	}
	return eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: actual}
}

func (s *Store) retried(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, bool, error) {
	rows, err := s.pool.Query(ctx, s.sql.findIDs, stream, eventIDs(events))
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: look up event ids: %w", stream, err)
	}
	type found struct {
		version int64
		pos     eventstore.Position
	}
	byID := map[uuid.UUID]found{}
	for rows.Next() {
		var (
			id   pgtype.UUID
			f    found
			txID string
			gp   int64
		)
		if err := rows.Scan(&id, &f.version, &txID, &gp); err != nil {
			rows.Close()
			return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: scan event ids: %w", stream, err)
		}
		commit, _ := strconv.ParseUint(txID, 10, 64)
		f.pos = eventstore.Position{Commit: commit, Prepare: uint64(gp)}
		byID[uuid.UUID(id.Bytes)] = f
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: look up event ids: %w", stream, err)
	}
	if len(byID) == 0 {
		return eventstore.AppendResult{}, false, nil
	}
	first, okFirst := byID[events[0].ID]
	last, okLast := byID[events[len(events)-1].ID]
	if len(byID) != len(events) || !okFirst || !okLast || last.version-first.version != int64(len(events)-1) {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: some event ids are stored already: %w", stream, eventstore.ErrDuplicateEvent)
	}
	if rev, exact := expected.Revision(); exact && first.version != rev+1 {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: events stored at revision %d, not after %s: %w", stream, first.version, expected, eventstore.ErrDuplicateEvent)
	}
	// The position of the stream's last retried event: its transaction is committed (we read it).
	return eventstore.AppendResult{NextRevision: last.version, Position: last.pos}, true, nil
}
