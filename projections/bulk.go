package projections

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgerr"
)

// BulkLoader is a projection with a faster way to build its read model from nothing. Rebuild
// uses it to replay the log up to its tip, then finishes the tables and follows the log with
// Apply as usual.
type BulkLoader interface {
	Projection
	// BulkMigrate creates the read model's tables for a bulk load: the keys its BulkApply needs,
	// no other index. It must be safe to run again.
	BulkMigrate(ctx context.Context, tx pgx.Tx) error
	// BulkApply applies a large batch of events, in log order, to the tables BulkMigrate made.
	// A batch commits with its checkpoint, so it may take rows it inserts to be new (COPY).
	BulkApply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error
	// BulkFinish turns the bulk-loaded tables into the ones Migrate makes (keys, indexes). It may
	// build on several of pool's connections at once, each in short transactions of its own, and
	// must be safe to run again after it stopped halfway.
	BulkFinish(ctx context.Context, pool *pgxpool.Pool) error
}

// bulkDDL records, in the new version's schema, that its bulk load is finished.
const bulkDDL = `create table if not exists projection_bulk (
  name text primary key,
  finished_at timestamptz not null default now())`

// bulkOptions tune bulkLoad.
type bulkOptions struct {
	PageSize    int           // events per read; default 10,000
	CommitEvery time.Duration // a batch commits after this long at most; default 1s
	MaxBatch    int           // events per batch at most; default 200,000
	// Moved is called with each committed position.
	Moved func(eventstore.Position)
	// Finishing is called when the replay is done, before BulkFinish.
	Finishing func()
	// Log records the events parked.
	Log *slog.Logger
}

// bulkLoad replays the log from the read model's checkpoint to the tip of the log with
// proj.BulkApply: pages are read ahead while a batch is written, batches commit with their
// checkpoint every CommitEvery (short transactions: a long one would hold back the event store's
// read horizon), with synchronous_commit off. Then BulkFinish runs, once. It returns the last
// committed position.
func bulkLoad(ctx context.Context, store eventstore.Store, pool *pgxpool.Pool, proj BulkLoader, opts bulkOptions) (eventstore.Position, error) {
	opts = opts.withDefaults()
	finished, err := bulkMigrate(ctx, pool, proj)
	if err != nil {
		return eventstore.Start, fmt.Errorf("bulk load %s: migrate: %w", proj.Name(), err)
	}
	from, err := progressCheckpoint(ctx, pool, proj.Name())
	if err != nil || finished {
		return from, err
	}
	opts.Moved(from)
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	pages, readErr := readAhead(rctx, store, proj.Filter(), from, opts)
	b := &bulkBatch{pool: pool, proj: proj, opts: opts, pos: from, batchPos: from, started: time.Now()}
	for page := range pages {
		b.events = append(b.events, page.Events...)
		b.batchPos = page.Position
		if time.Since(b.started) >= opts.CommitEvery || len(b.events) >= opts.MaxBatch {
			if err := b.flush(ctx); err != nil {
				return b.pos, fmt.Errorf("bulk load %s: %w", proj.Name(), err)
			}
		}
	}
	select {
	case err := <-readErr:
		return b.pos, fmt.Errorf("bulk load %s: read $all from %s: %w", proj.Name(), b.batchPos, err)
	default:
	}
	if err := ctx.Err(); err != nil {
		return b.pos, err
	}
	if err := b.flush(ctx); err != nil {
		return b.pos, fmt.Errorf("bulk load %s: %w", proj.Name(), err)
	}
	if opts.Finishing != nil {
		opts.Finishing()
	}
	err = proj.BulkFinish(ctx, pool)
	if err == nil {
		_, err = pool.Exec(ctx, `insert into projection_bulk (name) values ($1) on conflict do nothing`, proj.Name())
	}
	if err != nil {
		return b.pos, fmt.Errorf("bulk load %s: finish: %w", proj.Name(), err)
	}
	return b.pos, nil
}

func (o bulkOptions) withDefaults() bulkOptions {
	if o.PageSize <= 0 {
		o.PageSize = 10_000
	}
	if o.CommitEvery <= 0 {
		o.CommitEvery = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 200_000
	}
	if o.Moved == nil {
		o.Moved = func(eventstore.Position) {}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// bulkMigrate makes the bulk load's tables, unless a bulk load of proj already finished there.
func bulkMigrate(ctx context.Context, pool *pgxpool.Pool, proj BulkLoader) (finished bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, checkpointDDL+"; "+bulkDDL); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `select exists (select 1 from projection_bulk where name = $1)`, proj.Name()).Scan(&finished); err != nil {
			return err
		}
		if finished {
			return nil
		}
		return proj.BulkMigrate(ctx, tx)
	})
	return finished, err
}

// readAhead reads the log's pages from from to its tip while the previous batch is written: the
// pages, closed at the end, and the error that ended the reading early, if one did.
func readAhead(ctx context.Context, store eventstore.Store, filter eventstore.Filter, from eventstore.Position, opts bulkOptions) (<-chan eventstore.Page, <-chan error) {
	pages := make(chan eventstore.Page, 2*opts.MaxBatch/opts.PageSize)
	readErr := make(chan error, 1)
	go func() {
		defer close(pages)
		pos := from
		for {
			page, err := store.ReadAll(ctx, pos, eventstore.ReadAllOptions{Filter: filter, Limit: opts.PageSize})
			if err != nil {
				readErr <- err
				return
			}
			select {
			case pages <- page:
			case <-ctx.Done():
				return
			}
			if page.AtEnd {
				return
			}
			pos = page.Position
		}
	}()
	return pages, readErr
}

// bulkBatch is the events a bulk load has read since its last commit, up to batchPos; pos is where
// it committed to.
type bulkBatch struct {
	pool          *pgxpool.Pool
	proj          BulkLoader
	opts          bulkOptions
	events        []eventstore.RecordedEvent
	pos, batchPos eventstore.Position
	started       time.Time
}

// flush commits the batch and its checkpoint in one transaction.
func (b *bulkBatch) flush(ctx context.Context) error {
	if b.batchPos == b.pos {
		return nil
	}
	commit := func(apply func(tx pgx.Tx) error) error {
		return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `set local synchronous_commit = off`); err != nil {
				return err
			}
			if err := apply(tx); err != nil {
				return err
			}
			return saveCheckpoint(ctx, tx, b.proj.Name(), b.batchPos)
		})
	}
	err := commit(func(tx pgx.Tx) error {
		if len(b.events) == 0 { // the log moved past events the read model ignores: the checkpoint moves
			return nil
		}
		return b.proj.BulkApply(ctx, tx, b.events)
	})
	if err != nil && ctx.Err() == nil && !pgerr.Unavailable(err) {
		// An event the read model cannot apply: park it, as the projector would, and load the
		// rest of the batch event by event.
		err = commit(func(tx pgx.Tx) error {
			return applyEachParking(ctx, tx, b.proj.Name(), b.proj.BulkApply, b.events, 1, b.opts.Log)
		})
	}
	if err != nil {
		return err
	}
	b.pos, b.events, b.started = b.batchPos, b.events[:0], time.Now()
	b.opts.Moved(b.pos)
	return nil
}

// saveCheckpoint writes name's checkpoint in tx: every partition's (one worker, the bulk load,
// reached pos in all of them); a read model with none yet gets one, which the projector spreads
// over its partitions.
func saveCheckpoint(ctx context.Context, tx pgx.Tx, name string, pos eventstore.Position) error {
	tag, err := tx.Exec(ctx, `update projection_checkpoints set commit_position = $2, prepare_position = $3, updated_at = now() where name = $1`,
		name, int64(pos.Commit), int64(pos.Prepare))
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	_, err = tx.Exec(ctx, `insert into projection_checkpoints (name, part, commit_position, prepare_position) values ($1, 0, $2, $3)`,
		name, int64(pos.Commit), int64(pos.Prepare))
	return err
}
