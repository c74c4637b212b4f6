package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/commands/commandstest"
	"github.com/orderflow/orderflow/commands/inventory"
	"github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m, natstest.Stop) }

var lines = []wire.PlaceLine{{ProductID: "sku-1", Quantity: 2, UnitPriceCents: commandstest.Price(1250)}}

// shop is the catalog and the customers the order service asks.
var shop = commandstest.Shop{Catalog: map[string]int64{"sku-1": 1250, "sku-2": 499}, Closed: map[string]string{"gone": "erased", "off": "deactivated"}, Unknown: map[string]bool{"ghost": true}}

func handlers(store eventstore.Store) order.Handlers {
	return order.Handlers{Writer: commandstest.Writer(store), Catalog: shop, Customers: shop}
}

func place(id, cmd string) wire.PlaceOrder {
	return wire.PlaceOrder{Meta: wire.CommandMeta{CommandID: cmd, CorrelationID: "corr-" + cmd}, OrderID: id, CustomerID: "c1", Lines: lines}
}

func TestPlaceIsIdempotentByCommandID(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := handlers(store)
	first, err := h.Place(t.Context(), place("o1", "cmd-1"))
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	again, err := h.Place(t.Context(), place("o1", "cmd-1"))
	if err != nil {
		t.Fatalf("place again with the same command id: %v", err)
	}
	if again != first {
		t.Errorf("retry answered %+v, want the first answer %+v", again, first)
	}
	events, err := store.ReadStream(t.Context(), model.Stream("o1"), eventstore.ReadStreamOptions{})
	if err != nil || len(events) != 1 {
		t.Fatalf("stream has %d events (err %v), want 1", len(events), err)
	}
	if m := events[0].Metadata; m.CausationID != "cmd-1" || m.CorrelationID != "corr-cmd-1" {
		t.Errorf("metadata = %+v, want causation cmd-1 and correlation corr-cmd-1", m)
	}
	if _, err := h.Place(t.Context(), place("o1", "cmd-2")); !errors.Is(err, model.ErrAlreadyPlaced) {
		t.Errorf("placing o1 with a new command id: err = %v, want ErrAlreadyPlaced", err)
	}
}

func TestConcurrentCommandsOnOneOrder(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := handlers(store)
	if _, err := h.Place(t.Context(), place("o2", "p")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.Cancel(context.Background(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "c" + string(rune('a'+i))}, OrderID: "o2"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcomes["ok"]++
			case errors.Is(err, model.ErrAlreadyCancelled):
				outcomes["already"]++
			default:
				outcomes[err.Error()]++
			}
		}()
	}
	wg.Wait()
	if outcomes["ok"] != 1 || outcomes["already"] != 9 {
		t.Errorf("10 concurrent cancels: %v, want 1 ok and 9 already cancelled", outcomes)
	}
}

func TestCancelUnknownOrder(t *testing.T) {
	t.Parallel()
	h := handlers(memory.New())
	if _, err := h.Cancel(t.Context(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "x"}, OrderID: "missing"}); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestServedOnNATSMicro(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ns := natstest.Namespace(t)
	svc, err := order.Register(ctx, nc, ns, slog.New(slog.NewTextHandler(io.Discard, nil)), handlers(memory.New()))
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	id := "nats-" + time.Now().Format("150405.000000000")
	got, err := rpc.Call[wire.CommandReply](ctx, nc, wire.EndpointPlaceOrder.In(ns), place(id, "cmd-"+id))
	if err != nil || got.ID != id || got.Position == "" {
		t.Fatalf("place over NATS = %+v, %v", got, err)
	}
	bad := place(id+"-bad", "cmd-bad-"+id)
	bad.Lines = []wire.PlaceLine{{ProductID: "p", Quantity: -1}}
	_, err = rpc.Call[wire.CommandReply](ctx, nc, wire.EndpointPlaceOrder.In(ns), bad)
	var rerr *rpc.Error
	if !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid || rerr.Field != "lines[0].quantity" {
		t.Fatalf("invalid place over NATS: err = %v, want invalid on lines[0].quantity", err)
	}
	_, err = rpc.Call[wire.CommandReply](ctx, nc, wire.EndpointCancelOrder.In(ns), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "x-" + id}, OrderID: "missing-" + id})
	if !errors.As(err, &rerr) || rerr.Code != rpc.CodeNotFound {
		t.Fatalf("cancel unknown over NATS: err = %v, want not_found", err)
	}
	// Discovery: the service answers $SRV.INFO with its endpoints.
	msg, err := nc.Request("$SRV.INFO."+wire.ServiceOrderCommands+"."+svc.Info().ID, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("service info: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil || len(info.Endpoints) != 6 {
		t.Fatalf("service info = %s (err %v), want 6 endpoints", msg.Data, err)
	}
}

// TestPricesAreTheCatalogs: a line is charged the catalog's price; a line asking another is refused
// with the current price (a conflict), one asking none is priced; an unknown product keeps what
// was asked (its reservation will refuse it).
func TestPricesAreTheCatalogs(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := handlers(store)
	cheap := wire.PlaceOrder{Meta: commandstest.Meta("cheap"), OrderID: "o-cheap", CustomerID: "c1",
		Lines: []wire.PlaceLine{{ProductID: "sku-1", Quantity: 1, UnitPriceCents: commandstest.Price(1)}}}
	if _, err := h.Place(t.Context(), cheap); !errors.Is(err, domain.ErrConflict) || !strings.Contains(err.Error(), "costs 1250 cents, not 1") {
		t.Errorf("a price of 1 for a product at 1250: %v, want a conflict that says 1250", err)
	}
	free := cheap
	free.Lines = []wire.PlaceLine{{ProductID: "sku-1", Quantity: 1, UnitPriceCents: commandstest.Price(0)}}
	if _, err := h.Place(t.Context(), free); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("a price of 0 for a product at 1250: %v, want a conflict", err)
	}
	priced := wire.PlaceOrder{Meta: commandstest.Meta("priced"), OrderID: "o-priced", CustomerID: "c1",
		Lines: []wire.PlaceLine{{ProductID: "sku-1", Quantity: 2}, {ProductID: "sku-2", Quantity: 1, UnitPriceCents: commandstest.Price(499)}, {ProductID: "new", Quantity: 1, UnitPriceCents: commandstest.Price(7)}}}
	commandstest.Must(t)(h.Place(t.Context(), priced))
	events, err := store.ReadStream(t.Context(), model.Stream("o-priced"), eventstore.ReadStreamOptions{})
	if err != nil || len(events) != 1 {
		t.Fatalf("%d events, %v", len(events), err)
	}
	e, _ := model.Codec.Decode(events[0].Type, events[0].Data)
	want := []model.Line{{ProductID: "sku-1", Quantity: 2, UnitPriceCents: 1250}, {ProductID: "sku-2", Quantity: 1, UnitPriceCents: 499}, {ProductID: "new", Quantity: 1, UnitPriceCents: 7}}
	if p := e.(model.Placed); !slices.Equal(p.Lines, want) || p.TotalCents != 3006 {
		t.Errorf("placed %+v, want lines %+v and total 3006", p, want)
	}
}

// countingReads counts the stream reads of an inventory instance (its appends go through, with
// their conditions).
type countingReads struct {
	*postgres.Store
	reads atomic.Int64
}

func (c *countingReads) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	c.reads.Add(1)
	return c.Store.ReadStream(ctx, stream, opts)
}

// TestAPriceAnotherInstanceChangedIsNeverOrderedAt: two inventory instances over one log (on
// PostgreSQL); the order service asks one of them, which answers from what it holds. After the
// other changes the price, an order taking the catalog's price is placed at the new one (its
// append's condition on the product's revision failed, the catalog was asked again for a proven
// price), and an order naming the new price is placed, not refused on the old one. Orders while
// the price stays (the stock changes) read nothing to prove it: their appends check it.
func TestAPriceAnotherInstanceChangedIsNeverOrderedAt(t *testing.T) {
	t.Parallel()
	store := pgtest.EventStore(t, 0)
	counted := &countingReads{Store: store}
	// What this instance holds of the product stays fresh enough for its quotes throughout (a
	// slow machine must not make it read for being old: see TestALookReadsWhatIsOld).
	here := inventory.Handlers{Writer: commands.NewWriter(counted, commands.WriterOptions{PeekFresh: time.Hour}), Store: counted}
	there := inventory.Handlers{Writer: commandstest.Writer(store), Store: store}
	commandstest.Must(t)(there.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("add"), ProductID: "p", SKU: "SKU-P", Name: "p", PriceCents: 1250}))
	h := order.Handlers{Writer: commandstest.Writer(store), Catalog: commandstest.Quoting{Handlers: here}, Customers: shop}
	placedAt := func(id string, price *int64) (int64, error) {
		t.Helper()
		req := wire.PlaceOrder{Meta: commandstest.Meta("place-" + id), OrderID: id, CustomerID: "c1", Lines: []wire.PlaceLine{{ProductID: "p", Quantity: 1, UnitPriceCents: price}}}
		if _, err := h.Place(t.Context(), req); err != nil {
			return 0, err
		}
		state, _, err := aggregateLoad(t, store, id)
		return state.TotalCents, err
	}
	if total, err := placedAt("o-1", nil); err != nil || total != 1250 {
		t.Fatalf("first order: total %d, %v; want 1250", total, err)
	}
	commandstest.Must(t)(there.ChangePrice(t.Context(), wire.ChangePrice{Meta: commandstest.Meta("raise"), ProductID: "p", PriceCents: 1500}))
	if total, err := placedAt("o-2", nil); err != nil || total != 1500 {
		t.Errorf("an order at the catalog's price after another instance raised it: total %d, %v; want 1500", total, err)
	}
	commandstest.Must(t)(there.ChangePrice(t.Context(), wire.ChangePrice{Meta: commandstest.Meta("raise-again"), ProductID: "p", PriceCents: 1750}))
	if total, err := placedAt("o-3", commandstest.Price(1750)); err != nil || total != 1750 {
		t.Errorf("an order naming the price another instance set: total %d, %v; want 1750", total, err)
	}
	if _, err := placedAt("o-4", commandstest.Price(1500)); !errors.Is(err, domain.ErrConflict) {
		t.Errorf("an order naming the old price: %v, want a conflict", err)
	}
	// The price does not change now, the stock does (through the other instance): a quote of a
	// product this instance holds reads nothing, and the orders' conditions hold.
	before := counted.reads.Load()
	for i := range 5 {
		commandstest.Must(t)(there.Restock(t.Context(), wire.Restock{Meta: commandstest.Meta(fmt.Sprintf("restock-%d", i)), ProductID: "p", Quantity: 1}))
		if _, err := placedAt(fmt.Sprintf("o-steady-%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.reads.Load() - before; n != 0 {
		t.Errorf("5 orders at an unchanged price, the stock restocked before each, read streams %d times, want 0 (the appends check the price)", n)
	}
}

// TestOnlyCustomersWithAnAccountOrder: a deactivated or erased customer is refused; a customer
// without an account who orders for itself gets its order cancelled as it is placed (staff may
// order for one: a guest order); a customer chooses a UUID for its order's id, or none.
func TestOnlyCustomersWithAnAccountOrder(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := handlers(store)
	as := func(sub string) context.Context {
		return auth.With(t.Context(), auth.Principal{Subject: sub, Role: auth.Customer})
	}
	req := func(customer string) wire.PlaceOrder {
		return wire.PlaceOrder{Meta: commandstest.Meta("by-" + customer), OrderID: uuid.NewString(), CustomerID: customer, Lines: lines}
	}
	for customer, want := range map[string]error{"off": model.ErrCustomerDeactivated, "gone": model.ErrCustomerErased} {
		if _, err := h.Place(as(customer), req(customer)); !errors.Is(err, want) {
			t.Errorf("%s orders: %v, want %v", customer, err, want)
		}
		if _, err := h.Place(t.Context(), req(customer)); !errors.Is(err, want) {
			t.Errorf("staff orders for %s: %v, want %v", customer, err, want)
		}
	}
	ghost := req("ghost")
	commandstest.Must(t)(h.Place(as("ghost"), ghost))
	state, _, err := aggregateLoad(t, store, ghost.OrderID)
	if err != nil || state.Status != model.StatusCancelled {
		t.Errorf("the order of a customer without an account is %s (%v), want CANCELLED", state.Status, err)
	}
	guest := req("ghost")
	guest.Meta = commandstest.Meta("guest")
	commandstest.Must(t)(h.Place(t.Context(), guest))
	if state, _, _ := aggregateLoad(t, store, guest.OrderID); state.Status != model.StatusPlaced {
		t.Errorf("staff's order for a customer without an account is %s, want PLACED", state.Status)
	}
	theirs := req("c1")
	commandstest.Must(t)(h.Place(as("c1"), theirs))
	other := req("c2")
	other.OrderID = theirs.OrderID
	if _, err := h.Place(as("c2"), other); !errors.Is(err, model.ErrAlreadyPlaced) || strings.Contains(err.Error(), "placed") {
		t.Errorf("another customer's order id: %v, want 'order id already used', nothing of the order", err)
	}
	mine := req("c1")
	mine.OrderID = "o-1"
	var rule *domain.RuleError
	if _, err := h.Place(as("c1"), mine); !errors.As(err, &rule) || rule.Field != "orderId" {
		t.Errorf("a customer's own order id o-1: %v, want a rule error on orderId", err)
	}
}

func aggregateLoad(t *testing.T, store eventstore.Store, id string) (model.State, []eventstore.RecordedEvent, error) {
	t.Helper()
	return commandstest.Fold(t.Context(), store, commands.NewDecider(model.Codec, model.Evolve, model.Stream, model.Validate, model.Decide).Aggregate, model.Stream(id))
}
