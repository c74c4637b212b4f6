package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/eventstore/storetest"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return postgres.New(pool, postgres.Options{}).Migrate(ctx)
}

// newStore returns a store over a fresh migrated database.
func newStore(t testing.TB) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	return newStoreWith(t, postgres.Options{})
}

// newStoreWith is newStore with opts.
func newStoreWith(t testing.TB, opts postgres.Options) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.MigratedDatabase(t, "eventstore", migrate)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pool config: %v", err)
	}
	cfg.MaxConns = 32 // the gap test holds transactions open while others append
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return postgres.New(pool, opts), pool
}

// TestContract runs the contract suite as the store reads by default (the cluster's oldest
// transaction while it moves, the appends in flight once it holds still); reading always past the
// oldest transaction to the appends in flight (the suite's no-skip test then fails if appends take
// no fence); with one group statement at a time, so that concurrent appends group the most; and
// with every subscription reading the store itself (no shared Tail).
func TestContract(t *testing.T) {
	for name, opts := range map[string]postgres.Options{"default": {}, "fenced": {FenceAfter: -1}, "grouped": {AppendGroups: 1}, "own reads": {TailEvents: -1}} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Harness {
				store, pool := newStoreWith(t, opts)
				return storetest.Harness{
					Store: store,
					HoldOpen: func(ctx context.Context, stream string, events []eventstore.EventData) (func() error, error) {
						tx, err := pool.Begin(ctx)
						if err != nil {
							return nil, err
						}
						if _, err := store.AppendTx(ctx, tx, stream, eventstore.NoStream(), events); err != nil {
							_ = tx.Rollback(ctx)
							return nil, err
						}
						return func() error { return tx.Commit(ctx) }, nil
					},
				}
			})
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	store, _ := newStore(b)
	storetest.BenchmarkAppend(b, store)
}

func BenchmarkCatchUp(b *testing.B) {
	store, _ := newStore(b)
	storetest.BenchmarkCatchUp(b, store, 20_000)
}

// TestOnlyAppendsHoldReaders: a transaction with an id left open in another database of the
// cluster (an analyst's session, a backup, a migration), or in the store's own database without
// appending, holds no reader back past HeldAfter: an event appended after it began is read. An append
// left open does hold them (an event committed after it waits for it, and HorizonAge tells), and
// once it commits both are read, in order.
func TestOnlyAppendsHoldReaders(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, pool := newStore(t)
	for _, url := range []string{pgtest.NewDatabase(t), ""} {
		var tx pgx.Tx
		var err error
		if url == "" {
			tx, err = pool.Begin(ctx)
		} else {
			conn, cerr := pgx.Connect(ctx, url)
			if cerr != nil {
				t.Fatal(cerr)
			}
			defer conn.Close(context.Background())
			tx, err = conn.Begin(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background()) //nolint:errcheck
		if _, err := tx.Exec(ctx, `select pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
	}
	stream := "long-" + uuid.NewString()[:8]
	res, err := store.Append(ctx, stream, eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", 0)})
	if err != nil {
		t.Fatal(err)
	}
	// Read at once, or HeldAfter later (readers look past the oldest transaction once it has held
	// still that long): not when the two transactions end.
	var page eventstore.Page
	for deadline := time.Now().Add(10 * postgres.HeldAfter); ; time.Sleep(20 * time.Millisecond) {
		page, err = store.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{})
		if err == nil && len(page.Events) == 1 && page.Events[0].Position == res.Position {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("read past two transactions that append nothing: %d events (%v) after %v, want the one appended", len(page.Events), err, 10*postgres.HeldAfter)
		}
	}
	if age, err := store.HorizonAge(ctx); err != nil || age != 0 {
		t.Errorf("horizon age %v (%v) with no append in flight, want 0", age, err)
	}

	held, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background()) //nolint:errcheck
	if _, err := store.AppendTx(ctx, held, stream+"-held", eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, stream, eventstore.Exact(0), []eventstore.EventData{storetest.Event("t.v1", 2)}); err != nil {
		t.Fatal(err)
	}
	page, err = store.ReadAll(ctx, page.Position, eventstore.ReadAllOptions{})
	if err != nil || len(page.Events) != 0 {
		t.Fatalf("read while an append is open: %d events (%v), want none (the later one waits for it)", len(page.Events), err)
	}
	if age, err := store.HorizonAge(ctx); err != nil || age <= 0 {
		t.Errorf("horizon age %v (%v) with an append in flight, want more than 0", age, err)
	}
	if err := held.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	page, err = store.ReadAll(ctx, page.Position, eventstore.ReadAllOptions{})
	if err != nil || len(page.Events) != 2 || page.Events[0].Stream != stream+"-held" || page.Events[1].Stream != stream {
		t.Fatalf("read after the held append committed: %+v (%v), want it, then the later one", page.Events, err)
	}
}

// TestNoSkipUnderContention: many writers append as fast as they can while several readers follow
// $all in small pages; each reader must see every event. It is the contract suite's no-skip test
// made hot. Readers that list pg_locks hold the lock table's partitions while they do, which is
// when a transaction that just took its id waits to lock it: a horizon built from pg_locks'
// transactionid rows missed such an append for that moment and skipped its events (the chaos test
// found sagas and read models that missed one); this test caught that form of the fence too.
// Readers finish once every writer has its answer (an append whose caller gave up may still be
// committed by the group it joined, a moment later) and they have read as many events as the table
// holds: a page at the end of the log reads only below the horizon of running transactions, and
// any transaction of the server (another test's, in another database) may hold it for a moment,
// so a reader that stopped at its first empty page could stop short of events it would read next.
func TestNoSkipUnderContention(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("appends for seconds")
	}
	store, pool := newStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	var wg, writing sync.WaitGroup
	var appended atomic.Int64
	for w := range 12 {
		writing.Go(func() {
			// Each append runs to its answer (a caller that gives up on an append may still see it
			// committed later, by the group it joined): when the writers have returned, every
			// append is in the log or not at all.
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := store.Append(context.Background(), fmt.Sprintf("hot-%d-%d", w, i), eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", i)}); err == nil {
					appended.Add(1)
				}
			}
		})
	}
	written := make(chan struct{})
	var total int // the events in the table once every writer has its answer
	go func() {
		writing.Wait()
		if err := pool.QueryRow(context.Background(), `select count(*) from eventstore.events`).Scan(&total); err != nil {
			t.Error(err)
		}
		close(written)
	}()
	const readers = 6
	seen := make([]map[uuid.UUID]bool, readers)
	// A reader that skipped events never reads them all: it gives up at this deadline.
	deadline, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	defer writing.Wait()
	for r := range readers {
		seen[r] = map[uuid.UUID]bool{}
		wg.Go(func() {
			pos := eventstore.Start
			// In pages of 5 while the writers write, then the rest once they stopped.
			for page := 5; ; {
				got, err := store.ReadAll(context.Background(), pos, eventstore.ReadAllOptions{Limit: page})
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range got.Events {
					seen[r][e.ID] = true
				}
				pos = got.Position
				select {
				case <-written:
					if len(seen[r]) >= total && got.AtEnd && len(got.Events) == 0 {
						return
					}
					if page == 1000 && got.AtEnd && len(got.Events) == 0 {
						select {
						case <-time.After(10 * time.Millisecond): // below a horizon still held: read again
						case <-deadline.Done():
							return // reported below: what it missed
						}
					}
					page = 1000
				default:
				}
			}
		})
	}
	wg.Wait()
	all, err := store.ReadAll(context.Background(), eventstore.Start, eventstore.ReadAllOptions{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for r := range readers {
		missed := 0
		for _, e := range all.Events {
			if !seen[r][e.ID] {
				missed++
			}
		}
		if missed > 0 || appended.Load() == 0 {
			t.Errorf("reader %d missed %d of %d events", r, missed, len(all.Events))
		}
	}
	t.Logf("%d events appended by 12 writers, all read by %d readers", len(all.Events), readers)
}

// TestCorrelationInTransactionOrder: a flow's events come in the order of their transactions,
// compared as numbers: transaction 997 before 1000 (as text, "1000" sorts first; CI met it once
// its cluster's transaction ids passed 999).
func TestCorrelationInTransactionOrder(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	flow := "flow-" + uuid.NewString()
	later, earlier := uuid.New(), uuid.New()
	// Inserted later-first, so that their global positions disagree with their transactions.
	_, err := pool.Exec(ctx, `insert into eventstore.events (tx_id, stream_id, stream_version, event_id, event_type, data, metadata)
values ('1000', 'order-a', 0, $1, 'confirmed', '{}', json_build_object('correlationId', $3::text)),
       ('997', 'order-b', 0, $2, 'placed', '{}', json_build_object('correlationId', $3::text))`, later, earlier, flow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.ByCorrelation(ctx, flow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != earlier || got[1].ID != later {
		t.Fatalf("flow: %v, want transaction 997's event, then 1000's", got)
	}
}

// TestReadsOfAPartitionedReader: a page of $all for some partitions holds exactly the events
// whose key falls into them as eventstore.PartitionOf computes it (the SQL computes the same hash),
// by stream and by the order the payload names; the page's position passes the others.
func TestReadsOfAPartitionedReader(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := t.Context()
	for i := range 60 {
		data := fmt.Sprintf(`{"orderId":"o-%d"}`, i%17)
		if i%5 == 0 {
			data = `{"other":1}` // no order: its stream is its key
		}
		if _, err := store.Append(ctx, fmt.Sprintf("s-%d", i%23), eventstore.Any(), []eventstore.EventData{{ID: eventstore.DeriveID(fmt.Sprint("p", i), 0), Type: "t.v1", Data: []byte(data)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Reads stop at the cluster's oldest running transaction (other tests hold some): read until
	// every event is past it.
	read := func(f eventstore.Filter, want func(eventstore.Page) bool) eventstore.Page {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			page, err := store.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{Limit: 1000, Filter: f})
			if err != nil {
				t.Fatal(err)
			}
			if want(page) {
				return page
			}
			if time.Now().After(deadline) {
				t.Fatalf("the read of $all (%+v) did not reach the appends: %d events, at %s", f, len(page.Events), page.Position)
			}
		}
	}
	all := read(eventstore.Filter{}, func(p eventstore.Page) bool { return len(p.Events) == 60 })
	for _, by := range []eventstore.PartitionKey{eventstore.ByStream, eventstore.ByOrder} {
		parts := []int{1, 4, 6}
		var want []string
		for _, e := range all.Events {
			if slices.Contains(parts, eventstore.PartitionOf(by.Of(e), 7)) {
				want = append(want, e.ID.String())
			}
		}
		page := read(eventstore.Filter{Partition: &eventstore.Partition{By: by, Of: 7, Parts: parts}}, func(p eventstore.Page) bool {
			return p.Position.Compare(all.Events[59].Position) >= 0
		})
		var got []string
		for _, e := range page.Events {
			got = append(got, e.ID.String())
		}
		if len(want) == 0 || len(want) == 60 || !slices.Equal(got, want) {
			t.Errorf("partitions %v of 7 by %v: %d events read, %d expected (of 60)", parts, by, len(got), len(want))
		}
	}
}

// TestStreamStatementsKeepToTheIndexYoungOrGrown: every statement that finds a stream's events keeps
// to the (stream_id, stream_version) index in the plan PostgreSQL caches for it, when that plan is
// made while the log is empty, and when it is made on a grown log (the group append always runs
// its generic plan: generic.go). A plan that scanned the table there scanned it on every append
// after, however long the log grew (the group append's did, twice, until autovacuum's next analyze
// happened to replan it).
func TestStreamStatementsKeepToTheIndexYoungOrGrown(t *testing.T) {
	ctx := context.Background()
	store, pool := newStore(t)
	check := func(log string) {
		t.Helper()
		for name, sql := range store.StreamStatements() {
			plan, err := pgtest.GenericPlan(ctx, pool, sql)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if strings.Contains(plan, "Seq Scan on events") {
				t.Errorf("%s scans %s log in its cached plan:\n%s", name, log, plan)
			}
		}
	}
	check("an empty")
	growLog(t, pool)
	check("a grown")
}

// growLog adds 20,000 events (4,000 streams of 5) to the store's log and has PostgreSQL analyze
// it: plans made after it are a grown log's.
func growLog(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `insert into eventstore.events (stream_id, stream_version, event_id, event_type, data)
select 'order-' || (g / 5), g % 5, gen_random_uuid(), 't.v1', '{}' from generate_series(0, 19999) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `analyze eventstore.events`); err != nil {
		t.Fatal(err)
	}
}
