package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/commands/commandstest"
	"github.com/orderflow/orderflow/commands/inventory"
	model "github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/eventstore/storetest"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m, natstest.Stop) }

// product folds a product's stream, as the command service does.
var product = commands.Aggregate[model.State, model.Event]{Evolve: model.Evolve, Decode: model.Codec.Decode}

func stock(t *testing.T, s eventstore.Store, id string) model.State {
	t.Helper()
	st, _, err := commandstest.Fold(t.Context(), s, product, model.Stream(id))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fresh are the handlers over a new store in memory.
func fresh() inventory.Handlers {
	s := memory.New()
	return inventory.Handlers{Writer: commandstest.Writer(s), Store: s}
}

func addProduct(t *testing.T, h inventory.Handlers, id string, units int64) {
	t.Helper()
	commandstest.Must(t)(h.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("add-" + id), ProductID: id, SKU: "SKU-" + id, Name: id, PriceCents: 100}))
	if units == 0 {
		return
	}
	commandstest.Must(t)(h.Restock(t.Context(), wire.Restock{Meta: commandstest.Meta("restock-" + id), ProductID: id, Quantity: units}))
}

// TestLastUnits: 20 orders race for the last 5 units of a product (each also wants a plentiful
// one), on PostgreSQL. Exactly 5 get them; the others reserve nothing anywhere.
func TestLastUnits(t *testing.T) {
	t.Parallel()
	store := pgtest.EventStore(t, 24)
	h := inventory.Handlers{Writer: commandstest.Writer(store), Store: store}
	addProduct(t, h, "scarce", 5)
	addProduct(t, h, "plenty", 1000)
	won, out := storetest.Race(t, 20, model.ErrInsufficientStock, func(i int) error {
		order := fmt.Sprintf("o%d", i)
		_, err := h.ReserveStock(context.Background(), wire.ReserveStock{Meta: commandstest.Meta("reserve-" + order), OrderID: order,
			Lines: []wire.OrderLine{{ProductID: "plenty", Quantity: 2, UnitPriceCents: 100}, {ProductID: "scarce", Quantity: 1, UnitPriceCents: 100}}})
		return err
	})
	scarce, plenty := stock(t, store, "scarce"), stock(t, store, "plenty")
	if won != 5 || out != 15 {
		t.Errorf("%d orders got the last 5 units, %d were refused; want 5 and 15", won, out)
	}
	if scarce.ReservedTotal() != 5 || scarce.Available() != 0 {
		t.Errorf("scarce: reserved %d, available %d; want 5 and 0", scarce.ReservedTotal(), scarce.Available())
	}
	if plenty.ReservedTotal() != 2*int64(won) {
		t.Errorf("plenty: reserved %d for %d orders: a refused order kept a reservation", plenty.ReservedTotal(), won)
	}
}

func TestSKUIsUnique(t *testing.T) {
	t.Parallel()
	h := fresh()
	commandstest.Must(t)(h.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("a1"), ProductID: "p1", SKU: "sku-1", Name: "A", PriceCents: 1}))
	if _, err := h.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("a2"), ProductID: "p2", SKU: " SKU-1", Name: "B", PriceCents: 1}); !errors.Is(err, model.ErrSKUTaken) {
		t.Fatalf("second product with one sku: %v", err)
	}
	if _, err := h.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("a1"), ProductID: "p1", SKU: "sku-1", Name: "A", PriceCents: 1}); err != nil {
		t.Fatalf("retried add: %v", err)
	}
}

func TestReleaseAndCommit(t *testing.T) {
	t.Parallel()
	h := fresh()
	addProduct(t, h, "p", 10)
	commandstest.Must(t)(h.ReserveStock(t.Context(), wire.ReserveStock{Meta: commandstest.Meta("r1"), OrderID: "o1", Lines: []wire.OrderLine{{ProductID: "p", Quantity: 4, UnitPriceCents: 100}}}))
	commandstest.Must(t)(h.ReserveStock(t.Context(), wire.ReserveStock{Meta: commandstest.Meta("r2"), OrderID: "o2", Lines: []wire.OrderLine{{ProductID: "p", Quantity: 3, UnitPriceCents: 100}}}))
	commandstest.Must(t)(h.ReleaseStock(t.Context(), wire.OrderStock{Meta: commandstest.Meta("x1"), OrderID: "o1", ProductIDs: []string{"p"}}))
	commandstest.Must(t)(h.CommitStock(t.Context(), wire.OrderStock{Meta: commandstest.Meta("c2"), OrderID: "o2", ProductIDs: []string{"p"}}))
	if s := stock(t, h.Store, "p"); s.OnHand != 7 || s.Available() != 7 {
		t.Errorf("on hand %d available %d, want 7 and 7", s.OnHand, s.Available())
	}
	if _, err := h.ReserveStock(t.Context(), wire.ReserveStock{Meta: commandstest.Meta("r3"), OrderID: "o3", Lines: []wire.OrderLine{{ProductID: "nope", Quantity: 1, UnitPriceCents: 100}}}); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("reserve an unknown product: %v", err)
	}
}

// TestRedeliveredRejectedReservation: a reserve command rejected for want of stock stays rejected
// when it is delivered again after stock arrived: it must not take the new units.
func TestRedeliveredRejectedReservation(t *testing.T) {
	t.Parallel()
	h := fresh()
	addProduct(t, h, "p", 1)
	req := wire.ReserveStock{Meta: commandstest.Meta("saga:o1:reserve"), OrderID: "o1", Lines: []wire.OrderLine{{ProductID: "p", Quantity: 2, UnitPriceCents: 100}}}
	if _, err := h.ReserveStock(t.Context(), req); !errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("first delivery: %v", err)
	}
	commandstest.Must(t)(h.Restock(t.Context(), wire.Restock{Meta: commandstest.Meta("more"), ProductID: "p", Quantity: 5}))
	if _, err := h.ReserveStock(t.Context(), req); !errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("redelivery: %v, want the first answer", err)
	}
	if s := stock(t, h.Store, "p"); s.ReservedTotal() != 0 {
		t.Fatalf("the redelivered command reserved %d units", s.ReservedTotal())
	}
}

// TestAFirstDeliveryReadsNothing: the first delivery of a reservation's first message does not
// read the order's reservation stream (its outcome creates it). A command queued again (a message
// id of its own) reads it and answers the first outcome; and were the first message ever
// delivered "first" again (past the queue's duplicate window), the outcome's append fails and the
// retry, a redelivery, reads the stream and answers the first outcome, holding nothing.
func TestAFirstDeliveryReadsNothing(t *testing.T) {
	t.Parallel()
	h := fresh()
	addProduct(t, h, "p", 1)
	reads := &readCounter{Store: h.Store}
	h.Store = reads
	first := func(command string) context.Context { return jobs.Delivered(t.Context(), command, 1) }
	ok := wire.ReserveStock{Meta: commandstest.Meta("saga:o1:reserve"), OrderID: "o1", Lines: []wire.OrderLine{{ProductID: "p", Quantity: 1, UnitPriceCents: 100}}}
	commandstest.Must(t)(h.ReserveStock(first("saga:o1:reserve"), ok))
	if n := reads.of(model.ReservationStream("o1")); n != 0 {
		t.Errorf("a first delivery read the reservation stream %d times", n)
	}
	refused := wire.ReserveStock{Meta: commandstest.Meta("saga:o2:reserve"), OrderID: "o2", Lines: []wire.OrderLine{{ProductID: "p", Quantity: 2, UnitPriceCents: 100}}}
	if _, err := h.ReserveStock(first("saga:o2:reserve"), refused); !errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("o2 first delivery: %v", err)
	}
	commandstest.Must(t)(h.Restock(t.Context(), wire.Restock{Meta: commandstest.Meta("more"), ProductID: "p", Quantity: 5}))
	// Queued again under its own message id: read first, it answers the first outcome at once.
	reads.reset()
	if _, err := h.ReserveStock(first("saga:o2:reserve#1"), refused); !errors.Is(err, model.ErrInsufficientStock) || reads.of(model.ReservationStream("o2")) != 1 {
		t.Fatalf("o2 queued again: %v after %d reads, want the first answer after one", err, reads.of(model.ReservationStream("o2")))
	}
	// Were it ever delivered "first" under the command's id again (past the queue's duplicate
	// window): its outcome's append finds the stream and fails, and the redelivery answers.
	if _, err := h.ReserveStock(first("saga:o2:reserve"), refused); err == nil || errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("o2 delivered first again: %v, want a failure to retry", err)
	}
	if _, err := h.ReserveStock(jobs.Delivered(t.Context(), "saga:o2:reserve", 2), refused); !errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("o2 redelivered: %v, want the first answer", err)
	}
	if s := stock(t, h.Store, "p"); s.ReservedTotal() != 1 {
		t.Fatalf("%d units reserved, want o1's 1", s.ReservedTotal())
	}
}

// readCounter counts the reads of each stream.
type readCounter struct {
	eventstore.Store
	mu    sync.Mutex
	reads map[string]int
}

func (r *readCounter) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	r.mu.Lock()
	if r.reads == nil {
		r.reads = map[string]int{}
	}
	r.reads[stream]++
	r.mu.Unlock()
	return r.Store.ReadStream(ctx, stream, opts)
}

func (r *readCounter) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads = nil
}

func (r *readCounter) of(stream string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads[stream]
}

// faulty is a store on which the next n appends of events of type typ fail with err: a stream
// another writer keeps busy, a service dying between two appends.
type faulty struct {
	eventstore.Store
	mu  sync.Mutex
	typ string
	n   int
	err error
}

func (s *faulty) failNext(n int, typ string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n, s.typ, s.err = n, typ, err
}

func (s *faulty) Append(ctx context.Context, stream string, rev eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	s.mu.Lock()
	fail := s.n > 0 && len(events) > 0 && events[0].Type == s.typ
	if fail {
		s.n--
	}
	s.mu.Unlock()
	if fail {
		return eventstore.AppendResult{}, s.err
	}
	return s.Store.Append(ctx, stream, rev, events)
}

// twoProducts stocks "a-plenty" (100 units) and the product second on a store that fails as told.
func twoProducts(t *testing.T, second string, units int64) (*faulty, inventory.Handlers) {
	t.Helper()
	store := &faulty{Store: memory.New()}
	h := inventory.Handlers{Writer: commandstest.Writer(store), Store: store}
	addProduct(t, h, "a-plenty", 100)
	addProduct(t, h, second, units)
	return store, h
}

// TestRefusedReservationWhoseReleaseIsBusy: an order's second line is refused (out of stock) and
// giving back the first line's units finds the stream busy. The queued command must be retried,
// not acknowledged as refused: its units are released and its rejection recorded on the retry.
func TestRefusedReservationWhoseReleaseIsBusy(t *testing.T) {
	t.Parallel()
	store, h := twoProducts(t, "b-empty", 0)
	req := wire.ReserveStock{Meta: commandstest.Meta("saga:o1:reserve"), OrderID: "o1",
		Lines: []wire.OrderLine{{ProductID: "a-plenty", Quantity: 1, UnitPriceCents: 100}, {ProductID: "b-empty", Quantity: 1, UnitPriceCents: 100}}}
	data, _ := json.Marshal(req)
	job := h.Jobs()[wire.EndpointReserveStock.Name]

	store.failNext(commands.MaxAttempts, model.TypeReleased, eventstore.ErrWrongVersion) // every attempt of the release finds the stream busy
	err := job(t.Context(), data)
	var rerr *rpc.Error
	if err == nil || (errors.As(err, &rerr) && rerr.Code != rpc.CodeUnavailable) {
		t.Fatalf("first delivery: %v; want a transient error, so that the queue delivers it again", err)
	}
	if s := stock(t, store, "a-plenty"); s.ReservedTotal() != 1 {
		t.Fatalf("after the busy release: %d reserved, want the 1 the retry must release", s.ReservedTotal())
	}

	if err := job(t.Context(), data); !errors.As(err, &rerr) || rerr.Code != rpc.CodeConflict {
		t.Fatalf("redelivery: %v; want the final refusal (conflict)", err)
	}
	if s := stock(t, store, "a-plenty"); s.ReservedTotal() != 0 {
		t.Errorf("after the redelivery: %d units still reserved", s.ReservedTotal())
	}
	if _, err := h.ReserveStock(t.Context(), req); !errors.Is(err, model.ErrInsufficientStock) {
		t.Errorf("the rejection was not recorded: a third delivery answers %v", err)
	}
}

// TestReservationOverAProductsLimitIsRefused: lines of one product whose sum is more than a
// product can ever hold are a final refusal with a recorded rejection, not a fault retried for ever.
func TestReservationOverAProductsLimitIsRefused(t *testing.T) {
	t.Parallel()
	h := fresh()
	addProduct(t, h, "p", 10)
	lines := []wire.OrderLine{{ProductID: "p", Quantity: model.MaxQuantity, UnitPriceCents: 100}, {ProductID: "p", Quantity: model.MaxQuantity, UnitPriceCents: 100}}
	data, _ := json.Marshal(wire.ReserveStock{Meta: commandstest.Meta("saga:o2:reserve"), OrderID: "o2", Lines: lines})
	var rerr *rpc.Error
	if err := h.Jobs()[wire.EndpointReserveStock.Name](t.Context(), data); !errors.As(err, &rerr) || rerr.Code == rpc.CodeUnavailable || rerr.Code == rpc.CodeInternal {
		t.Fatalf("reserve twice the limit: %v; want a final refusal", err)
	}
}

// TestARetriedReservationHoldsAllItsLinesOrNone: an order's second line is refused, and recording
// the rejection fails; before the retry, stock of that line comes back. The retry must end with
// every line reserved (or none): it used to find its first line's reservation "done" (made, then
// released by the compensation) and record the order reserved with that line not held.
func TestARetriedReservationHoldsAllItsLinesOrNone(t *testing.T) {
	t.Parallel()
	store, h := twoProducts(t, "b-scarce", 1)
	commandstest.Must(t)(h.ReserveStock(t.Context(), wire.ReserveStock{Meta: commandstest.Meta("other"), OrderID: "other", Lines: []wire.OrderLine{{ProductID: "b-scarce", Quantity: 1, UnitPriceCents: 100}}}))
	req := wire.ReserveStock{Meta: commandstest.Meta("saga:x:reserve"), OrderID: "x", Lines: []wire.OrderLine{{ProductID: "a-plenty", Quantity: 2, UnitPriceCents: 100}, {ProductID: "b-scarce", Quantity: 1, UnitPriceCents: 100}}}
	store.failNext(1, model.TypeOrderRejected, errors.New("connection reset")) // recording the rejection fails once
	if _, err := h.ReserveStock(t.Context(), req); err == nil || errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("first delivery: %v; want the transient failure of recording the rejection", err)
	}
	commandstest.Must(t)(h.ReleaseStock(t.Context(), wire.OrderStock{Meta: commandstest.Meta("free"), OrderID: "other", ProductIDs: []string{"b-scarce"}}))
	_, err := h.ReserveStock(t.Context(), req)
	a, b := stock(t, store, "a-plenty"), stock(t, store, "b-scarce")
	switch {
	case err == nil && (a.Reserved["x"] != 2 || b.Reserved["x"] != 1):
		t.Errorf("the retry reserved the order, but it holds a-plenty %d (want 2) and b-scarce %d (want 1)", a.Reserved["x"], b.Reserved["x"])
	case err != nil && (a.Reserved["x"] != 0 || b.Reserved["x"] != 0):
		t.Errorf("the retry refused the order (%v), but it holds a-plenty %d and b-scarce %d", err, a.Reserved["x"], b.Reserved["x"])
	}
}

// conflicts is a store that counts the appends refused for their expected revision.
type conflicts struct {
	eventstore.Store
	n atomic.Int64
}

func (s *conflicts) Append(ctx context.Context, stream string, rev eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := s.Store.Append(ctx, stream, rev, events)
	if errors.Is(err, eventstore.ErrWrongVersion) {
		s.n.Add(1)
	}
	return res, err
}

// TestOneWriterPerProductAcrossInstances: two instances of the inventory service over one
// PostgreSQL store, each with its own Writer, take 200 orders for the 40 last units of one product
// (and a plentiful one) at once: the owner of each product carries out all its commands (the other
// forwards them), so no append meets another instance's, and exactly 40 orders get a unit.
func TestOneWriterPerProductAcrossInstances(t *testing.T) {
	t.Parallel()
	pg := pgtest.EventStore(t, 0)
	store := &conflicts{Store: pg}
	ns := natstest.Namespace(t)
	quiet := slog.New(slog.DiscardHandler)
	var instances []inventory.Handlers
	for range 2 {
		nc := natstest.Connect(t)
		h := inventory.Handlers{Writer: commands.NewWriter(store, commands.WriterOptions{}), Store: store, Router: inventory.NewRouter(nc, ns, quiet)}
		if _, err := inventory.Register(t.Context(), nc, ns, quiet, h); err != nil {
			t.Fatal(err)
		}
		instances = append(instances, h)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		for _, h := range instances {
			_ = h.Router.Refresh(t.Context())
		}
		if len(instances[0].Router.Peers()) == 2 && len(instances[1].Router.Peers()) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instances did not find each other: %v, %v", instances[0].Router.Peers(), instances[1].Router.Peers())
		}
	}
	addProduct(t, instances[0], "hot", 40)
	addProduct(t, instances[0], "plenty", 10_000)
	before := store.n.Load()
	var won, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := fmt.Sprintf("o%d", i)
			_, err := instances[i%2].ReserveStock(context.Background(), wire.ReserveStock{Meta: commandstest.Meta("reserve-" + order), OrderID: order,
				Lines: []wire.OrderLine{{ProductID: "hot", Quantity: 1, UnitPriceCents: 100}, {ProductID: "plenty", Quantity: 1, UnitPriceCents: 100}}})
			var rerr *rpc.Error
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, model.ErrInsufficientStock) || errors.As(err, &rerr) && rerr.Code == rpc.CodeConflict:
				refused.Add(1)
			default:
				t.Errorf("order %s: %v", order, err)
			}
		}()
	}
	wg.Wait()
	hot, plenty := stock(t, pg, "hot"), stock(t, pg, "plenty")
	if won.Load() != 40 || refused.Load() != 160 || hot.ReservedTotal() != 40 || plenty.ReservedTotal() != 40 {
		t.Errorf("%d won, %d refused; hot %d reserved, plenty %d; want 40, 160, 40, 40", won.Load(), refused.Load(), hot.ReservedTotal(), plenty.ReservedTotal())
	}
	if n := store.n.Load() - before; n != 0 {
		t.Errorf("%d appends met another instance's: products have more than one writer", n)
	}
	// Each instance quotes each product at its head: the owner from what it wrote, the other
	// (which added it, then wrote nothing) after reading what the owner appended since.
	for i, h := range instances {
		quote, err := h.Quote(t.Context(), wire.QuoteProducts{ProductIDs: []string{"hot", "plenty"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range quote.Basis {
			events, err := pg.ReadStream(t.Context(), b.Stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1, Limit: 1})
			if err != nil || len(events) != 1 {
				t.Fatalf("head of %s: %v", b.Stream, err)
			}
			if events[0].Revision != b.Revision {
				t.Errorf("instance %d quotes %s at revision %d, its head is at %d", i, b.Stream, b.Revision, events[0].Revision)
			}
		}
	}
}

// interleaved is a store that, just before the first append of an order's reservation outcome,
// runs another delivery of the same command to its end: two deliveries that overlap.
type interleaved struct {
	eventstore.Store
	other    func()
	expected []eventstore.ExpectedRevision // of each outcome append
}

func (s *interleaved) Append(ctx context.Context, stream string, rev eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) > 0 && events[0].Type == model.TypeOrderReserved {
		s.expected = append(s.expected, rev)
		if other := s.other; other != nil {
			s.other = nil
			other()
		}
	}
	return s.Store.Append(ctx, stream, rev, events)
}

// TestOverlappingDeliveriesOfAReservation: a reservation's outcome is appended at the revision its
// delivery read (so the store can commit it with others), and a second delivery that recorded it
// in between makes the first one's append a retry: both answer the same, the outcome is recorded
// once and the units are reserved once.
func TestOverlappingDeliveriesOfAReservation(t *testing.T) {
	t.Parallel()
	store := &interleaved{Store: memory.New()}
	h := inventory.Handlers{Writer: commandstest.Writer(store), Store: store}
	addProduct(t, h, "p", 10)
	req := wire.ReserveStock{Meta: commandstest.Meta("saga:o1:reserve"), OrderID: "o1", Lines: []wire.OrderLine{{ProductID: "p", Quantity: 2, UnitPriceCents: 100}}}
	var second wire.CommandReply
	var secondErr error
	store.other = func() { second, secondErr = h.ReserveStock(t.Context(), req) }
	first, err := h.ReserveStock(t.Context(), req)
	if err != nil || secondErr != nil || first.Position != second.Position {
		t.Fatalf("first %+v %v, second %+v %v: want both reserved at one position", first, err, second, secondErr)
	}
	for i, rev := range store.expected {
		if r, exact := rev.Revision(); !exact || r != eventstore.NoRevision {
			t.Errorf("outcome append %d expected %s, want no stream (what its delivery read)", i, rev)
		}
	}
	events, err := store.ReadStream(t.Context(), model.ReservationStream("o1"), eventstore.ReadStreamOptions{})
	if err != nil || len(events) != 1 {
		t.Fatalf("reservation stream: %d events (%v), want the outcome once", len(events), err)
	}
	if s := stock(t, h.Store, "p"); s.ReservedTotal() != 2 {
		t.Fatalf("%d units reserved, want 2", s.ReservedTotal())
	}
}
