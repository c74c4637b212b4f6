package projections

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgschema"
)

// ErrRebuildRunning: another rebuild of the same read model holds its lock.
var ErrRebuildRunning = errors.New("a rebuild of this read model is already running")

// RebuildProgress is what a rebuild reports about once a second.
type RebuildProgress struct {
	Phase    string // "replaying", "swapping", "done"
	Position eventstore.Position
	Head     eventstore.Position
	// Done and Total count log positions (PostgreSQL: global positions), not only the events the
	// read model takes: a fair measure of the replay's way to the head.
	Done, Total int64
	Rate        float64 // events per second
	ETA         time.Duration
}

// RebuildOptions tune Rebuild.
type RebuildOptions struct {
	// Schema is the live read model's schema; the new version is built in Schema+"_rebuild".
	Schema    string
	BatchSize int // default 5000
	Progress  func(RebuildProgress)
	Log       *slog.Logger
	// Head returns the log's last position (for progress); nil reports no total.
	Head func(ctx context.Context) (eventstore.Position, error)
	// BulkPage and BulkCommitEvery tune the bulk load of a BulkLoader: events per read (default
	// 10,000) and how often a batch commits (default 1s).
	BulkPage        int
	BulkCommitEvery time.Duration
	// RetireAfter is how long the old version is kept after the swap for queries still running on
	// it; default 5s.
	RetireAfter time.Duration
}

// Rebuild replays the log from its start into a new version of proj's read model, in its own
// schema, while the live version keeps serving; once the new version has caught up with the live
// one it swaps in atomically and the old one is dropped. A rebuild that stops resumes from the new
// version's checkpoint. Only one rebuild of a read model runs at a time (ErrRebuildRunning).
func Rebuild(ctx context.Context, store eventstore.Store, url string, proj Projection, opts RebuildOptions) error {
	opts = opts.withDefaults(proj)
	unlock, err := rebuildLock(ctx, url, opts.Schema)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
	}
	defer unlock()
	shadow := opts.Schema + "_rebuild"
	pool, err := pgschema.Open(ctx, url, shadow, 4)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
	}
	defer pool.Close()
	r := &rebuilding{proj: proj, pool: pool, opts: opts, shadow: shadow, started: time.Now(), startPos: eventstore.Start,
		p: New(store, pool, proj, Options{BatchSize: opts.BatchSize, Log: opts.Log, AsyncCommit: true}), tick: time.NewTicker(time.Second)}
	defer r.tick.Stop()
	if cp, err := progressCheckpoint(ctx, pool, proj.Name()); err == nil {
		r.startPos = cp // resuming
	}
	r.bulkPos.Store(&eventstore.Position{})
	if bulk, ok := proj.(BulkLoader); ok {
		if err := r.bulkLoad(ctx, store, bulk); err != nil {
			return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
		}
	}
	if err := r.p.Migrate(ctx); err != nil {
		return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.p.Run(runCtx); close(done) }()
	stopped := false
	stopReplay := func() {
		if !stopped {
			stop()
			<-done
			stopped = true
		}
	}
	defer stopReplay()
	if err := r.catchUp(ctx); err != nil {
		return err
	}
	r.report(ctx, "swapping")
	retired, err := r.swap(ctx, stopReplay)
	if err != nil {
		return fmt.Errorf("rebuild %s: swap: %w", proj.Name(), err)
	}
	r.report(ctx, "done")
	// Queries that started on the old version finish on it; then it goes.
	select {
	case <-ctx.Done():
	case <-time.After(opts.RetireAfter):
	}
	if _, err := pool.Exec(context.Background(), `drop schema if exists `+pgx.Identifier{retired}.Sanitize()+` cascade`); err != nil {
		opts.Log.Warn("drop the retired read model", "schema", retired, "err", err)
	}
	return nil
}

// withDefaults fills o's unset options for a rebuild of proj.
func (o RebuildOptions) withDefaults(proj Projection) RebuildOptions {
	if o.Schema == "" {
		o.Schema = proj.Name()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.RetireAfter <= 0 {
		o.RetireAfter = 5 * time.Second
	}
	if o.Progress == nil {
		o.Progress = func(RebuildProgress) {}
	}
	return o
}

// rebuilding is one rebuild under way: the new version in the shadow schema, the projector that
// replays into it, and what its progress reports need.
type rebuilding struct {
	proj     Projection
	pool     *pgxpool.Pool
	opts     RebuildOptions
	shadow   string
	p        *Projector
	bulkPos  atomic.Pointer[eventstore.Position] // where the bulk load has committed to
	started  time.Time
	startPos eventstore.Position
	tick     *time.Ticker // progress reports
}

// report tells opts.Progress where the rebuild stands in phase.
func (r *rebuilding) report(ctx context.Context, phase string) {
	pos := r.p.Position()
	if phase == "bulk loading" || phase == "indexing" {
		pos = *r.bulkPos.Load()
	}
	var head eventstore.Position
	if r.opts.Head != nil {
		head, _ = r.opts.Head(ctx)
	}
	pr := RebuildProgress{Phase: phase, Position: pos, Head: head, Done: int64(pos.Prepare), Total: int64(head.Prepare)}
	if pos.Prepare == 0 && pos.Commit > 0 { // a horizon position: past every event below it
		pr.Done = pr.Total
	}
	if secs := time.Since(r.started).Seconds(); secs > 0 {
		pr.Rate = float64(pr.Done-int64(r.startPos.Prepare)) / secs
		if pr.Rate > 0 && pr.Total > pr.Done {
			pr.ETA = time.Duration(float64(pr.Total-pr.Done) / pr.Rate * float64(time.Second))
		}
	}
	r.opts.Progress(pr)
}

// bulkLoad loads the log up to its tip in bulk, reporting progress while it runs.
func (r *rebuilding) bulkLoad(ctx context.Context, store eventstore.Store, bulk BulkLoader) error {
	var phase atomic.Value
	phase.Store("bulk loading")
	done := make(chan error, 1)
	go func() {
		_, err := bulkLoad(ctx, store, r.pool, bulk, bulkOptions{PageSize: r.opts.BulkPage, CommitEvery: r.opts.BulkCommitEvery,
			Moved: func(p eventstore.Position) { r.bulkPos.Store(&p) }, Finishing: func() { phase.Store("indexing") }, Log: r.opts.Log})
		done <- err
	}()
	for {
		select {
		case err := <-done:
			return err
		case <-r.tick.C:
			r.report(ctx, phase.Load().(string))
		}
	}
}

// catchUp waits until the new version is within reach of the live one: caught up with the tip of
// the log, at or past the live version's checkpoint.
func (r *rebuilding) catchUp(ctx context.Context) error {
	for {
		live, err := progressCheckpoint(ctx, r.pool, r.proj.Name(), r.opts.Schema)
		if err != nil {
			return fmt.Errorf("rebuild %s: read the live checkpoint: %w", r.proj.Name(), err)
		}
		if pos := r.p.Position(); r.p.CaughtUp() && pos.Compare(live) >= 0 && r.p.Health() == nil {
			return nil
		}
		if err := r.p.Health(); err != nil && !errors.Is(err, errNotRunning) {
			r.opts.Log.Warn("rebuild projector", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.tick.C:
			r.report(ctx, "replaying")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// swap puts the new version in the live one's place and answers the schema the old one is now
// in: it holds the live batch lock (no live batch runs), lets the new version pass the live
// checkpoint, stops it (stopReplay), renames, commits. The live projector then finds its
// checkpoint moved and follows the new version from there.
func (r *rebuilding) swap(ctx context.Context, stopReplay func()) (string, error) {
	schema, name := r.opts.Schema, r.proj.Name()
	retired := schema + "_retired_" + strconv.FormatInt(time.Now().Unix(), 10)
	return retired, pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtext('orderflow:projection:' || $1 || ':' || $2))`, schema, name); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `select exists (select 1 from pg_namespace where nspname = $1)`, schema).Scan(&exists); err != nil {
			return err
		}
		live := eventstore.Start
		if exists {
			var err error
			if live, err = progressCheckpoint(ctx, tx, name, schema); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for r.p.Position().Compare(live) < 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("the new version did not reach the live position %s in 30s", live)
			}
			time.Sleep(10 * time.Millisecond)
		}
		stopReplay()
		ident := func(s string) string { return pgx.Identifier{s}.Sanitize() }
		if exists {
			if _, err := tx.Exec(ctx, `alter schema `+ident(schema)+` rename to `+ident(retired)); err != nil {
				return err
			}
		}
		// The bulk load's marker has done its work.
		if _, err := tx.Exec(ctx, `drop table if exists `+pgx.Identifier{r.shadow, "projection_bulk"}.Sanitize()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `alter schema `+ident(r.shadow)+` rename to `+ident(schema))
		return err
	})
}

// progressCheckpoint reads a projection's checkpoint, in schema if one is given (else the
// connection's search path).
func progressCheckpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string, schema ...string) (eventstore.Position, error) {
	table := "projection_checkpoints"
	if len(schema) > 0 {
		table = pgx.Identifier{schema[0], table}.Sanitize()
	}
	var c, pr int64
	err := q.QueryRow(ctx, `select commit_position, prepare_position from `+table+` where name = $1`+slowest, name).Scan(&c, &pr)
	var pgErr *pgconn.PgError
	if errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pgErr) && pgErr.Code == "42P01") {
		return eventstore.Start, nil // nothing yet, or no live version at all (a new read model)
	}
	return eventstore.Position{Commit: uint64(c), Prepare: uint64(pr)}, err
}

// rebuildLock takes the session lock that lets one rebuild of schema run at a time, on a
// connection of its own, or answers ErrRebuildRunning. The connection is never used under ctx: a
// query cancelled by ctx would close it, and the server would drop the lock only once its backend
// noticed, after Rebuild returned (a rebuild started right after would find it still held).
// unlock releases it explicitly, then closes the connection.
func rebuildLock(ctx context.Context, url, schema string) (unlock func(), err error) {
	lockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(lockCtx, url)
	if err != nil {
		return nil, err
	}
	const key = `hashtext('orderflow:rebuild:' || $1)`
	var locked bool
	if err := conn.QueryRow(lockCtx, `select pg_try_advisory_lock(`+key+`)`, schema).Scan(&locked); err != nil || !locked {
		conn.Close(context.Background())
		return nil, cmp.Or(err, ErrRebuildRunning)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Exec(ctx, `select pg_advisory_unlock(`+key+`)`, schema) //nolint:errcheck // closing the session releases it too
		conn.Close(ctx)
	}, nil
}
