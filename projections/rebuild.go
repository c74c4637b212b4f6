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
	if opts.Schema == "" {
		opts.Schema = proj.Name()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.RetireAfter <= 0 {
		opts.RetireAfter = 5 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = func(RebuildProgress) {}
	}
	shadow := opts.Schema + "_rebuild"
	unlock, err := rebuildLock(ctx, url, opts.Schema)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
	}
	defer unlock()
	pool, err := pgschema.Open(ctx, url, shadow, 4)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
	}
	defer pool.Close()
	started, startPos := time.Now(), eventstore.Start
	if cp, err := progressCheckpoint(ctx, pool, proj.Name()); err == nil {
		startPos = cp // resuming
	}
	var bulkPos atomic.Pointer[eventstore.Position] // where the bulk load has committed to
	bulkPos.Store(&eventstore.Position{})
	p := New(store, pool, proj, Options{BatchSize: opts.BatchSize, Log: opts.Log, AsyncCommit: true})
	report := func(phase string) (eventstore.Position, eventstore.Position) {
		pos := p.Position()
		if phase == "bulk loading" || phase == "indexing" {
			pos = *bulkPos.Load()
		}
		var head eventstore.Position
		if opts.Head != nil {
			head, _ = opts.Head(ctx)
		}
		pr := RebuildProgress{Phase: phase, Position: pos, Head: head, Done: int64(pos.Prepare), Total: int64(head.Prepare)}
		if pos.Prepare == 0 && pos.Commit > 0 { // a horizon position: past every event below it
			pr.Done = pr.Total
		}
		if secs := time.Since(started).Seconds(); secs > 0 {
			pr.Rate = float64(pr.Done-int64(startPos.Prepare)) / secs
			if pr.Rate > 0 && pr.Total > pr.Done {
				pr.ETA = time.Duration(float64(pr.Total-pr.Done) / pr.Rate * float64(time.Second))
			}
		}
		opts.Progress(pr)
		return pos, head
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	if bulk, ok := proj.(BulkLoader); ok {
		// Up to the tip of the log: the bulk load, with progress reports while it runs.
		var phase atomic.Value
		phase.Store("bulk loading")
		bulkDone := make(chan error, 1)
		go func() {
			_, err := bulkLoad(ctx, store, pool, bulk, bulkOptions{PageSize: opts.BulkPage, CommitEvery: opts.BulkCommitEvery, Moved: func(p eventstore.Position) { bulkPos.Store(&p) }, Finishing: func() { phase.Store("indexing") }, Log: opts.Log})
			bulkDone <- err
		}()
	bulkLoop:
		for {
			select {
			case err := <-bulkDone:
				if err != nil {
					return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
				}
				break bulkLoop
			case <-tick.C:
				report(phase.Load().(string))
			}
		}
	}
	if err := p.Migrate(ctx); err != nil {
		return fmt.Errorf("rebuild %s: %w", proj.Name(), err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = p.Run(runCtx); close(done) }()
	stopped := false
	stopRebuild := func() {
		if !stopped {
			stop()
			<-done
			stopped = true
		}
	}
	defer stopRebuild()

	// Replay until the new version is within reach of the live one.
	for {
		live, err := progressCheckpoint(ctx, pool, proj.Name(), opts.Schema)
		if err != nil {
			return fmt.Errorf("rebuild %s: read the live checkpoint: %w", proj.Name(), err)
		}
		// Caught up with the tip of the log and at or past the live version.
		if pos := p.Position(); p.CaughtUp() && pos.Compare(live) >= 0 && p.Health() == nil {
			break
		}
		if err := p.Health(); err != nil && !errors.Is(err, errNotRunning) {
			opts.Log.Warn("rebuild projector", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			report("replaying")
		case <-time.After(100 * time.Millisecond):
		}
	}
	report("swapping")

	// Swap: hold the live batch lock (no live batch runs), let the new version pass the live
	// checkpoint, stop it, rename, commit. The live projector then finds its checkpoint moved and
	// follows the new version from there.
	retired := opts.Schema + "_retired_" + strconv.FormatInt(time.Now().Unix(), 10)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtext('orderflow:projection:' || $1 || ':' || $2))`, opts.Schema, proj.Name()); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `select exists (select 1 from pg_namespace where nspname = $1)`, opts.Schema).Scan(&exists); err != nil {
			return err
		}
		live := eventstore.Start
		if exists {
			var err error
			if live, err = progressCheckpoint(ctx, tx, proj.Name(), opts.Schema); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for p.Position().Compare(live) < 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("the new version did not reach the live position %s in 30s", live)
			}
			time.Sleep(10 * time.Millisecond)
		}
		stopRebuild()
		ident := func(s string) string { return pgx.Identifier{s}.Sanitize() }
		if exists {
			if _, err := tx.Exec(ctx, `alter schema `+ident(opts.Schema)+` rename to `+ident(retired)); err != nil {
				return err
			}
		}
		// The bulk load's marker has done its work.
		if _, err := tx.Exec(ctx, `drop table if exists `+pgx.Identifier{shadow, "projection_bulk"}.Sanitize()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `alter schema `+ident(shadow)+` rename to `+ident(opts.Schema))
		return err
	})
	if err != nil {
		return fmt.Errorf("rebuild %s: swap: %w", proj.Name(), err)
	}
	report("done")
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
	err := q.QueryRow(ctx, `select commit_position, prepare_position from `+table+` where name = $1`, name).Scan(&c, &pr)
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
