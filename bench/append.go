// Package bench is orderflow's benchmarks: each workload with the baseline it is measured against
// in the same run, and its report (Main; cmd/orderflow-bench is its command). Workloads the Go
// benchmarks share live here too, so that the figures in docs/benchmarks.md come from one piece of
// code.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
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
	// ProtectedPerSec: the same appends through personal-data protection (the platform's path:
	// personal.Protect; order events hold no personal field). PersonalPerSec: appends of events
	// whose personal fields it encrypts (customer.address_changed), each writer one customer.
	ProtectedPerSec, PersonalPerSec float64
}

// ProtectedRatio is appends through protection per plain append.
func (r Result) ProtectedRatio() float64 { return ratio(r.ProtectedPerSec, r.AppendsPerSec) }

// PersonalRatio is appends of encrypted personal events per plain append.
func (r Result) PersonalRatio() float64 { return ratio(r.PersonalPerSec, r.AppendsPerSec) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Ratio is appends per raw insert.
func (r Result) Ratio() float64 { return ratio(r.AppendsPerSec, r.InsertsPerSec) }

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
	keyPool, err := pgschema.Open(ctx, pool.Config().ConnString(), schema, 4)
	if err != nil {
		return Result{}, err
	}
	defer keyPool.Close()
	keys := personal.PostgresKeys{Pool: keyPool}
	if err := keys.Migrate(ctx); err != nil {
		return Result{}, err
	}
	protected := personal.Protect(store, personal.SpecOf(customer.Personal...), personal.NewCache(keys, time.Hour, 1000))
	data := []byte(`{"orderId":"o-1","customerId":"c-1","lines":[{"productId":"sku-1","quantity":2,"unitPriceCents":1250}],"totalCents":2500}`)
	meta, _ := json.Marshal(eventstore.Metadata{CorrelationID: uuid.NewString(), CausationID: uuid.NewString()})
	insertSQL := `insert into ` + schema + `.raw (stream_id, stream_version, event_id, event_type, data, metadata) values ($1, $2, $3, $4, $5, $6)`

	raw := func(ctx context.Context, w int, i int64) error {
		_, err := pool.Exec(ctx, insertSQL, fmt.Sprintf("raw-%d", w), i, uuid.New(), "order.placed.v1", data, meta)
		return err
	}
	// appender appends to each writer's stream prefix-<writer> of store, events of typ with the
	// payload of writer w. Each writer's stream revision is re-read before every round (heads):
	// a round's deadline may cancel an append after it committed.
	appender := func(store eventstore.Store, prefix, typ string, payload func(w int) []byte) (heads func() error, op func(context.Context, int, int64) error) {
		revisions := make([]int64, opts.Writers)
		heads = func() error {
			for w := range revisions {
				revisions[w] = eventstore.NoRevision
				last, err := store.ReadStream(ctx, fmt.Sprintf("%s-%d", prefix, w), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1, Limit: 1})
				if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
					return err
				}
				if len(last) == 1 {
					revisions[w] = last[0].Revision
				}
			}
			return nil
		}
		op = func(ctx context.Context, w int, _ int64) error {
			res, err := store.Append(ctx, fmt.Sprintf("%s-%d", prefix, w), eventstore.Exact(revisions[w]), []eventstore.EventData{{
				ID: uuid.New(), Type: typ, Data: payload(w), Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "c"},
			}})
			if err == nil {
				revisions[w] = res.NextRevision
			}
			return err
		}
		return heads, op
	}
	orderPayload := func(int) []byte { return data }
	customerPayload := func(w int) []byte {
		return []byte(fmt.Sprintf(`{"customerId":"bench-c-%d","shippingAddress":{"line1":"1 Main St","city":"Springfield","postalCode":"12345","country":"US"},"at":"2026-01-02T03:04:05Z"}`, w))
	}
	type workload struct {
		name     string
		heads    func() error
		op       func(context.Context, int, int64) error
		n        int64
		duration time.Duration
	}
	workloads := []*workload{{name: "raw insert", heads: func() error { return nil }, op: raw}}
	for _, w := range []struct {
		name, prefix, typ string
		store             eventstore.Store
		payload           func(int) []byte
	}{
		{"append", "bench", "order.placed.v1", store, orderPayload},
		{"append through protection", "bench-p", "order.placed.v1", protected, orderPayload},
		{"append of personal events", "bench-c", customer.TypeAddressChanged, protected, customerPayload},
	} {
		heads, op := appender(w.store, w.prefix, w.typ, w.payload)
		workloads = append(workloads, &workload{name: w.name, heads: heads, op: op})
	}
	for round := 1; round <= opts.Rounds; round++ {
		var line []string
		// Each round starts with another workload, so that what runs after a long table fill or a
		// checkpoint is not always the same one.
		order := append(slices.Clone(workloads[round%len(workloads):]), workloads[:round%len(workloads)]...)
		for _, w := range order {
			if err := w.heads(); err != nil {
				return Result{}, err
			}
			n, d, err := measure(ctx, opts, w.op)
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", w.name, err)
			}
			w.n, w.duration = w.n+n, w.duration+d
			line = append(line, fmt.Sprintf("%s %.0f/s", w.name, float64(n)/d.Seconds()))
		}
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "round %d/%d: %s\n", round, opts.Rounds, strings.Join(line, ", "))
		}
	}
	rate := func(w *workload) float64 { return float64(w.n) / w.duration.Seconds() }
	return Result{InsertsPerSec: rate(workloads[0]), AppendsPerSec: rate(workloads[1]), ProtectedPerSec: rate(workloads[2]), PersonalPerSec: rate(workloads[3])}, nil
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
