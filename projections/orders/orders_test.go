package orders_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/bench"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/projections/projectiontest"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// history writes a synthetic order history (placed, confirmed, paid, shipped, delivered,
// cancelled; each order's steps spread over the log) and builds the live read model from it with
// the ordinary projector.
func history(t *testing.T, events int) (url string, store *postgres.Store, live *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	url = pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store = postgres.New(pool, postgres.Options{})
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := bench.OrderHistory(ctx, pool, events, 25, nil)
	if err != nil {
		t.Fatal(err)
	}
	live, err = pgschema.Open(ctx, url, orders.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	projectiontest.Run(t, projections.New(store, live, orders.Projection{}, projections.Options{Log: quiet, BatchSize: 300}))
	// Every order event is a history row.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var rows int
		if err := live.QueryRow(ctx, `select count(*) from order_history`).Scan(&rows); err == nil && rows == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live projector has %d of %d history rows after 60s", rows, n)
		}
	}
	return url, store, live
}

// snapshot is every row of the read model, as text, in key order.
func snapshot(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`select concat_ws('|', order_id, customer_id, status, total_cents, lines::text, placed_at, updated_at, cancelled_at, cancel_reason) from orders order by order_id`,
		`select concat_ws('|', order_id, revision, status, at) from order_history order by order_id, revision`,
	} {
		rows, err := pool.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func indexes(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `select indexname from pg_indexes where schemaname = current_schema() order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func same(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// TestBulkRebuildEqualsTheLiveModel: the bulk load (COPY, changes to earlier orders staged and
// applied at the end, keys and indexes built last) produces exactly the rows the live projector
// made event by event, with the same indexes, even with a commit after every page of 100 events,
// so that most orders' lives cross batches.
func TestBulkRebuildEqualsTheLiveModel(t *testing.T) {
	t.Parallel()
	url, store, live := history(t, 4000)
	want, wantIdx := snapshot(t, live), indexes(t, live)
	if len(want) < 4000 {
		t.Fatalf("the live model has %d rows: the history is too small to tell", len(want))
	}
	var phases []string
	err := projections.Rebuild(t.Context(), store, url, orders.Projection{}, projections.RebuildOptions{
		Head: store.Head, BulkPage: 100, BulkCommitEvery: time.Nanosecond, RetireAfter: time.Millisecond,
		Progress: func(p projections.RebuildProgress) { phases = append(phases, p.Phase) },
	})
	if err != nil {
		t.Fatal(err)
	}
	same(t, snapshot(t, live), want)
	if got := indexes(t, live); !slices.Equal(got, wantIdx) {
		t.Fatalf("indexes %v, want %v", got, wantIdx)
	}
	if !slices.Contains(phases, "done") {
		t.Errorf("progress phases %v: no done", phases)
	}
	// Finishing again finds everything built.
	if err := (orders.Projection{}).BulkFinish(t.Context(), live); err != nil {
		t.Fatalf("BulkFinish on a finished model: %v", err)
	}
}

// TestBulkRebuildResumes: a rebuild stopped in the middle of its bulk load resumes from its
// checkpoint and ends with exactly the live rows.
func TestBulkRebuildResumes(t *testing.T) {
	t.Parallel()
	url, store, live := history(t, 20000)
	want := snapshot(t, live)
	shadow, err := pgschema.Open(t.Context(), url, orders.Name+"_rebuild", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer shadow.Close()
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		first <- projections.Rebuild(ctx, store, url, orders.Projection{}, projections.RebuildOptions{BulkPage: 100, BulkCommitEvery: time.Nanosecond})
	}()
	var stoppedAt int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if shadow.QueryRow(t.Context(), `select prepare_position from projection_checkpoints where name = $1`, orders.Name).Scan(&stoppedAt) == nil && stoppedAt > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rebuild committed nothing in 30s")
		}
	}
	cancel()
	if err := <-first; err == nil {
		t.Fatal("the stopped rebuild reported success")
	}
	var finished bool
	if err := shadow.QueryRow(t.Context(), `select exists (select 1 from projection_bulk)`).Scan(&finished); err != nil || finished {
		t.Fatalf("the bulk load finished (%v) before it could be stopped: the test needs a longer history", err)
	}
	var partial int
	if err := shadow.QueryRow(t.Context(), `select count(*) from orders`).Scan(&partial); err != nil || partial == 0 {
		t.Fatalf("the stopped rebuild left %d orders (%v), want some", partial, err)
	}
	if err := projections.Rebuild(t.Context(), store, url, orders.Projection{}, projections.RebuildOptions{BulkPage: 700, RetireAfter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	same(t, snapshot(t, live), want)
	t.Logf("stopped at position %d with %d orders, resumed, %d rows as live", stoppedAt, partial, len(want))
}

// TestKeys: a batch names each order it changes once, and the customer of each new order.
func TestKeys(t *testing.T) {
	ev := func(stream, typ, data string) eventstore.RecordedEvent {
		return eventstore.RecordedEvent{Stream: stream, Type: typ, Data: []byte(data)}
	}
	got := orders.Projection{}.Keys([]eventstore.RecordedEvent{
		ev(model.Stream("o-1"), model.TypePlaced, `{"orderId":"o-1","customerId":"c-1","lines":[],"totalCents":0}`),
		ev(model.Stream("o-2"), model.TypeCancelled, `{"orderId":"o-2"}`),
		ev(model.Stream("o-1"), model.TypeConfirmed, `{"orderId":"o-1"}`),
	})
	if want := []string{"order:o-1", "customer:c-1", "order:o-2"}; !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	if got := (orders.Projection{}).Keys([]eventstore.RecordedEvent{ev("elsewhere", model.TypeCancelled, `{}`)}); got != nil {
		t.Errorf("an event of another stream: keys = %v, want nil (cannot say)", got)
	}
}

// placedO1 is order o-1's placed event, as the log holds it.
const placedO1 = `{"orderId":"o-1","customerId":"c-1","lines":[{"productId":"p-1","quantity":1,"unitPriceCents":5}],"totalCents":5,"at":"2026-01-02T03:04:05Z"}`

// rebuildOf appends one event of type typ and payload data to each stream (first to last, in
// order), rebuilds the orders read model of url with opts, and answers the rebuilt model's pool
// and how many orders it holds.
func rebuildOf(t *testing.T, url string, events [][3]string, opts projections.RebuildOptions) (*pgxpool.Pool, int) {
	t.Helper()
	ctx := t.Context()
	store := pgtest.EventStoreAt(t, url, 2)
	for _, e := range events {
		stream, typ, data := e[0], e[1], e[2]
		if _, err := store.Append(ctx, stream, eventstore.NoStream(), []eventstore.EventData{{ID: eventstore.DeriveID(stream, 0), Type: typ, Data: []byte(data)}}); err != nil {
			t.Fatal(err)
		}
	}
	opts.Schema, opts.Log, opts.RetireAfter = orders.Name, quiet, time.Millisecond
	if err := projections.Rebuild(ctx, store, url, orders.Projection{}, opts); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	pool, err := pgschema.Open(ctx, url, orders.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var n int
	if err := pool.QueryRow(ctx, `select count(*) from orders`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return pool, n
}

// TestABulkRebuildParksWhatItCannotApply: an event the read model cannot apply (a placed order
// whose id is a number) is parked by a rebuild as by the projector, and the rest is loaded.
func TestABulkRebuildParksWhatItCannotApply(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	pool, n := rebuildOf(t, url, [][3]string{{"order-o-1", model.TypePlaced, placedO1}, {"order-poison", model.TypePlaced, `{"orderId":42}`}}, projections.RebuildOptions{})
	if n != 1 {
		t.Fatalf("orders after the rebuild: %d, want the good one", n)
	}
	parked, err := projections.ListParked(t.Context(), pool, orders.Name)
	if err != nil || len(parked) != 1 || parked[0].Stream != "order-poison" {
		t.Fatalf("parked: %+v (%v), want the poison event", parked, err)
	}
}

// TestABulkRebuildCommitsPastEventsItIgnores: a bulk load that commits while its batch holds none
// of the read model's events (the log moved past events of other streams) only moves its
// checkpoint: the read model is not asked to load an empty batch (the orders model panicked on
// one during a CI run, a rebuild crashing its process).
func TestABulkRebuildCommitsPastEventsItIgnores(t *testing.T) {
	t.Parallel()
	events := [][3]string{{"order-o-1", model.TypePlaced, placedO1}}
	for i := range 20 {
		events = append(events, [3]string{fmt.Sprintf("product-p-%d", i), "inventory.restocked.v1", `{}`})
	}
	// One event a page and a commit after every page: most commits hold no order event.
	if _, n := rebuildOf(t, pgtest.NewDatabase(t), events, projections.RebuildOptions{BulkPage: 1, BulkCommitEvery: time.Nanosecond}); n != 1 {
		t.Fatalf("orders after the rebuild: %d, want 1", n)
	}
}
