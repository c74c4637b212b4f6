// Package bench holds orderflow's throughput workloads, shared by `orderflow-bench` and the Go
// benchmarks, so that the figures in the README come from one piece of code.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
)

// Options of AppendVsInsert.
type Options struct {
	Writers  int
	Duration time.Duration // of each round
	Rounds   int           // rounds of each workload, interleaved so drift hits both
	Progress io.Writer     // one line per round; may be nil
}

// Result of AppendVsInsert.
type Result struct {
	InsertsPerSec, AppendsPerSec float64
}

// Ratio is appends per raw insert.
func (r Result) Ratio() float64 {
	if r.InsertsPerSec == 0 {
		return 0
	}
	return r.AppendsPerSec / r.InsertsPerSec
}

// AppendVsInsert measures, on pool's database, event store appends (one event each, every writer
// on its own stream with an exact expected revision) against the baseline: a raw single-row
// INSERT and commit of the same columns into a table with only a primary key.
func AppendVsInsert(ctx context.Context, pool *pgxpool.Pool, opts Options) (Result, error) {
	schema := "bench_" + uuid.NewString()[:8]
	if _, err := pool.Exec(ctx, `create schema `+schema+`;
create table `+schema+`.raw (
  id bigint generated always as identity primary key,
  stream_id text not null, stream_version bigint not null, event_id uuid not null,
  event_type text not null, data json not null, metadata json not null,
  recorded_at timestamptz not null default now())`); err != nil {
		return Result{}, fmt.Errorf("bench schema: %w", err)
	}
	defer pool.Exec(context.Background(), `drop schema `+schema+` cascade`)
	store := postgres.New(pool, postgres.Options{Schema: schema})
	if err := store.Migrate(ctx); err != nil {
		return Result{}, err
	}
	data := []byte(`{"orderId":"o-1","customerId":"c-1","lines":[{"productId":"sku-1","quantity":2,"unitPriceCents":1250}],"totalCents":2500}`)
	meta, _ := json.Marshal(eventstore.Metadata{CorrelationID: uuid.NewString(), CausationID: uuid.NewString()})
	insertSQL := `insert into ` + schema + `.raw (stream_id, stream_version, event_id, event_type, data, metadata) values ($1, $2, $3, $4, $5, $6)`

	raw := func(ctx context.Context, w int, i int64) error {
		_, err := pool.Exec(ctx, insertSQL, fmt.Sprintf("raw-%d", w), i, uuid.New(), "order.placed.v1", data, meta)
		return err
	}
	// Each writer's stream revision, re-read before every round: a round's deadline may cancel
	// an append after it committed.
	revisions := make([]int64, opts.Writers)
	readHeads := func() error {
		for w := range revisions {
			revisions[w] = eventstore.NoRevision
			last, err := store.ReadStream(ctx, fmt.Sprintf("bench-%d", w), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1, Limit: 1})
			if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
				return err
			}
			if len(last) == 1 {
				revisions[w] = last[0].Revision
			}
		}
		return nil
	}
	appendOne := func(ctx context.Context, w int, _ int64) error {
		res, err := store.Append(ctx, fmt.Sprintf("bench-%d", w), eventstore.Exact(revisions[w]), []eventstore.EventData{{
			ID: uuid.New(), Type: "order.placed.v1", Data: data,
			Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "c"},
		}})
		if err == nil {
			revisions[w] = res.NextRevision
		}
		return err
	}
	var inserts, appends int64
	var insertTime, appendTime time.Duration
	for round := 1; round <= opts.Rounds; round++ {
		n, d, err := measure(ctx, opts, raw)
		if err != nil {
			return Result{}, fmt.Errorf("raw insert: %w", err)
		}
		inserts, insertTime = inserts+n, insertTime+d
		if err := readHeads(); err != nil {
			return Result{}, err
		}
		m, e, err := measure(ctx, opts, appendOne)
		if err != nil {
			return Result{}, fmt.Errorf("append: %w", err)
		}
		appends, appendTime = appends+m, appendTime+e
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "round %d/%d: raw insert %.0f/s, append %.0f/s\n", round, opts.Rounds, float64(n)/d.Seconds(), float64(m)/e.Seconds())
		}
	}
	return Result{InsertsPerSec: float64(inserts) / insertTime.Seconds(), AppendsPerSec: float64(appends) / appendTime.Seconds()}, nil
}

// measure runs op from opts.Writers goroutines for opts.Duration and counts completed ops.
func measure(ctx context.Context, opts Options, op func(ctx context.Context, writer int, i int64) error) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	var count atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range opts.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); ctx.Err() == nil; i++ {
				if err := op(ctx, w, i); err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return count.Load(), time.Since(start), firstErr
}
