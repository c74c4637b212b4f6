package postgres_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/eventstore/storetest"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// TestTheTailReadAndTheGroupAppendArePlannedOnce: the reads of $all and the group append run
// their generic plans from the first execution (PostgreSQL's plan cache would plan them again
// at each one: the first five always, and every one once the log has grown).
func TestTheTailReadAndTheGroupAppendArePlannedOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg, err := pgxpool.ParseConfig(pgtest.MigratedDatabase(t, "eventstore", migrate))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every statement prepared on the one connection whose plans are counted
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, postgres.Options{TailEvents: -1})
	fenced := postgres.New(pool, postgres.Options{TailEvents: -1, FenceAfter: -1})
	if _, err := store.Append(ctx, "product", eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", 0)}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		// An append with a condition is a group statement of one.
		if _, err := store.AppendIf(ctx, fmt.Sprintf("order-%d", i), eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", i+1)},
			[]eventstore.Condition{{Stream: "product", Revision: 0}}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*postgres.Store{store, fenced} {
			if _, err := s.ReadAll(ctx, eventstore.Position{}, eventstore.ReadAllOptions{Limit: 100}); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	oldest, fence, _ := store.ReadAllStatements()
	for name, sql := range map[string]string{"group append": store.StreamStatements()["appendMany"], "read of $all": oldest, "fenced read of $all": fence} {
		var generic, custom int64
		err := conn.QueryRow(ctx, `select generic_plans, custom_plans from pg_prepared_statements where statement = $1`, sql).Scan(&generic, &custom)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if custom != 0 || generic != n {
			t.Errorf("%s: %d executions with a custom plan, %d with the generic one; want 0 and %d", name, custom, generic, n)
		}
	}
}

// TestTheReadOfAllKeepsToItsIndex: the generic plans of the reads of $all, made on an empty log
// and on a grown one, read the log by its index in order, a page at a time: a plan is kept until
// the table is analyzed again, and one that fetched every row past the position to sort them
// would read the whole rest of a grown log for each page.
func TestTheReadOfAllKeepsToItsIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, pool := newStore(t)
	oldest, fenced, settings := store.ReadAllStatements()
	check := func(log string) {
		t.Helper()
		for name, sql := range map[string]string{"oldest": oldest, "fenced": fenced} {
			plan, err := pgtest.GenericPlan(ctx, pool, sql, settings)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !strings.Contains(plan, "Index Scan using events_tx_position") || strings.Contains(plan, "Sort") {
				t.Errorf("%s, %s log: the generic plan does not read the log by its index in order:\n%s", name, log, plan)
			}
		}
	}
	check("an empty")
	growLog(t, pool)
	check("a grown")
}

// BenchmarkTailRead: the read of $all a subscription makes after an append (the last three events
// of a grown log), with its generic plan, and as PostgreSQL's plan cache would run it (a custom
// plan made at each execution). Each on a pool of its own (the plan cache is a connection's).
func BenchmarkTailRead(b *testing.B) {
	ctx := b.Context()
	_, pool := newStore(b)
	if _, err := pool.Exec(ctx, `insert into eventstore.events (stream_id, stream_version, event_id, event_type, data)
select 'order-' || (g / 5), g % 5, gen_random_uuid(), 't.v1', '{"orderId": "x"}' from generate_series(0, 49999) g`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `analyze eventstore.events`); err != nil {
		b.Fatal(err)
	}
	var tx string
	var from eventstore.Position
	if err := pool.QueryRow(ctx, `select tx_id::text, global_position from eventstore.events order by global_position desc offset 3 limit 1`).Scan(&tx, &from.Prepare); err != nil {
		b.Fatal(err)
	}
	from.Commit, _ = strconv.ParseUint(tx, 10, 64)
	for _, planned := range []bool{false, true} {
		name := map[bool]string{false: "generic", true: "planned_each_time"}[planned]
		b.Run(name, func(b *testing.B) {
			own, err := pgxpool.New(ctx, pool.Config().ConnString())
			if err != nil {
				b.Fatal(err)
			}
			defer own.Close()
			store := postgres.New(own, postgres.Options{TailEvents: -1})
			if planned {
				store.PlanEachTime()
			}
			for b.Loop() {
				page, err := store.ReadAll(ctx, from, eventstore.ReadAllOptions{Limit: 500})
				if err != nil || len(page.Events) != 3 {
					b.Fatalf("read %d events, %v; want 3", len(page.Events), err)
				}
			}
		})
	}
}
