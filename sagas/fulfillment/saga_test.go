package fulfillment_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/commands/commandstest"
	inventorycmd "github.com/orderflow/orderflow/commands/inventory"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	paymentcmd "github.com/orderflow/orderflow/commands/payment"
	"github.com/orderflow/orderflow/dev/cardsim"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/sagas/fulfillment"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, natstest.Stop)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rig is the saga's world, every part of which a test can stop ("crash") and start again.
type rig struct {
	t        *testing.T
	store    *postgres.Store
	sagaPool *pgxpool.Pool
	js       jetstream.JetStream
	ns       wire.Namespace
	gateway  *cardsim.Server
	provider *paymentcmd.HTTPProvider
	opts     fulfillment.Options
	mu       sync.Mutex
	stops    map[string]func()
}

func newRig(t *testing.T, opts fulfillment.Options, sim cardsim.Options) *rig {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	store := pgtest.EventStoreAt(t, url, 40)
	sagaPool, err := pgschema.Open(ctx, url, fulfillment.Name, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sagaPool.Close)
	nc := natstest.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	gw := cardsim.New(sim)
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	r := &rig{t: t, store: store, sagaPool: sagaPool, js: js, ns: natstest.Namespace(t), gateway: gw, opts: opts, stops: map[string]func(){},
		provider: paymentcmd.NewHTTPProvider(srv.URL, paymentcmd.HTTPProviderOptions{Timeout: 500 * time.Millisecond, OpenFor: time.Second, TripAfter: 3})}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, stop := range r.stops {
			stop()
		}
	})
	for _, part := range []string{"saga", "orders", "inventory", "payments"} {
		r.start(part)
	}
	return r
}

// start runs one part until stop(part).
func (r *rig) start(part string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	switch part {
	case "saga":
		saga := fulfillment.New(r.sagaPool, r.opts, quiet)
		p := projections.New(r.store, r.sagaPool, saga, projections.Options{Log: quiet, BatchSize: 50, Publish: func(wire.Progress) { saga.Committed() }})
		if err := p.Migrate(context.Background()); err != nil {
			r.t.Error(err)
		}
		run(func() { _ = p.Run(ctx) })
		run(func() { _ = saga.Dispatch(ctx, r.js, r.ns) })
		run(func() { _ = saga.Deadlines(ctx, 50*time.Millisecond) })
	case "orders":
		r.consume(ctx, "order-commands", ordercmd.Handlers{Writer: commandstest.Writer(r.store)}.Jobs())
	case "inventory":
		r.consume(ctx, "inventory-commands", inventorycmd.Handlers{Writer: commandstest.Writer(r.store), Store: r.store}.Jobs())
	case "payments":
		r.consume(ctx, "payment-commands", paymentcmd.Handlers{Writer: commandstest.Writer(r.store), Provider: r.provider}.Jobs())
	}
	r.stops[part] = func() { cancel(); wg.Wait() }
}

func (r *rig) consume(ctx context.Context, durable string, h map[string]jobs.Handler) {
	if err := jobs.Consume(ctx, r.js, r.ns, durable, quiet, h); err != nil {
		r.t.Error(err)
	}
}

// crash stops a part at whatever it was doing and starts it again.
func (r *rig) crash(part string) {
	r.mu.Lock()
	stop := r.stops[part]
	r.mu.Unlock()
	stop()
	r.start(part)
}

func (r *rig) product(id string, units int64) {
	h := inventorycmd.Handlers{Writer: commandstest.Writer(r.store), Store: r.store}
	if _, err := h.AddProduct(r.t.Context(), wire.AddProduct{Meta: wire.CommandMeta{CommandID: "add-" + id}, ProductID: id, SKU: id, Name: id, PriceCents: 100}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := h.Restock(r.t.Context(), wire.Restock{Meta: wire.CommandMeta{CommandID: "rs-" + id}, ProductID: id, Quantity: units}); err != nil {
		r.t.Fatal(err)
	}
}

// place places an order at the catalog's prices (the rig's inventory answers the quote).
func (r *rig) place(id string, lines ...wire.PlaceLine) {
	h := ordercmd.Handlers{Writer: commandstest.Writer(r.store), Catalog: commandstest.Quoting{Handlers: inventorycmd.Handlers{Writer: commandstest.Writer(r.store), Store: r.store}}, Customers: commandstest.Shop{}}
	if _, err := h.Place(r.t.Context(), wire.PlaceOrder{Meta: wire.CommandMeta{CommandID: "place-" + id}, OrderID: id, CustomerID: "c", Lines: lines}); err != nil {
		r.t.Fatal(err)
	}
}

// fold reads a stream into a state with a domain's Decode and Evolve.
func fold[S, E any](t *testing.T, s eventstore.Store, stream string, decode func(string, []byte) (E, error), evolve func(S, E) S) (S, []eventstore.RecordedEvent) {
	t.Helper()
	var st S
	events, err := s.ReadStream(t.Context(), stream, eventstore.ReadStreamOptions{})
	if err != nil {
		return st, nil
	}
	for _, r := range events {
		e, err := decode(r.Type, r.Data)
		if err != nil {
			t.Fatal(err)
		}
		st = evolve(st, e)
	}
	return st, events
}

// settle waits until every order is confirmed or cancelled, and returns their statuses.
func (r *rig) settle(ids []string, within time.Duration) map[string]order.Status {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out := map[string]order.Status{}
		done := true
		for _, id := range ids {
			st, _ := fold(r.t, r.store, order.Stream(id), order.Codec.Decode, order.Evolve)
			out[id] = st.Status
			done = done && (st.Status == order.StatusConfirmed || st.Status == order.StatusCancelled)
		}
		if done {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("orders not settled after %s: %v", within, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCrashesAtAnyMoment stops the saga, and separately the inventory and payment consumers, at
// random moments while 30 orders race for 12 units of one product (and take one of a plentiful
// one), then checks every order ended confirmed or cancelled, stock is held exactly by confirmed
// orders, and no payment was authorized twice.
func TestCrashesAtAnyMoment(t *testing.T) {
	t.Parallel()
	r := newRig(t, fulfillment.Options{PaymentTimeout: time.Minute}, cardsim.Options{DeclineRate: 0.2})
	r.product("scarce", 12)
	r.product("plenty", 1000)
	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("o%02d", i)
		ids = append(ids, id)
		r.place(id, wire.PlaceLine{ProductID: "scarce", Quantity: 1}, wire.PlaceLine{ProductID: "plenty", Quantity: 1})
	}
	stop := make(chan struct{})
	crashed := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				crashed <- n
				return
			case <-time.After(time.Duration(20+rand.IntN(120)) * time.Millisecond):
			}
			r.crash([]string{"saga", "saga", "inventory", "payments", "orders"}[rand.IntN(5)])
			n++
		}
	}()
	time.Sleep(3 * time.Second) // crash away while the orders move
	close(stop)
	n := <-crashed
	statuses := r.settle(ids, 90*time.Second)
	confirmed := 0
	for _, id := range ids {
		if statuses[id] == order.StatusConfirmed {
			confirmed++
		}
		pay, events := fold(t, r.store, payment.Stream(id), payment.Codec.Decode, payment.Evolve)
		authorizations := 0
		for _, e := range events {
			if e.Type == payment.TypeAuthorized || e.Type == payment.TypeDeclined {
				authorizations++
			}
		}
		if authorizations > 1 {
			t.Errorf("order %s: payment decided %d times", id, authorizations)
		}
		if statuses[id] == order.StatusConfirmed && pay.Status != payment.StatusAuthorized {
			t.Errorf("order %s confirmed with payment %s", id, pay.Status)
		}
	}
	// Compensations run after an order is cancelled: wait for the stock to settle too.
	deadline := time.Now().Add(30 * time.Second)
	for {
		scarce, _ := fold(t, r.store, inventory.Stream("scarce"), inventory.Codec.Decode, inventory.Evolve)
		plenty, _ := fold(t, r.store, inventory.Stream("plenty"), inventory.Codec.Decode, inventory.Evolve)
		ok := scarce.ReservedTotal() == int64(confirmed) && plenty.ReservedTotal() == int64(confirmed)
		for o := range scarce.Reserved {
			ok = ok && statuses[o] == order.StatusConfirmed
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d confirmed; scarce reserved %d by %v, plenty reserved %d", confirmed, scarce.ReservedTotal(), scarce.Reserved, plenty.ReservedTotal())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if confirmed == 0 || confirmed > 12 {
		t.Fatalf("%d orders confirmed for 12 units", confirmed)
	}
	t.Logf("%d crashes; %d of 30 orders confirmed", n, confirmed)
}

// TestProviderOutage: while the card gateway is down the breaker opens and orders wait (not
// failed); once it is back they finish.
func TestProviderOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, fulfillment.Options{PaymentTimeout: 2 * time.Minute}, cardsim.Options{Outage: true})
	r.product("p", 100)
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		r.place(id, wire.PlaceLine{ProductID: "p", Quantity: 1})
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.provider.BreakerState() != "open" {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %s after 30s of outage (%d calls)", r.provider.BreakerState(), r.gateway.Calls())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range ids {
		if st, _ := fold(t, r.store, order.Stream(id), order.Codec.Decode, order.Evolve); st.Status != order.StatusPlaced {
			t.Fatalf("order %s is %s during the outage, want it waiting (PLACED)", id, st.Status)
		}
	}
	r.gateway.SetOutage(false)
	for id, st := range r.settle(ids, 60*time.Second) {
		if st != order.StatusConfirmed {
			t.Errorf("order %s ended %s after the outage", id, st)
		}
	}
}

// TestSentCommandsLeaveTheOutbox: a command JetStream stored leaves the outbox soon after (the
// dispatcher deletes what it sent within SentFlush, whether batches follow or not), not a second
// later when the outbox's poll would send it again.
func TestSentCommandsLeaveTheOutbox(t *testing.T) {
	t.Parallel()
	r := newRig(t, fulfillment.Options{}, cardsim.Options{})
	r.product("p", 100)
	ids := []string{"a", "b", "c", "d", "e", "f"}
	for _, id := range ids {
		r.place(id, wire.PlaceLine{ProductID: "p", Quantity: 1})
	}
	for id, st := range r.settle(ids, 30*time.Second) {
		if st != order.StatusConfirmed {
			t.Fatalf("order %s ended %s", id, st)
		}
	}
	r.outboxEmptyWithin(800*time.Millisecond, "after the orders settled")
	// A command after which nothing comes (the payment service is away) is deleted all the same.
	r.mu.Lock()
	stop := r.stops["payments"]
	r.mu.Unlock()
	stop()
	r.place("g", wire.PlaceLine{ProductID: "p", Quantity: 1})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var step string
		_ = r.sagaPool.QueryRow(t.Context(), `select step from fulfillment where order_id = 'g'`).Scan(&step)
		if step == string(fulfillment.StepAuthorizing) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order g's saga is %q after 10 s, want it authorizing", step)
		}
	}
	r.outboxEmptyWithin(800*time.Millisecond, "after the authorization was queued")
	r.start("payments")
	r.settle([]string{"g"}, 30*time.Second)
}

// outboxEmptyWithin fails the test unless the saga's outbox is empty within d: before the outbox's
// poll, which sends again what is a second old.
func (r *rig) outboxEmptyWithin(d time.Duration, when string) {
	r.t.Helper()
	start := time.Now()
	for {
		var left int
		if err := r.sagaPool.QueryRow(r.t.Context(), `select count(*) from fulfillment_outbox`).Scan(&left); err != nil {
			r.t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if time.Since(start) > d {
			r.t.Fatalf("%d commands still in the outbox %s %s", left, time.Since(start).Round(time.Millisecond), when)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeadlineSurvivesARestart: the payment never comes; the deadline fires although the saga
// was restarted after setting it.
func TestDeadlineSurvivesARestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, fulfillment.Options{PaymentTimeout: 1500 * time.Millisecond}, cardsim.Options{Outage: true})
	r.product("p", 10)
	r.place("late", wire.PlaceLine{ProductID: "p", Quantity: 3})
	r.waitStep("late", fulfillment.StepAuthorizing) // the deadline is set
	r.crash("saga")
	if st := r.settle([]string{"late"}, 30*time.Second)["late"]; st != order.StatusCancelled {
		t.Fatalf("order %s, want CANCELLED by the deadline", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, _ := fold(t, r.store, inventory.Stream("p"), inventory.Codec.Decode, inventory.Evolve)
		if p.ReservedTotal() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock still reserved after the deadline: %v", p.Reserved)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var step, outcome string
	if err := r.sagaPool.QueryRow(t.Context(), `select step, outcome from fulfillment where order_id = 'late'`).Scan(&step, &outcome); err != nil || fulfillment.Outcome(outcome) != fulfillment.OutcomeTimedOut {
		t.Fatalf("saga %s %s %v, want timed_out", step, outcome, err)
	}
}

func (r *rig) stop(part string) {
	r.mu.Lock()
	stop := r.stops[part]
	r.stops[part] = func() {}
	r.mu.Unlock()
	stop()
}

// waitStep waits until order id's saga is at step.
func (r *rig) waitStep(id string, step fulfillment.Step) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got string
		_ = r.sagaPool.QueryRow(r.t.Context(), `select step from fulfillment where order_id = $1`, id).Scan(&got)
		if fulfillment.Step(got) == step {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("order %s: saga at %q, never reached %s", id, got, step)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCrashAtEveryStepBoundary: for each step, the service the step waits on is down, the saga
// reaches the step (its command decided and queued), the saga is crashed there, and everything
// is started again. Every order ends confirmed, with one reservation and one authorization.
func TestCrashAtEveryStepBoundary(t *testing.T) {
	t.Parallel()
	r := newRig(t, fulfillment.Options{PaymentTimeout: time.Minute}, cardsim.Options{})
	r.product("p", 100)
	boundaries := []struct {
		step    fulfillment.Step
		waitsOn string
	}{
		{fulfillment.StepReserving, "inventory"},
		{fulfillment.StepAuthorizing, "payments"},
		{fulfillment.StepConfirming, "orders"},
	}
	var ids []string
	for _, b := range boundaries {
		id := "at-" + string(b.step)
		ids = append(ids, id)
		r.stop(b.waitsOn)
		r.place(id, wire.PlaceLine{ProductID: "p", Quantity: 2})
		r.waitStep(id, b.step)
		time.Sleep(100 * time.Millisecond) // let the dispatcher queue the step's command, or not: both must work
		r.crash("saga")
		r.start(b.waitsOn)
	}
	for id, st := range r.settle(ids, 60*time.Second) {
		if st != order.StatusConfirmed {
			t.Errorf("order %s ended %s", id, st)
		}
	}
	p, events := fold(t, r.store, inventory.Stream("p"), inventory.Codec.Decode, inventory.Evolve)
	reservations := 0
	for _, e := range events {
		if e.Type == inventory.TypeReserved {
			reservations++
		}
	}
	if reservations != len(ids) || p.ReservedTotal() != int64(2*len(ids)) {
		t.Errorf("%d reservations holding %d units for %d orders: want one each, 2 units each", reservations, p.ReservedTotal(), len(ids))
	}
	if calls := r.gateway.Calls(); calls != len(ids) {
		t.Errorf("the gateway was asked %d times for %d payments", calls, len(ids))
	}
}

// TestCountsAreTheSagas: the saga's figures, kept by the transactions that finish sagas, are what
// counting every saga says, for orders confirmed and orders cancelled; and sagas finished before
// the figures were kept (the table made on a database that has sagas) are counted once.
func TestCountsAreTheSagas(t *testing.T) {
	t.Parallel()
	r := newRig(t, fulfillment.Options{}, cardsim.Options{})
	ctx := t.Context()
	r.product("p", 3)
	ids := []string{"a", "b", "c", "d", "e", "f"}
	for _, id := range ids {
		r.place(id, wire.PlaceLine{ProductID: "p", Quantity: 1})
	}
	r.settle(ids, 30*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) { // the sagas see the orders' ends after them
		var open int
		if err := r.sagaPool.QueryRow(ctx, `select count(*) from fulfillment where step not in ('CONFIRMED', 'CANCELLED')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sagas still in flight 10 s after their orders settled", open)
		}
	}
	queries := fulfillment.Queries{Saga: fulfillment.New(r.sagaPool, r.opts, slog.New(slog.DiscardHandler))}
	check := func(when string) {
		t.Helper()
		got, err := queries.Counts(ctx, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		var want wire.FulfillmentCounts
		if err := r.sagaPool.QueryRow(ctx, `select count(*) filter (where step not in ('CONFIRMED', 'CANCELLED')),
  count(*) filter (where outcome = 'confirmed'), count(*) filter (where outcome = 'compensated'),
  count(*) filter (where outcome = 'timed_out'), count(*) filter (where stuck) from fulfillment`).Scan(
			&want.InFlight, &want.Confirmed, &want.Compensated, &want.TimedOut, &want.Stuck); err != nil {
			t.Fatal(err)
		}
		if want.Confirmed == 0 || want.Compensated+want.TimedOut == 0 {
			t.Fatalf("%s: the sagas ended %+v: want some confirmed and some cancelled", when, want)
		}
		got.Outbox = 0
		if got != want {
			t.Errorf("%s: counts %+v, counting every saga %+v", when, got, want)
		}
	}
	check("after the orders")
	if _, err := r.sagaPool.Exec(ctx, `drop table fulfillment_outcomes`); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, r.sagaPool, func(tx pgx.Tx) error { return queries.Saga.Migrate(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
	check("after the figures' table was made on finished sagas")
}
