package orders_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands/commandstest"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/projections"
	orderrm "github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/projections/projectiontest"
	"github.com/orderflow/orderflow/queries/orders"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, natstest.Stop)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// setup runs the write side, the orders projector and the query service on one test database.
func setup(t *testing.T) (ordercmd.Handlers, orders.Service) {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	store := pgtest.EventStoreAt(t, url, 0)
	rmPool, err := pgschema.Open(ctx, url, "orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rmPool.Close)
	nc := natstest.Connect(t)
	subject := natstest.Namespace(t).Progress(orderrm.Name)
	projectiontest.Run(t, projections.New(store, rmPool, orderrm.Projection{}, projections.Options{Log: quiet, Publish: projections.PublishJSON(nc.Publish, subject)}))
	w, err := progress.NewWaiter(nc, subject, orderrm.Name, func(ctx context.Context) (eventstore.Position, error) {
		return projections.ReadCheckpoint(ctx, rmPool, orderrm.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return ordercmd.Handlers{Writer: commandstest.Writer(store), Catalog: commandstest.Shop{}, Customers: commandstest.Shop{}}, orders.Service{Pool: rmPool, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: 5 * time.Second}}
}

func placeOrder(t *testing.T, h ordercmd.Handlers, id, customer string, qty int64) wire.CommandReply {
	t.Helper()
	r, err := h.Place(t.Context(), wire.PlaceOrder{Meta: wire.CommandMeta{CommandID: "place-" + id}, OrderID: id, CustomerID: customer,
		Lines: []wire.PlaceLine{{ProductID: "sku-1", Quantity: qty, UnitPriceCents: commandstest.Price(250)}, {ProductID: "sku-2", Quantity: 1, UnitPriceCents: commandstest.Price(99)}}})
	if err != nil {
		t.Fatalf("place %s: %v", id, err)
	}
	return r
}

func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	cmds, q := setup(t)
	r := placeOrder(t, cmds, "o-1", "c-1", 3)
	got, err := q.OrderByID(t.Context(), wire.OrderByID{ID: "o-1", MinPosition: r.Position})
	if err != nil {
		t.Fatalf("order at %s: %v", r.Position, err)
	}
	if got.Status != "PLACED" || got.TotalCents != 3*250+99 || got.CustomerID != "c-1" || len(got.Lines) != 2 || got.PlacedAt.IsZero() {
		t.Fatalf("order = %+v", got)
	}
	c, err := cmds.Cancel(t.Context(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "cancel-o-1"}, OrderID: "o-1", Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = q.OrderByID(t.Context(), wire.OrderByID{ID: "o-1", MinPosition: c.Position})
	if err != nil || got.Status != "CANCELLED" || got.CancelledAt == nil || got.CancelReason != "test" {
		t.Fatalf("after cancel: %+v, %v", got, err)
	}
	var rerr *rpc.Error
	if _, err := q.OrderByID(t.Context(), wire.OrderByID{ID: "nope"}); !errors.As(err, &rerr) || rerr.Code != rpc.CodeNotFound {
		t.Errorf("unknown order: err = %v, want not_found", err)
	}
	if _, err := q.OrderByID(t.Context(), wire.OrderByID{ID: "o-1", MinPosition: "garbage"}); !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid {
		t.Errorf("bad position: err = %v, want invalid", err)
	}
}

// TestOrdersByIDs: many orders in one call, each with its own lines and history, equal to what
// OrderByID answers; unknown ids are left out; too many ids is invalid.
func TestOrdersByIDs(t *testing.T) {
	t.Parallel()
	cmds, q := setup(t)
	placeOrder(t, cmds, "o-1", "c-1", 1)
	placeOrder(t, cmds, "o-2", "c-2", 2)
	c, err := cmds.Cancel(t.Context(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "cancel-o-1"}, OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.OrdersByIDs(t.Context(), wire.OrdersByIDs{IDs: []string{"o-2", "nope", "o-1"}, MinPosition: c.Position})
	if err != nil || len(got) != 2 {
		t.Fatalf("orders = %+v, %v; want o-1 and o-2", got, err)
	}
	for _, o := range got {
		one, err := q.OrderByID(t.Context(), wire.OrderByID{ID: o.ID})
		if err != nil || !reflect.DeepEqual(o, one) {
			t.Errorf("get_many answered %+v, get answers %+v (%v)", o, one, err)
		}
	}
	var rerr *rpc.Error
	if _, err := q.OrdersByIDs(t.Context(), wire.OrdersByIDs{IDs: make([]string, orders.MaxIDs+1)}); !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid {
		t.Errorf("%d ids: err = %v, want invalid", orders.MaxIDs+1, err)
	}
}

func TestStaleReadTimesOut(t *testing.T) {
	t.Parallel()
	cmds, q := setup(t)
	r := placeOrder(t, cmds, "o-1", "c-1", 1)
	pos, _ := eventstore.ParsePosition(r.Position)
	ahead := eventstore.Position{Commit: pos.Commit + 1_000_000}
	q.ConsistencyTimeout = 300 * time.Millisecond
	_, err := q.OrderByID(t.Context(), wire.OrderByID{ID: "o-1", MinPosition: ahead.String()})
	var rerr *rpc.Error
	if !errors.As(err, &rerr) || rerr.Code != rpc.CodeStale || rerr.Details["wanted"] != ahead.String() || rerr.Details["reached"] == "" {
		t.Fatalf("err = %#v, want stale_read naming the positions", err)
	}
}

func TestListPagesByCustomerAndStatus(t *testing.T) {
	t.Parallel()
	cmds, q := setup(t)
	for i := range 25 {
		placeOrder(t, cmds, fmt.Sprintf("o-%02d", i), "c-1", 1)
	}
	placeOrder(t, cmds, "other", "c-2", 1)
	c, err := cmds.Cancel(t.Context(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "cx"}, OrderID: "o-03"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	after := ""
	pages := 0
	for {
		page, err := q.List(t.Context(), wire.ListOrders{CustomerID: "c-1", First: 10, After: after, MinPosition: c.Position})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Orders {
			if seen[o.ID] || o.CustomerID != "c-1" {
				t.Fatalf("page %d: order %s of %s repeated or foreign", pages, o.ID, o.CustomerID)
			}
			seen[o.ID] = true
		}
		if !page.HasNextPage {
			break
		}
		after = page.EndCursor
	}
	if len(seen) != 25 || pages != 3 {
		t.Fatalf("listed %d orders in %d pages, want 25 in 3", len(seen), pages)
	}
	cancelled, err := q.List(t.Context(), wire.ListOrders{CustomerID: "c-1", Status: "CANCELLED"})
	if err != nil || len(cancelled.Orders) != 1 || cancelled.Orders[0].ID != "o-03" {
		t.Fatalf("cancelled orders = %+v, %v", cancelled, err)
	}
	var rerr *rpc.Error
	for _, bad := range []wire.ListOrders{{First: -1}, {First: 1000}, {After: "!!"}} {
		if _, err := q.List(t.Context(), bad); !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid {
			t.Errorf("List(%+v): err = %v, want invalid", bad, err)
		}
	}
}

func TestServedOnNATSMicro(t *testing.T) {
	t.Parallel()
	cmds, q := setup(t)
	nc := natstest.Connect(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ns := natstest.Namespace(t)
	if _, err := orders.Register(ctx, nc, ns, quiet, q); err != nil {
		t.Fatal(err)
	}
	r := placeOrder(t, cmds, "nats-o-1", "nats-c-1", 2)
	got, err := rpc.Call[wire.Order](ctx, nc, wire.EndpointOrderByID.In(ns), wire.OrderByID{ID: "nats-o-1", MinPosition: r.Position})
	if err != nil || got.ID != "nats-o-1" {
		t.Fatalf("order over NATS = %+v, %v", got, err)
	}
}
