package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// weighed is the tally of the rebuild tests: version 1 weighs 1, version 2 weighs 10, so a reader
// can tell which version answered.
func weighed(weight int, slow time.Duration) *tally {
	return &tally{name: "weighed", prefix: "w-", weight: weight, slow: slow}
}

// live runs version 1 of the read model on schema "weighed" of a fresh database.
func live(t *testing.T, store eventstore.Store) (url string, total func() (int, error)) {
	t.Helper()
	url = pgtest.NewDatabase(t)
	pool, err := pgschema.Open(t.Context(), url, "weighed", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p := projections.New(store, pool, weighed(1, 0), projections.Options{Log: quiet, BatchSize: 50})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	t.Cleanup(stop)
	return url, func() (int, error) {
		var n int
		err := pool.QueryRow(context.Background(), `select coalesce(sum(n), 0) from weighed`).Scan(&n)
		return n, err
	}
}

func appendEvents(t *testing.T, s eventstore.Store, streams, each int) {
	t.Helper()
	for i := range streams {
		evs := make([]eventstore.EventData, each)
		for j := range evs {
			evs[j] = eventstore.EventData{ID: eventstore.DeriveID(fmt.Sprintf("w-%d-%d-%d", i, j, time.Now().UnixNano()), 0), Type: "w.v1", Data: []byte(`{}`)}
		}
		if _, err := s.Append(t.Context(), fmt.Sprintf("w-%d", i), eventstore.Any(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRebuildUnderLiveQueries: queries run throughout a rebuild; none fails or sees an empty or
// partial read model; after the swap they see version 2's answers, and the live projector goes on
// from the new version (events appended during and after the rebuild are counted once).
func TestRebuildUnderLiveQueries(t *testing.T) {
	t.Parallel()
	store := memory.New()
	appendEvents(t, store, 20, 50) // 1000 events
	url, total := live(t, store)
	deadline := time.Now().Add(20 * time.Second)
	for n, _ := total(); n != 1000; n, _ = total() {
		if time.Now().After(deadline) {
			t.Fatalf("version 1 has %d of 1000", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var bad atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := total()
			// Version 1 answers ≥ 1000 (1 per event), version 2 ≥ 10000: anything else is partial.
			if err != nil || (n < 1000) || (n > 1100 && n < 10000) {
				bad.Add(1)
				lastErr.Store(fmt.Sprintf("n=%d err=%v", n, err))
			}
		}
	}()
	wg.Add(1)
	go func() { // 50 more while the rebuild runs
		defer wg.Done()
		for i := range 5 {
			evs := make([]eventstore.EventData, 10)
			for j := range evs {
				evs[j] = eventstore.EventData{ID: eventstore.DeriveID(fmt.Sprintf("during-%d-%d", i, j), 0), Type: "w.v1", Data: []byte(`{}`)}
			}
			if _, err := store.Append(context.Background(), fmt.Sprintf("w-during-%d", i), eventstore.NoStream(), evs); err != nil {
				bad.Add(1)
				lastErr.Store(err.Error())
			}
		}
	}()
	err := projections.Rebuild(t.Context(), store, url, weighed(10, 2*time.Millisecond), projections.RebuildOptions{
		Schema: "weighed", BatchSize: 100, RetireAfter: 200 * time.Millisecond})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if bad.Load() > 0 {
		t.Fatalf("%d queries failed or saw a partial read model, e.g. %v", bad.Load(), lastErr.Load())
	}
	appendEvents(t, store, 1, 1) // after the swap: the live projector (version 1 code) counts it once
	deadline = time.Now().Add(20 * time.Second)
	for {
		n, err := total()
		if err == nil && n == 10*1050+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the swap: total %d (%v), want %d: version 2's 1050 events and one more counted once", n, err, 10*1050+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRebuildResumesAndIsExclusive: a rebuild stopped halfway resumes from its own checkpoint;
// while one runs, a second is refused.
func TestRebuildResumesAndIsExclusive(t *testing.T) {
	t.Parallel()
	store := memory.New()
	appendEvents(t, store, 40, 50) // 2000 events
	url, total := live(t, store)
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		first <- projections.Rebuild(ctx, store, url, weighed(10, 20*time.Millisecond), projections.RebuildOptions{Schema: "weighed", BatchSize: 100})
	}()
	// Wait until it has committed part of the replay.
	probe, err := pgschema.Open(t.Context(), url, "weighed_rebuild", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for deadline := time.Now().Add(20 * time.Second); ; {
		var part int64
		if probe.QueryRow(t.Context(), `select coalesce(sum(n), 0) from weighed`).Scan(&part) == nil && part > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rebuild committed nothing in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := projections.Rebuild(t.Context(), store, url, weighed(10, 0), projections.RebuildOptions{Schema: "weighed"}); !errors.Is(err, projections.ErrRebuildRunning) {
		t.Errorf("second rebuild: %v, want ErrRebuildRunning", err)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped rebuild: %v", err)
	}
	var resumedFrom int64
	shadow, err := pgschema.Open(t.Context(), url, "weighed_rebuild", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer shadow.Close()
	if err := shadow.QueryRow(t.Context(), `select coalesce(sum(n), 0) from weighed`).Scan(&resumedFrom); err != nil || resumedFrom == 0 || resumedFrom >= 20000 {
		t.Fatalf("the stopped rebuild left %d (%v): want part of 20000", resumedFrom, err)
	}
	if err := projections.Rebuild(t.Context(), store, url, weighed(10, 0), projections.RebuildOptions{Schema: "weighed", BatchSize: 500, RetireAfter: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if n, err := total(); err != nil || n != 20000 {
		t.Fatalf("after the resumed rebuild: %d (%v), want 20000: every event counted once", n, err)
	}
}

// line is the read model of TestRebuildWithUpcaster: it knows only the current (v2) shape.
type line struct{}

func (line) Name() string { return "lines" }
func (line) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypePrefixes: []string{"line."}}
}
func (line) Migrate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `create table if not exists lines (id text primary key, quantity int not null, unit_price_cents bigint not null)`)
	return err
}
func (line) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	for _, e := range events {
		if e.Type != "line.added.v2" {
			return fmt.Errorf("line projection knows only line.added.v2, got %s", e.Type)
		}
		var v2 struct {
			ID             string `json:"id"`
			Quantity       int    `json:"quantity"`
			UnitPriceCents int64  `json:"unitPriceCents"`
		}
		if err := json.Unmarshal(e.Data, &v2); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into lines values ($1, $2, $3) on conflict (id) do nothing`, v2.ID, v2.Quantity, v2.UnitPriceCents); err != nil {
			return err
		}
	}
	return nil
}

// TestRebuildWithUpcaster: events stored in the v1 shape ({"id", "qty", "price"} in euros) are
// upcast at read time to v2 ({"id", "quantity", "unitPriceCents"}); a rebuild of a read model
// that knows only v2 gives correct rows for old and new events alike.
func TestRebuildWithUpcaster(t *testing.T) {
	t.Parallel()
	raw := memory.New()
	for i, v1 := range []string{`{"id":"a","qty":2,"price":12.5}`, `{"id":"b","qty":1,"price":0.99}`} {
		if _, err := raw.Append(t.Context(), "lines-"+fmt.Sprint(i), eventstore.NoStream(), []eventstore.EventData{{ID: eventstore.DeriveID("v1", i), Type: "line.added.v1", Data: []byte(v1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Append(t.Context(), "lines-2", eventstore.NoStream(), []eventstore.EventData{{ID: eventstore.DeriveID("v2", 0), Type: "line.added.v2", Data: []byte(`{"id":"c","quantity":3,"unitPriceCents":100}`)}}); err != nil {
		t.Fatal(err)
	}
	store := eventstore.WithUpcasters(raw, eventstore.Upcasters{
		"line.added.v1": func(e eventstore.RecordedEvent) (eventstore.RecordedEvent, error) {
			var v1 struct {
				ID    string  `json:"id"`
				Qty   int     `json:"qty"`
				Price float64 `json:"price"`
			}
			if err := json.Unmarshal(e.Data, &v1); err != nil {
				return e, err
			}
			e.Type = "line.added.v2"
			e.Data, _ = json.Marshal(map[string]any{"id": v1.ID, "quantity": v1.Qty, "unitPriceCents": int64(math.Round(v1.Price * 100))})
			return e, nil
		},
	})
	url := pgtest.NewDatabase(t)
	if err := projections.Rebuild(t.Context(), store, url, line{}, projections.RebuildOptions{Schema: "lines", RetireAfter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	pool, err := pgschema.Open(t.Context(), url, "lines", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(t.Context(), `select id || ':' || quantity || ':' || unit_price_cents from lines order by id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a:2:1250", "b:1:99", "c:3:100"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
}

// TestRebuildNewReadModelEndsAtTheTip: a read model with no live version is rebuilt to the tip of
// the log, also when the last page is exactly full (caught up is then learnt from an empty read).
func TestRebuildNewReadModelEndsAtTheTip(t *testing.T) {
	t.Parallel()
	store := memory.New()
	appendEvents(t, store, 4, 50) // 200 events, pages of 100
	url := pgtest.NewDatabase(t)
	if err := projections.Rebuild(t.Context(), store, url, weighed(1, 0), projections.RebuildOptions{Schema: "weighed", BatchSize: 100, RetireAfter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	pool, err := pgschema.Open(t.Context(), url, "weighed", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), `select coalesce(sum(n), 0) from weighed`).Scan(&n); err != nil || n != 200 {
		t.Fatalf("the new read model holds %d (%v), want 200", n, err)
	}
}
