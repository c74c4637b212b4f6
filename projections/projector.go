// Package projections owns the projector engine: it follows $all from a read model's checkpoint,
// applies events in batches, and commits each batch's rows and the new checkpoint in one
// transaction, so a read model is exactly as far as its checkpoint says, after any crash.
package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// Projection is one read model's handling of events.
type Projection interface {
	// Name identifies the read model: its checkpoint row and its progress subject.
	Name() string
	// Filter selects the events Apply needs.
	Filter() eventstore.Filter
	// Migrate creates the read model's tables (unqualified: the pool's search_path is the read
	// model's schema). It must be safe to run again.
	Migrate(ctx context.Context, tx pgx.Tx) error
	// Apply applies events, in log order, within tx. It is called once per committed batch.
	Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error
}

// Keyed is a Projection that names what events change (e.g. "order:o-1"), announced with the
// batch's position (wire.Progress.Changed) so that live queries read again only what moved.
type Keyed interface {
	Keys(events []eventstore.RecordedEvent) []string
}

// Pipelined is a Projection whose writes for a batch are statements it queues on b rather than
// sends, after reading through tx what it must: the projector sends them with the batch's
// checkpoints and its commit, in one round trip. Its Apply is Send of its Queue.
type Pipelined interface {
	Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, b *pgx.Batch) error
}

// WriteOnly is a Pipelined projection whose Queue writes from the events alone, never reading
// through its tx (it is given none). The projector then sends a batch's whole transaction in one
// round trip: the batch lock, the move of the checkpoints, which checks the partitions' epochs and
// positions itself (advanceSQL) and raises where they moved, so that nothing after it runs and
// the transaction rolls back, then the writes.
type WriteOnly interface {
	Pipelined
	// WritesOnly marks the projection as one whose Queue does not read.
	WritesOnly()
}

// Reader is a Pipelined projection that reads rows for a batch before it writes: Read queues its
// queries on b, which the projector sends with the batch lock in the transaction's first round
// trip, and returns what takes their results (in order) and answers what queues the batch's
// writes from them, in place of Queue.
type Reader interface {
	Read(events []eventstore.RecordedEvent, b *pgx.Batch) (func(pgx.BatchResults) (func(*pgx.Batch) error, error), error)
}

// Send is Apply for a Pipelined projection: what queue queues for events, sent in tx.
func Send(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, queue func(context.Context, pgx.Tx, []eventstore.RecordedEvent, *pgx.Batch) error) error {
	b := &pgx.Batch{}
	if err := queue(ctx, tx, events, b); err != nil || b.Len() == 0 {
		return err
	}
	return tx.SendBatch(ctx, b).Close()
}

// QueuePlannedNow queues sql on b to be planned for its arguments and the tables' sizes at each
// run (a custom plan), not once for the connection's life. For a statement that joins a batch's
// rows with a table that grows, such as an update from unnest: the plan PostgreSQL would cache
// for it was made while the table was small, a scan of it, and stayed a scan as the table grew
// (until autovacuum's next analyze). Planning it again costs less than one such scan.
func QueuePlannedNow(b *pgx.Batch, sql string, args ...any) {
	b.Queue(planNow)
	b.Queue(sql, args...)
	b.Queue(planCached)
}

// The statements around one QueuePlannedNow queues.
const (
	planNow    = `set local plan_cache_mode = force_custom_plan`
	planCached = `set local plan_cache_mode = auto`
)

// Discarder is a Projection that keeps something of the batch it applied last until the batch
// commits (the saga, its commands): Discard tells it the batch did not commit.
type Discarder interface {
	Discard()
}

// maxAnnouncedKeys bounds Progress.Changed: a larger batch is announced without it (anything may
// have changed).
const maxAnnouncedKeys = 1000

// Options tune a Projector.
type Options struct {
	// BatchSize caps the events of one transaction; default 500.
	BatchSize int
	// Linger is how long a batch waits for more events once it has one (see
	// eventstore.SubscribeOptions): one transaction for the events that arrive within it rather
	// than one each; default DefaultLinger, negative none.
	Linger time.Duration
	// IdleCheckpoint is how often a position that moved past filtered-out events only is saved;
	// default 1s. (Batches with events always save their checkpoint.)
	IdleCheckpoint time.Duration
	// Publish announces a committed position, e.g. on NATS; may be nil.
	Publish func(wire.Progress)
	// MaxAttempts is how many times a failing batch is tried (with growing waits) before the
	// events that fail are parked and the projection goes on; default 5.
	MaxAttempts int
	// HaltOnFailure stops the projection at a failing batch instead of parking: it waits, reported
	// by Health, until the handler is fixed and the process restarted.
	HaltOnFailure bool
	// Partitions is how many partitions the read model's log is split into (see Partitioned);
	// default DefaultPartitions. Fixed once a read model has checkpoints: to change it, rebuild.
	Partitions int
	// ClaimTTL is how long a worker's claim on partitions lasts without renewal: a worker that
	// stops, dies or freezes loses them to the others after it; default 5s.
	ClaimTTL time.Duration
	// Heartbeat is how often a worker renews its claims and rebalances; default 1s.
	Heartbeat time.Duration
	// Metrics, if set, counts applied events and times batches.
	Metrics *Metrics
	// AsyncCommit commits batches with synchronous_commit off: for rebuilds, whose work a crash can
	// repeat from the checkpoint, never for live read models that announce what they committed.
	AsyncCommit bool
	Log         *slog.Logger
}

// DefaultLinger is Options.Linger by default. An order's events come a few milliseconds apart
// (placed, reserved, authorized, confirmed), and a transaction for each was most of what a read
// model cost PostgreSQL. 10 ms makes half the batches of 5 ms for a busy read model (about a tenth
// of an order's CPU at 100–250 orders/s); at 200 orders/s on two cores reads become visible no
// later for it (what a batch waits is won back in shorter queues), at 100/s a few ms later.
const DefaultLinger = 10 * time.Millisecond

// Projector runs one projection.
type Projector struct {
	store eventstore.Store
	pool  *pgxpool.Pool
	proj  Projection
	opts  Options

	claims    *claims
	idleLimit string // idle_in_transaction_session_timeout of a commit: ClaimTTL

	mu      sync.Mutex
	held    map[int]partition // the partitions the work holds, at their committed positions
	pos     eventstore.Position
	running bool
	lastErr error

	// failing is the first position of the batch that keeps failing, and how often it failed.
	failing  eventstore.Position
	attempts int

	caughtUp bool      // the last batch reached what was committed
	movedAt  time.Time // when the position last moved
}

// New returns a projector of proj over pool's schema, reading store.
func New(store eventstore.Store, pool *pgxpool.Pool, proj Projection, opts Options) *Projector {
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.IdleCheckpoint <= 0 {
		opts.IdleCheckpoint = time.Second
	}
	if opts.Partitions <= 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.ClaimTTL <= 0 {
		opts.ClaimTTL = 5 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = min(time.Second, opts.ClaimTTL/3)
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	worker := newWorkerID()
	opts.Log = opts.Log.With("projection", proj.Name(), "worker", worker)
	return &Projector{store: store, pool: pool, proj: proj, opts: opts,
		claims:    &claims{pool: pool, name: proj.Name(), worker: worker, n: opts.Partitions, ttl: opts.ClaimTTL},
		idleLimit: strconv.FormatInt(opts.ClaimTTL.Milliseconds(), 10)}
}

// Migrate creates the checkpoint table and the read model's tables. Safe to run concurrently:
// migrations of one database take turns (pgschema.MigrationLock).
func (p *Projector) Migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := pgschema.Lock(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, checkpointDDL+";\n"+claimsDDL); err != nil {
			return fmt.Errorf("migrate checkpoints: %w", err)
		}
		if err := preparePartitions(ctx, tx, p.proj.Name(), p.opts.Partitions); err != nil {
			return err
		}
		if err := p.proj.Migrate(ctx, tx); err != nil {
			return fmt.Errorf("migrate %s: %w", p.proj.Name(), err)
		}
		return nil
	})
}

// checkpointDDL: the table ReadCheckpoint reads.
const checkpointDDL = `create table if not exists projection_checkpoints (
  name text not null,
  part int not null default 0,
  commit_position bigint not null,
  prepare_position bigint not null,
  epoch bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (name, part));
alter table projection_checkpoints add column if not exists part int not null default 0;
alter table projection_checkpoints add column if not exists epoch bigint not null default 0;
do $$ begin -- a checkpoint table from before partitions: one row per read model
  if exists (select 1 from pg_constraint where conrelid = 'projection_checkpoints'::regclass and contype = 'p' and cardinality(conkey) = 1) then
    alter table projection_checkpoints drop constraint projection_checkpoints_pkey;
    alter table projection_checkpoints add primary key (name, part);
  end if;
end $$;
create table if not exists projection_control (
  name text primary key,
  paused boolean not null default false,
  updated_at timestamptz not null default now());
create table if not exists projection_parked (
  name text not null,
  event_id uuid not null,
  stream text not null,
  event_type text not null,
  position text not null,
  error text not null,
  attempts int not null,
  parked_at timestamptz not null default now(),
  primary key (name, event_id));
create or replace function projection_advance(p_name text, p_parts int[], p_epochs bigint[], p_commits bigint[],
  p_prepares bigint[], p_to_commits bigint[], p_to_prepares bigint[]) returns void language plpgsql as $f$
declare
  moved int;
  r record;
begin
  update projection_checkpoints c set commit_position = v.tc, prepare_position = v.tp, updated_at = now()
    from unnest(p_parts, p_epochs, p_commits, p_prepares, p_to_commits, p_to_prepares) v(part, epoch, fc, fp, tc, tp)
   where c.name = p_name and c.part = v.part and c.epoch = v.epoch and c.commit_position = v.fc and c.prepare_position = v.fp;
  get diagnostics moved = row_count;
  if moved = cardinality(p_parts) then
    return;
  end if;
  -- Which partition refused: a row this statement moved reads its new position, and is passed over.
  for r in select v.part, v.epoch as want, c.epoch, c.commit_position as c, c.prepare_position as p, v.fc, v.fp
             from unnest(p_parts, p_epochs, p_commits, p_prepares, p_to_commits, p_to_prepares) v(part, epoch, fc, fp, tc, tp)
             left join projection_checkpoints c on c.name = p_name and c.part = v.part
            where c.epoch is distinct from v.epoch or c.commit_position <> v.tc or c.prepare_position <> v.tp
            order by v.part loop
    if r.epoch is distinct from r.want then
      raise exception 'partition % at epoch %, this worker''s is %', r.part, coalesce(r.epoch::text, 'none (no checkpoint)'), r.want
        using errcode = 'OF001';
    end if;
    if r.c <> r.fc or r.p <> r.fp then
      raise exception 'partition % saved at %/%, expected %/%', r.part, r.c, r.p, r.fc, r.fp using errcode = 'OF002';
    end if;
  end loop;
  raise exception '% of % partitions'' checkpoints moved', moved, cardinality(p_parts) using errcode = 'OF001';
end $f$`

// Position is the last committed position.
func (p *Projector) Position() eventstore.Position {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos
}

// CaughtUp reports whether the projector's last committed batch reached what was committed in
// the log when it was read.
func (p *Projector) CaughtUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.caughtUp
}

// Health is nil while the projector runs without error.
func (p *Projector) Health() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.lastErr != nil:
		return fmt.Errorf("projection %s: %w", p.proj.Name(), p.lastErr)
	case !p.running:
		return fmt.Errorf("projection %s: %w", p.proj.Name(), errNotRunning)
	}
	return nil
}

func (p *Projector) setState(running bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running, p.lastErr = running, err
}

// Run projects until ctx ends, the partitions this worker holds (see Partitioned): it renews
// its claims every Heartbeat, takes its share of the partitions as workers come and go, and
// releases them when it stops. A failure (database down, a handler error) is logged, reported by
// Health, and retried with backoff from the partitions' committed checkpoints.
func (p *Projector) Run(ctx context.Context) error {
	var w *working
	stop := func() {
		if w != nil {
			w.cancel()
			<-w.done
			w = nil
		}
	}
	defer func() {
		stop()
		// Leave at once rather than after ClaimTTL: the others take the partitions on their next beat.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := p.claims.release(rctx, p.heldParts(), true); err != nil {
			p.opts.Log.Warn("release partitions", "err", err)
		}
		p.setState(false, nil)
	}()
	p.setState(true, nil) // standing by is healthy
	beat := time.NewTimer(0)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
		}
		beat.Reset(p.opts.Heartbeat)
		if err := p.rebalance(ctx, &w, stop); err != nil && ctx.Err() == nil {
			p.opts.Log.Warn("projection claims", "err", err)
		}
	}
}

// working is the work on a set of partitions, running until cancelled or fenced.
type working struct {
	parts  []int
	cancel context.CancelFunc
	done   chan struct{}
}

// rebalance is one heartbeat: this worker says it is alive, renews its claims, and if it holds
// other partitions than its share (or lost one, or its work ended), stops its work, releases what
// is not its share, claims its share at new epochs and starts again on what it got.
func (p *Projector) rebalance(ctx context.Context, w **working, stop func()) error {
	live, err := p.claims.beat(ctx)
	if err != nil {
		return err
	}
	have, err := p.claims.renew(ctx)
	if err != nil {
		return err
	}
	want := p.claims.assigned(live)
	if cur := *w; cur != nil && slices.Equal(cur.parts, want) && subset(cur.parts, have) {
		select {
		case <-cur.done: // fenced, or stopped: claim again
		default:
			return nil
		}
	}
	stop()
	if extra := without(have, want); len(extra) > 0 {
		if err := p.claims.release(ctx, extra, false); err != nil {
			return err
		}
	}
	got, err := p.claims.claim(ctx, want)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.held = got
	p.mu.Unlock()
	parts := p.heldParts()
	if len(parts) < len(want) || len(parts) == 0 {
		p.opts.Log.Debug("partitions", "held", partsString(parts), "share", partsString(want), "workers", len(live))
	} else {
		p.opts.Log.Info("partitions claimed", "held", partsString(parts), "workers", len(live))
	}
	if len(parts) == 0 {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	cur := &working{parts: parts, cancel: cancel, done: make(chan struct{})}
	*w = cur
	go func() {
		defer close(cur.done)
		p.work(wctx)
	}()
	return nil
}

// heldParts is the partitions the work holds, in order.
func (p *Projector) heldParts() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts := make([]int, 0, len(p.held))
	for part := range p.held {
		parts = append(parts, part)
	}
	slices.Sort(parts)
	return parts
}

// subset reports whether every element of a is in b (both sorted).
func subset(a, b []int) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			return false
		}
	}
	return true
}

// without is the elements of a not in b (b sorted).
func without(a, b []int) []int {
	var out []int
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

// work projects while ctx lasts.
func (p *Projector) work(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		err := p.run(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errPaused) {
			p.opts.Log.Info("projection paused")
			for ctx.Err() == nil {
				if paused, perr := Paused(ctx, p.pool, p.proj.Name()); perr == nil && !paused {
					p.opts.Log.Info("projection resumed")
					break
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		if errors.Is(err, errFenced) {
			p.opts.Log.Warn("partitions taken by another worker; this one stops working on them", "err", err)
			return
		}
		if errors.Is(err, errCheckpointMoved) {
			p.opts.Log.Info("checkpoint moved; following it", "err", err)
			continue
		}
		p.setState(true, err)
		p.opts.Log.Error("projector stopped; restarting from its checkpoint", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (p *Projector) run(ctx context.Context) error {
	from, err := p.readHeld(ctx)
	if err != nil {
		return err
	}
	// The store may read this worker's partitions only (PostgreSQL does while catching up).
	filter := p.proj.Filter()
	filter.Partition = &eventstore.Partition{By: p.partitionBy(), Of: p.opts.Partitions, Parts: p.heldParts()}
	sub, err := p.store.SubscribeAll(ctx, from, eventstore.SubscribeOptions{Filter: filter, BatchSize: p.opts.BatchSize, Linger: p.opts.Linger})
	if err != nil {
		return fmt.Errorf("subscribe from %s: %w", from, err)
	}
	defer sub.Close()
	p.setState(true, nil)
	p.opts.Log.Info("projector started", "position", from.String())
	// The rows may have changed under this position (a rebuild swapped a new version in): say so.
	p.advanced(from, false, true)
	var saved, checkedPause time.Time
	// pending is a position reached past filtered-out events only, announced but not saved yet:
	// it is saved after IdleCheckpoint even if nothing else comes.
	var pending *eventstore.Position
	for {
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if pending != nil {
			nctx, cancel = context.WithTimeout(ctx, p.opts.IdleCheckpoint)
		}
		b, err := sub.Next(nctx)
		cancel()
		if err != nil && pending != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			b, err = eventstore.Batch{Position: *pending, CaughtUp: p.CaughtUp()}, nil // save the pending position
		}
		if err != nil {
			return err
		}
		var touched map[int]bool
		b.Events, touched = p.mine(b.Events)
		if len(b.Events) == 0 && time.Since(saved) < p.opts.IdleCheckpoint && (pending == nil || b.Position != *pending) {
			// Nothing for this read model up to here: announce it (read-your-writes waits on
			// positions of events it ignores) and save it later.
			pos := b.Position
			pending = &pos
			p.advanced(pos, b.CaughtUp, false)
			continue
		}
		if time.Since(checkedPause) > time.Second {
			paused, err := Paused(ctx, p.pool, p.proj.Name())
			if err != nil {
				return err
			}
			if paused {
				return errPaused
			}
			checkedPause = time.Now()
		}
		all := len(b.Events) == 0 || time.Since(saved) >= p.opts.IdleCheckpoint
		if err := p.commit(ctx, b, touched, all, p.isolate(b)); err != nil {
			if len(b.Events) > 0 && !errors.Is(err, errCheckpointMoved) && !errors.Is(err, errFenced) && ctx.Err() == nil {
				p.failed(b)
			}
			return err
		}
		if all {
			saved, pending = time.Now(), nil
		} else { // the untouched partitions' rows move within IdleCheckpoint, even if nothing comes
			pos := b.Position
			pending = &pos
		}
		p.advanced(b.Position, b.CaughtUp, len(b.Events) > 0, p.keys(b.Events)...)
	}
}

// keys names what events changed, if the projection says and they are not too many; else nil.
// Nobody hears them without Publish (a rebuild's projector): not computed then.
func (p *Projector) keys(events []eventstore.RecordedEvent) []string {
	k, ok := p.proj.(Keyed)
	if !ok || len(events) == 0 || p.opts.Publish == nil {
		return nil
	}
	keys := k.Keys(events)
	if len(keys) > maxAnnouncedKeys {
		return nil
	}
	return keys
}

// advanced records and announces that the read model reflects the log up to pos (applied and
// committed: caught up only then, so that whoever waits for CaughtUp finds the rows there):
// caughtUp says whether pos was the tip when read, changed whether the rows may have changed,
// keys (if any) which.
func (p *Projector) advanced(pos eventstore.Position, caughtUp, changed bool, keys ...string) {
	p.mu.Lock()
	p.pos, p.movedAt, p.caughtUp = pos, time.Now(), caughtUp
	p.lastErr = nil
	p.mu.Unlock()
	if p.opts.Publish != nil {
		p.opts.Publish(wire.Progress{Projection: p.proj.Name(), Position: pos.String(), Unchanged: !changed, Changed: keys,
			Partitions: p.heldParts(), Of: p.opts.Partitions})
	}
}

// failed counts a failure of the batch starting at b's first event.
func (p *Projector) failed(b eventstore.Batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.Events[0].Position != p.failing {
		p.failing, p.attempts = b.Events[0].Position, 0
	}
	p.attempts++
}

// isolate reports whether b has failed often enough to be applied event by event, parking the
// events that fail.
func (p *Projector) isolate(b eventstore.Batch) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.opts.HaltOnFailure && len(b.Events) > 0 && b.Events[0].Position == p.failing && p.attempts >= p.opts.MaxAttempts-1
}

// errFenced: a partition this worker worked on was taken by another (its epoch moved): it
// commits nothing more there.
var errFenced = errors.New("partition claimed by another worker")

// errCheckpointMoved: the saved checkpoint is not the one this projector last saved. Someone else
// moved it (a rebuild swapped the read model in, another worker ran): start again from it.
var errCheckpointMoved = errors.New("checkpoint moved under the projector")

var errNotRunning = errors.New("not running")

// errPaused: an operator paused the projection.
var errPaused = errors.New("paused")

// Paused reports whether projection name is paused in the read model behind q.
func Paused(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (bool, error) {
	var paused bool
	err := q.QueryRow(ctx, `select coalesce((select paused from projection_control where name = $1), false)`, name).Scan(&paused)
	return paused, err
}

// SetPaused pauses or resumes projection name: a paused projector applies nothing until resumed
// (it notices within about a second); queries keep reading what it had applied.
func SetPaused(ctx context.Context, pool *pgxpool.Pool, name string, paused bool) error {
	_, err := pool.Exec(ctx, `insert into projection_control (name, paused, updated_at) values ($1, $2, now())
on conflict (name) do update set paused = excluded.paused, updated_at = excluded.updated_at`, name, paused)
	return err
}

// readHeld reads the checkpoints of the partitions this worker holds, and answers the first of
// them (where its subscription starts): errFenced if one was taken at another epoch since.
func (p *Projector) readHeld(ctx context.Context) (eventstore.Position, error) {
	parts := p.heldParts()
	read, err := scanPartitions(p.pool.Query(ctx, `select part, epoch, commit_position, prepare_position from projection_checkpoints where name = $1 and part = any($2)`, p.proj.Name(), parts))
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read checkpoints: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range parts {
		if read[part].epoch != p.held[part].epoch {
			return eventstore.Position{}, fmt.Errorf("%w: partition %d at epoch %d, this worker's is %d", errFenced, part, read[part].epoch, p.held[part].epoch)
		}
	}
	p.held = read
	p.pos = p.first()
	return p.pos, nil
}

// first is the position of the held partition furthest behind (p.mu held).
func (p *Projector) first() eventstore.Position {
	var out eventstore.Position
	seen := false
	for _, pt := range p.held {
		if !seen || pt.pos.Compare(out) < 0 {
			out, seen = pt.pos, true
		}
	}
	return out
}

// partitionBy is the key the projection's events are partitioned by.
func (p *Projector) partitionBy() eventstore.PartitionKey {
	if k, ok := p.proj.(Partitioned); ok {
		return k.PartitionBy()
	}
	return eventstore.ByStream
}

// mine keeps the events of the partitions this worker holds that their checkpoints have not
// passed (a partition taken over may be ahead of the others), and names their partitions.
func (p *Projector) mine(events []eventstore.RecordedEvent) ([]eventstore.RecordedEvent, map[int]bool) {
	by := p.partitionBy()
	p.mu.Lock()
	defer p.mu.Unlock()
	out, touched := events[:0], map[int]bool{}
	for _, e := range events {
		part := eventstore.PartitionOf(by.Of(e), p.opts.Partitions)
		if pt, ok := p.held[part]; ok && e.Position.Compare(pt.pos) > 0 {
			out = append(out, e)
			touched[part] = true
		}
	}
	return out, touched
}

// commit applies b (the events of this worker's partitions, of the partitions touched) and
// moves the touched partitions' checkpoints to its position, in one transaction, if their rows
// still have the epochs this worker claimed them at (errFenced: another worker took one) and the
// positions it last saved (errCheckpointMoved: a rebuild swapped a new version in). The rows are
// locked first (for a WriteOnly projection, by the checked move itself), so two writers of one
// partition never both apply, and a batch takes its locks in the order a migration does (the
// checkpoints' table, then the read model's: the other order deadlocked a worker's batch with a
// restarting worker's migration).
//
// The checkpoints of the held partitions the batch did not touch move too only with all (every
// IdleCheckpoint, and with a batch of no events): a partition's row is always at or past its
// last applied event, which is all a restart needs, and a row written per partition per batch
// was most of what a commit cost PostgreSQL. The read model's position in its database (the
// slowest partition's) lags by that much; its announcements do not.
func (p *Projector) commit(ctx context.Context, b eventstore.Batch, touched map[int]bool, all, isolate bool) (err error) {
	start := time.Now()
	ctx, finished := finishing(ctx, commitGrace)
	defer finished()
	if len(b.Events) > 0 {
		var span trace.Span
		ctx, span = batchSpan(ctx, p.proj.Name(), b.Events)
		defer func() { telemetry.End(span, err) }()
	}
	p.mu.Lock()
	expected := make(map[int]partition, len(p.held))
	for part, pt := range p.held {
		if all || touched[part] {
			expected[part] = pt
		}
	}
	p.mu.Unlock()
	m := moves{name: p.proj.Name(), expected: expected, to: make(map[int]partition, len(expected))}
	for part, pt := range expected {
		if b.Position.Compare(pt.pos) > 0 {
			pt.pos = b.Position
		}
		m.to[part] = pt
		m.parts = append(m.parts, part)
	}
	slices.Sort(m.parts)
	if q, ok := p.proj.(Pipelined); ok && !isolate {
		err = p.commitPipelined(ctx, q, b.Events, m)
	} else {
		err = p.commitInTx(ctx, b.Events, m, isolate)
	}
	if err != nil {
		if d, ok := p.proj.(Discarder); ok && len(b.Events) > 0 {
			d.Discard()
		}
		return fmt.Errorf("commit batch at %s: %w", b.Position, err)
	}
	p.mu.Lock()
	for part, pt := range m.to {
		if _, ok := p.held[part]; ok {
			p.held[part] = pt
		}
	}
	p.mu.Unlock()
	if m := p.opts.Metrics; m != nil && len(b.Events) > 0 {
		m.applied.WithLabelValues(p.proj.Name()).Add(float64(len(b.Events)))
		m.batch.WithLabelValues(p.proj.Name()).Observe(time.Since(start).Seconds())
	}
	if len(b.Events) > 0 && p.opts.Log.Enabled(ctx, slog.LevelDebug) { // its arguments cost allocations even when not logged
		p.opts.Log.Debug("batch committed", "events", len(b.Events), "position", b.Position.String(), "duration_ms", time.Since(start).Milliseconds())
	}
	return nil
}

// commitGrace is how long a commit begun may go on once its worker is told to stop.
const commitGrace = 5 * time.Second

// finishing is ctx for work that, once begun, is finished rather than cut short when ctx ends:
// it ends grace after ctx does (or when the work is done: call finished). A commit cut short is
// worse than one finished: its worker is stopping because its partitions change hands or the
// process stops, and a commit that no longer holds its partitions is refused by its own check
// anyway; but one cut in the middle of sending its pipeline leaves a message half sent: the
// server waits for the rest, the statements it had run by then keep their locks (the batch lock,
// the partitions' checkpoint rows, which a worker taking them over waits for), and pgx gives the
// connection up only 15 s later, a place of the pool (and the pool's Close) held meanwhile (a
// rebalance did so in one run of `orderflow-bench workers` in three).
func finishing(ctx context.Context, grace time.Duration) (_ context.Context, finished func()) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		timer := time.AfterFunc(grace, cancel)
		context.AfterFunc(c, func() { timer.Stop() }) // finished first: no timer left behind
	})
	return c, func() { stop(); cancel() }
}

// The statements of a batch's transaction, besides the projection's own:
//
// lockSQL takes the batch lock of this read model (schema and name), shared by the workers of its
// partitions; a rebuild's swap takes it alone. It is a statement of its own: the checkpoints' read
// (checkSQL) must be planned once the lock is held, so that after a swap it names the new
// version's table. Read in the same statement (planned before the wait), it read the retired
// version's checkpoint, found it as expected, and the batch went into the new version twice
// (TestRebuildResumesAndIsExclusive, about 1 run in 100). A worker frozen inside the transaction
// would keep its rows locked, and nobody could take its partitions: the server ends the
// transaction once it waits that long for its client (idle_in_transaction_session_timeout).
//
// checkSQL locks the checkpoint rows of the batch's partitions, in order, for checkHeld; saveSQL
// moves them.
const (
	lockSQL = `select set_config('idle_in_transaction_session_timeout', $2, true),
  pg_advisory_xact_lock_shared(hashtext('orderflow:projection:' || current_schema() || ':' || $1))`
	asyncSQL = `set local synchronous_commit = off`
	checkSQL = `select part, epoch, commit_position, prepare_position from projection_checkpoints
where name = $1 and part = any($2) order by part for update`
	saveSQL = `update projection_checkpoints c set commit_position = v.c, prepare_position = v.p, updated_at = now()
from unnest($2::int[], $3::bigint[], $4::bigint[]) v(part, c, p) where c.name = $1 and c.part = v.part`
)

// advanceSQL moves the checkpoints of a batch's partitions (projection_advance, made with the
// checkpoints' table) only if each is still at the epoch this worker claimed it at and the
// position it last saved, and raises advanceFenced or advanceMoved otherwise: the check and the
// move in one statement, first in the batch's transaction (after the batch lock), whose rows the
// move locks: the batch's writes follow in the same transaction, and a failed check skips them.
const advanceSQL = `select projection_advance($1, $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])`

// The errors projection_advance raises (SQLSTATEs of its own): errFenced's and errCheckpointMoved's.
const (
	advanceFenced = "OF001"
	advanceMoved  = "OF002"
)

// moves is where a batch moves the checkpoints of its partitions (parts, in order): from where
// this worker holds them (expected: epoch and position) to where the batch leaves them (to).
type moves struct {
	name         string
	parts        []int
	expected, to map[int]partition
}

// positions are the commit and prepare positions of m's partitions in at.
func (m moves) positions(at map[int]partition) (commits, prepares []int64) {
	commits, prepares = make([]int64, len(m.parts)), make([]int64, len(m.parts))
	for i, part := range m.parts {
		commits[i], prepares[i] = int64(at[part].pos.Commit), int64(at[part].pos.Prepare)
	}
	return commits, prepares
}

// saveArgs are saveSQL's arguments: the partitions and their new positions.
func (m moves) saveArgs() []any {
	commits, prepares := m.positions(m.to)
	return []any{m.name, m.parts, commits, prepares}
}

// advanceArgs are advanceSQL's arguments: the partitions, the epochs and positions expected of
// them, and their new positions.
func (m moves) advanceArgs() []any {
	epochs := make([]int64, len(m.parts))
	for i, part := range m.parts {
		epochs[i] = m.expected[part].epoch
	}
	fromC, fromP := m.positions(m.expected)
	toC, toP := m.positions(m.to)
	return []any{m.name, m.parts, epochs, fromC, fromP, toC, toP}
}

// checkpointError is err, the check of projection_advance's errors made errFenced or
// errCheckpointMoved.
func checkpointError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case advanceFenced:
			return fmt.Errorf("%w: %s", errFenced, pgErr.Message)
		case advanceMoved:
			return fmt.Errorf("%w: %s", errCheckpointMoved, pgErr.Message)
		}
	}
	return err
}

// commitInTx is commit's transaction, a statement at a time: for a projection that is not
// Pipelined, or a batch applied event by event (isolate) to park what fails.
func (p *Projector) commitInTx(ctx context.Context, events []eventstore.RecordedEvent, m moves, isolate bool) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSQL, p.proj.Name(), p.idleLimit); err != nil {
			return err
		}
		if p.opts.AsyncCommit {
			if _, err := tx.Exec(ctx, asyncSQL); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, checkSQL, p.proj.Name(), m.parts)
		if err != nil {
			return err
		}
		if err := checkHeld(rows, m.expected); err != nil {
			return err
		}
		switch {
		case isolate:
			if err := p.applyParking(ctx, tx, events); err != nil {
				return err
			}
		case len(events) > 0:
			if err := p.proj.Apply(ctx, tx, events); err != nil {
				return fmt.Errorf("apply %d events from %s: %w", len(events), events[0].Position, err)
			}
		}
		_, err = tx.Exec(ctx, saveSQL, m.saveArgs()...)
		return err
	})
}

// commitPipelined is commit's transaction for a Pipelined projection, in two round trips rather
// than six: "begin", the batch lock and the check of the partitions' rows go in one pipeline (the
// server binds the check once the lock is held, as it does in commit's own transaction); then the
// projection reads what it must and queues its writes, and they go with the checkpoints and
// "commit" in another. For a WriteOnly projection it is one round trip: "begin", the lock, the
// checked move of the checkpoints (advanceSQL), the writes and "commit"; the server runs them in
// order, so the move is bound once the lock is held too, and it raises where the check fails,
// which skips the writes and the "commit". A failure rolls the transaction back.
func (p *Projector) commitPipelined(ctx context.Context, q Pipelined, events []eventstore.RecordedEvent, m moves) (err error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release() // a connection left in a transaction is closed, not reused
	defer func() {
		if err != nil && !conn.Conn().IsClosed() && conn.Conn().PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_, _ = conn.Exec(rctx, "rollback")
		}
	}()
	first := &pgx.Batch{}
	first.Queue("begin")
	first.Queue(lockSQL, p.proj.Name(), p.idleLimit)
	if p.opts.AsyncCommit {
		first.Queue(asyncSQL)
	}
	if _, ok := q.(WriteOnly); ok {
		first.Queue(advanceSQL, m.advanceArgs()...)
		if len(events) > 0 {
			if err := q.Queue(ctx, nil, events, first); err != nil {
				return fmt.Errorf("apply %d events from %s: %w", len(events), events[0].Position, err)
			}
		}
		first.Queue("commit")
		return checkpointError(conn.SendBatch(ctx, first).Close())
	}
	execs := first.Len() // statements without rows before the check
	first.Queue(checkSQL, p.proj.Name(), m.parts)
	var take func(pgx.BatchResults) (func(*pgx.Batch) error, error)
	if r, ok := q.(Reader); ok && len(events) > 0 {
		if take, err = r.Read(events, first); err != nil {
			return fmt.Errorf("read for %d events from %s: %w", len(events), events[0].Position, err)
		}
	}
	write, err := sendChecked(ctx, conn.Conn(), first, execs, m.expected, take)
	if err != nil {
		return err
	}
	last := &pgx.Batch{}
	switch {
	case write != nil:
		err = write(last)
	case len(events) > 0:
		err = q.Queue(ctx, pipelineTx{conn.Conn()}, events, last)
	}
	if err != nil {
		return fmt.Errorf("apply %d events from %s: %w", len(events), events[0].Position, err)
	}
	last.Queue(saveSQL, m.saveArgs()...)
	last.Queue("commit")
	return conn.SendBatch(ctx, last).Close()
}

// sendChecked sends b: execs statements without rows, then checkSQL, whose rows it checks
// (checkHeld), then the projection's reads, whose results take takes (nil: none), answering what
// queues the writes from them.
func sendChecked(ctx context.Context, conn *pgx.Conn, b *pgx.Batch, execs int, expected map[int]partition,
	take func(pgx.BatchResults) (func(*pgx.Batch) error, error)) (write func(*pgx.Batch) error, err error) {
	br := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	for range execs {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := br.Query()
	if err == nil {
		err = checkHeld(rows, expected)
	}
	if err != nil || take == nil {
		return nil, err
	}
	return take(br)
}

// checkHeld reads rows of checkSQL (and closes them): each partition of expected must still be
// at expected's epoch and position.
func checkHeld(rows pgx.Rows, expected map[int]partition) error {
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var part int
		var epoch, c, pr int64
		if err := rows.Scan(&part, &epoch, &c, &pr); err != nil {
			return err
		}
		seen++
		want, saved := expected[part], eventstore.Position{Commit: uint64(c), Prepare: uint64(pr)}
		if epoch != want.epoch {
			return fmt.Errorf("%w: partition %d at epoch %d, this worker's is %d", errFenced, part, epoch, want.epoch)
		}
		if saved != want.pos {
			return fmt.Errorf("%w: partition %d saved at %s, expected %s", errCheckpointMoved, part, saved, want.pos)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(expected) {
		return fmt.Errorf("%w: %d of %d partitions' checkpoints found", errFenced, seen, len(expected))
	}
	return nil
}

// maxLinks bounds the events a batch's span links to.
const maxLinks = 128

// batchSpan is the span of a projector's batch: linked to the trace of each event it applies (the
// traceparent the event keeps), so that every request's trace shows where its events went.
func batchSpan(ctx context.Context, name string, events []eventstore.RecordedEvent) (context.Context, trace.Span) {
	ctx, span := telemetry.Tracer().Start(ctx, "project "+name, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("orderflow.projection", name), attribute.Int("orderflow.events", len(events)),
			attribute.String("orderflow.position", events[len(events)-1].Position.String())))
	if !span.IsRecording() {
		return ctx, span // no provider: no need to read the events' trace contexts
	}
	links := 0
	for _, e := range events {
		if sc := telemetry.FromTraceParent(e.Metadata.TraceParent, e.Metadata.TraceState); sc.IsValid() && links < maxLinks {
			span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("orderflow.event_type", e.Type)}})
			links++
		}
	}
	return ctx, span
}

// applyParking applies events one by one, each under a savepoint; an event that fails is parked
// with its error and the others go on.
func (p *Projector) applyParking(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	p.mu.Lock()
	attempts := p.attempts + 1
	p.mu.Unlock()
	return applyEachParking(ctx, tx, p.proj.Name(), p.proj.Apply, events, attempts, p.opts.Log)
}

// applyEachParking applies events one by one with apply, each under a savepoint; an event that
// fails is parked (projection_parked, under name, with attempts) and the others go on.
func applyEachParking(ctx context.Context, tx pgx.Tx, name string, apply func(context.Context, pgx.Tx, []eventstore.RecordedEvent) error,
	events []eventstore.RecordedEvent, attempts int, log *slog.Logger) error {
	for _, e := range events {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if aerr := apply(ctx, sp, []eventstore.RecordedEvent{e}); aerr != nil {
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			log.ErrorContext(ctx, "event parked", "projection", name, "event_id", e.ID, "stream", e.Stream, "type", e.Type, "position", e.Position.String(), "err", aerr)
			if _, err := tx.Exec(ctx, `insert into projection_parked (name, event_id, stream, event_type, position, error, attempts)
values ($1, $2, $3, $4, $5, $6, $7) on conflict (name, event_id) do update set error = excluded.error, attempts = excluded.attempts, parked_at = now()`,
				name, e.ID, e.Stream, e.Type, e.Position.String(), aerr.Error(), attempts); err != nil {
				return err
			}
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Parked is an event a projection could not apply.
type Parked struct {
	EventID             string
	Stream, Type, Error string
	Position            string
	Attempts            int
	ParkedAt            time.Time
}

// ListParked returns the events projection name parked, oldest first.
func ListParked(ctx context.Context, pool *pgxpool.Pool, name string) ([]Parked, error) {
	rows, err := pool.Query(ctx, `select event_id::text, stream, event_type, error, position, attempts, parked_at from projection_parked where name = $1 order by parked_at, position`, name)
	if err != nil {
		return nil, fmt.Errorf("parked events of %s: %w", name, err)
	}
	defer rows.Close()
	var out []Parked
	for rows.Next() {
		var pk Parked
		if err := rows.Scan(&pk.EventID, &pk.Stream, &pk.Type, &pk.Error, &pk.Position, &pk.Attempts, &pk.ParkedAt); err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, rows.Err()
}

// ReplayParked applies the parked events of proj again, in log order (after a fix of its handler);
// each one that applies leaves the parked list, each one that fails again stays with its new error.
// It returns how many applied.
func ReplayParked(ctx context.Context, store eventstore.Store, pool *pgxpool.Pool, proj Projection) (int, error) {
	parked, err := ListParked(ctx, pool, proj.Name())
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, pk := range parked {
		events, err := store.ReadStream(ctx, pk.Stream, eventstore.ReadStreamOptions{})
		if err != nil {
			return applied, fmt.Errorf("replay %s: read %s: %w", pk.EventID, pk.Stream, err)
		}
		var event *eventstore.RecordedEvent
		for i := range events {
			if events[i].ID.String() == pk.EventID {
				event = &events[i]
			}
		}
		if event == nil {
			return applied, fmt.Errorf("replay %s: not in stream %s any more", pk.EventID, pk.Stream)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := proj.Apply(ctx, tx, []eventstore.RecordedEvent{*event}); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `delete from projection_parked where name = $1 and event_id = $2`, proj.Name(), event.ID)
			return err
		})
		if err != nil {
			if _, uerr := pool.Exec(ctx, `update projection_parked set error = $3, attempts = attempts + 1 where name = $1 and event_id = $2`, proj.Name(), event.ID, err.Error()); uerr != nil {
				return applied, uerr
			}
			continue
		}
		applied++
	}
	return applied, nil
}

// PublishJSON returns an Options.Publish that sends progress as JSON on subject (normally
// Namespace.Progress of the projection's name) with publish, e.g. nats.Conn.Publish.
func PublishJSON(publish func(subject string, data []byte) error, subject string) func(wire.Progress) {
	return func(pr wire.Progress) {
		data, _ := json.Marshal(pr)
		_ = publish(subject, data)
	}
}
