package customers_test

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands/commandstest"
	customercmd "github.com/orderflow/orderflow/commands/customer"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/internal/progress"
	customersrm "github.com/orderflow/orderflow/projections/customers"
	"github.com/orderflow/orderflow/projections/projectiontest"
	"github.com/orderflow/orderflow/queries/customers"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestFiguresFromOrderEvents: the customers read model counts orders and sums the totals of those
// not cancelled, from order events, without reading the orders service's tables.
func TestFiguresFromOrderEvents(t *testing.T) {
	t.Parallel()
	rm := projectiontest.Start(t, customersrm.Projection{})
	cust := customercmd.Handlers{Writer: commandstest.Writer(rm.Store), Store: rm.Store}
	orders := ordercmd.Handlers{Writer: commandstest.Writer(rm.Store), Catalog: commandstest.Shop{}, Customers: commandstest.Shop{}}
	q := customers.Service{Pool: rm.Pool, ReadModel: progress.ReadModel{Waiter: rm.Waiter, ConsistencyTimeout: 10 * time.Second}}
	ctx := t.Context()
	addr := wire.Address{Line1: "1 Main St", City: "Paris", PostalCode: "75001", Country: "FR"}
	if _, err := cust.Register(ctx, wire.RegisterCustomer{Meta: wire.CommandMeta{CommandID: "reg"}, CustomerID: "c1", Name: "Ada", Email: "ada@example.com", Address: addr}); err != nil {
		t.Fatal(err)
	}
	for i, qty := range []int64{1, 2, 3} {
		id := []string{"o1", "o2", "o3"}[i]
		if _, err := orders.Place(ctx, wire.PlaceOrder{Meta: wire.CommandMeta{CommandID: "p-" + id}, OrderID: id, CustomerID: "c1", Lines: []wire.PlaceLine{{ProductID: "p", Quantity: qty, UnitPriceCents: commandstest.Price(1000)}}}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := orders.Cancel(ctx, wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "x"}, OrderID: "o2"})
	if err != nil {
		t.Fatal(err)
	}
	moved := wire.Address{Line1: "2 Side St", City: "Lyon", PostalCode: "69001", Country: "FR"}
	a, err := cust.ChangeAddress(ctx, wire.ChangeAddress{Meta: wire.CommandMeta{CommandID: "addr"}, CustomerID: "c1", Address: moved})
	if err != nil {
		t.Fatal(err)
	}
	// The later of the two positions: the cancellation's and the address change's.
	c, err := q.CustomerByID(ctx, wire.CustomerByID{ID: "c1", MinPosition: r.Position})
	if err != nil {
		t.Fatal(err)
	}
	c, err = q.CustomerByID(ctx, wire.CustomerByID{ID: "c1", MinPosition: a.Position})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Ada" || c.Email != "ada@example.com" || c.OrderCount != 3 || c.LifetimeSpendCents != 4000 || !c.Active {
		t.Fatalf("customer = %+v; want 3 orders, 4000 cents spent (o2 cancelled)", c)
	}
	if c.Address != moved {
		t.Errorf("address %+v, want %+v", c.Address, moved)
	}
}
