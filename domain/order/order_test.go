package order_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/domaintest"
	"github.com/orderflow/orderflow/domain/order"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var lines = []order.Line{{ProductID: "sku-1", Quantity: 2, UnitPriceCents: 1250}, {ProductID: "sku-2", Quantity: 1, UnitPriceCents: 499}}

var placed = order.Placed{OrderID: "o1", CustomerID: "c1", Lines: lines, TotalCents: 2999, At: now}

// catalog prices the products of lines.
var catalog = map[string]int64{"sku-1": 1250, "sku-2": 499}

func cents(v int64) *int64 { return &v }

// asking is lines as a customer asks for them: sku-1 at its price, sku-2 at none.
var asking = []order.PlaceLine{{ProductID: "sku-1", Quantity: 2, UnitPriceCents: cents(1250)}, {ProductID: "sku-2", Quantity: 1}}

func place(ls ...order.PlaceLine) order.Place {
	return order.Place{OrderID: "o1", CustomerID: "c1", Lines: ls, Catalog: catalog}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	unregistered := placed
	unregistered.Unregistered = true
	domaintest.Run(t, order.Evolve, order.Decide, now, []domaintest.Case[order.Event, order.Command]{
		{Name: "place", When: place(asking...), Then: []order.Event{placed}},
		{Name: "place twice", Given: []order.Event{placed}, When: place(asking...), Err: order.ErrAlreadyPlaced},
		{Name: "a price the catalog does not ask", When: place(order.PlaceLine{ProductID: "sku-1", Quantity: 1, UnitPriceCents: cents(1)}), Err: domain.ErrConflict},
		{Name: "free at a price the catalog does not ask", When: place(order.PlaceLine{ProductID: "sku-1", Quantity: 1, UnitPriceCents: cents(0)}), Err: domain.ErrConflict},
		{Name: "an unknown product keeps the price asked", When: place(order.PlaceLine{ProductID: "new", Quantity: 3, UnitPriceCents: cents(7)}),
			Then: []order.Event{order.Placed{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "new", Quantity: 3, UnitPriceCents: 7}}, TotalCents: 21, At: now}}},
		{Name: "a guest order", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: asking, Catalog: catalog, Account: order.AccountGuest}, Then: []order.Event{placed}},
		{Name: "a customer without an account", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: asking, Catalog: catalog, Account: order.AccountNone},
			Then: []order.Event{unregistered, order.Cancelled{OrderID: "o1", Reason: "customer c1 is not registered", At: now}}},
		{Name: "a deactivated customer", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: asking, Catalog: catalog, Account: order.AccountDeactivated}, Err: order.ErrCustomerDeactivated},
		{Name: "an erased customer", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: asking, Catalog: catalog, Account: order.AccountErased}, Err: order.ErrCustomerErased},
		{Name: "no lines", When: place(), Field: "lines"},
		{Name: "no customer", When: order.Place{OrderID: "o1", CustomerID: " ", Lines: asking}, Field: "customerId"},
		{Name: "no order id", When: order.Place{CustomerID: "c1", Lines: asking}, Field: "orderId"},
		{Name: "an order id outside the safe set", When: order.Place{OrderID: "a/b", CustomerID: "c1", Lines: asking}, Field: "orderId"},
		{Name: "zero quantity", When: place(order.PlaceLine{ProductID: "p", Quantity: 0}), Field: "lines[0].quantity"},
		{Name: "negative quantity", When: place(asking[0], order.PlaceLine{ProductID: "p", Quantity: -1}), Field: "lines[1].quantity"},
		{Name: "negative price", When: place(order.PlaceLine{ProductID: "p", Quantity: 1, UnitPriceCents: cents(-5)}), Field: "lines[0].unitPriceCents"},
		{Name: "a price past 2^53", When: place(order.PlaceLine{ProductID: "p", Quantity: 1, UnitPriceCents: cents(9007199254740993)}), Field: "lines[0].unitPriceCents"},
		{Name: "no product", When: place(order.PlaceLine{Quantity: 1}), Field: "lines[0].productId"},
		{Name: "total too large", When: place(order.PlaceLine{ProductID: "p", Quantity: 10, UnitPriceCents: cents(domain.MaxCents / 5)}), Field: "lines[0].quantity"},
		{Name: "totals too large together", When: order.Place{OrderID: "o1", CustomerID: "c1", Catalog: map[string]int64{"p": domain.MaxCents / 2},
			Lines: []order.PlaceLine{{ProductID: "p", Quantity: 1}, {ProductID: "p", Quantity: 1}, {ProductID: "p", Quantity: 1}}}, Field: "lines[2].quantity"},
		{Name: "cancel", Given: []order.Event{placed}, When: order.Cancel{OrderID: "o1", Reason: "changed my mind"}, Then: []order.Event{order.Cancelled{OrderID: "o1", Reason: "changed my mind", At: now}}},
		{Name: "cancel twice", Given: []order.Event{placed, order.Cancelled{OrderID: "o1", At: now}}, When: order.Cancel{OrderID: "o1"}, Err: order.ErrAlreadyCancelled},
		{Name: "cancel unknown order", When: order.Cancel{OrderID: "nope"}, Err: order.ErrNotFound},
		{Name: "a customer cancels its own order", Given: []order.Event{placed}, When: order.Cancel{OrderID: "o1", ByCustomer: placed.CustomerID}, Then: []order.Event{order.Cancelled{OrderID: "o1", At: now}}},
		{Name: "a customer cannot cancel another's order", Given: []order.Event{placed}, When: order.Cancel{OrderID: "o1", ByCustomer: "someone-else"}, Err: order.ErrNotFound},
	})
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	if !errors.Is(order.ErrNotFound, domain.ErrNotFound) || !errors.Is(order.ErrAlreadyCancelled, domain.ErrConflict) || !errors.Is(order.ErrAlreadyPlaced, domain.ErrConflict) {
		t.Fatal("order errors must wrap their domain kind")
	}
}

func TestEvolve(t *testing.T) {
	t.Parallel()
	s := order.Evolve(order.State{}, placed)
	if d := cmp.Diff(order.State{ID: "o1", CustomerID: "c1", Status: order.StatusPlaced, TotalCents: 2999, Lines: lines}, s); d != "" {
		t.Fatalf("after Placed (-want +got):\n%s", d)
	}
	if s = order.Evolve(s, order.Cancelled{OrderID: "o1"}); s.Status != order.StatusCancelled {
		t.Fatalf("after Cancelled: status %s", s.Status)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []order.Event{placed, order.Cancelled{OrderID: "o1", Reason: "r", At: now}, order.Confirmed{OrderID: "o1", At: now},
		order.Paid{OrderID: "o1", At: now}, order.Shipped{OrderID: "o1", At: now}, order.Delivered{OrderID: "o1", At: now}} {
		typ, data, err := order.Codec.Encode(e)
		if err != nil {
			t.Fatalf("encode %T: %v", e, err)
		}
		got, err := order.Codec.Decode(typ, data)
		if err != nil {
			t.Fatalf("decode %s: %v", typ, err)
		}
		if d := cmp.Diff(e, got); d != "" {
			t.Errorf("round trip (-want +got):\n%s", d)
		}
	}
	if _, err := order.Codec.Decode("order.unknown.v1", []byte(`{}`)); err == nil {
		t.Error("decoding an unknown type succeeded")
	}
}

// TestLifecycle walks every command from every status: the allowed transitions produce their
// event, every other one a named error.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	history := map[order.Status][]order.Event{
		order.StatusNone:      nil,
		order.StatusPlaced:    {placed},
		order.StatusConfirmed: {placed, order.Confirmed{OrderID: "o1"}},
		order.StatusPaid:      {placed, order.Confirmed{OrderID: "o1"}, order.Paid{OrderID: "o1"}},
		order.StatusShipped:   {placed, order.Confirmed{OrderID: "o1"}, order.Shipped{OrderID: "o1"}},
		order.StatusDelivered: {placed, order.Confirmed{OrderID: "o1"}, order.Shipped{OrderID: "o1"}, order.Delivered{OrderID: "o1"}},
		order.StatusCancelled: {placed, order.Cancelled{OrderID: "o1"}},
	}
	type outcome struct {
		event order.Event
		err   error
	}
	c, p, sh, d, x := order.Confirmed{OrderID: "o1", At: now}, order.Paid{OrderID: "o1", At: now}, order.Shipped{OrderID: "o1", At: now}, order.Delivered{OrderID: "o1", At: now}, order.Cancelled{OrderID: "o1", At: now}
	want := map[string]map[order.Status]outcome{
		"confirm": {order.StatusNone: {err: order.ErrNotFound}, order.StatusPlaced: {event: c}, order.StatusConfirmed: {err: order.ErrAlreadyConfirmed},
			order.StatusPaid: {err: order.ErrAlreadyConfirmed}, order.StatusShipped: {err: order.ErrAlreadyShipped},
			order.StatusDelivered: {err: order.ErrAlreadyDelivered}, order.StatusCancelled: {err: order.ErrAlreadyCancelled}},
		"markPaid": {order.StatusNone: {err: order.ErrNotFound}, order.StatusPlaced: {err: order.ErrNotConfirmed}, order.StatusConfirmed: {event: p},
			order.StatusPaid: {err: order.ErrAlreadyPaid}, order.StatusShipped: {err: order.ErrAlreadyShipped},
			order.StatusDelivered: {err: order.ErrAlreadyDelivered}, order.StatusCancelled: {err: order.ErrAlreadyCancelled}},
		"ship": {order.StatusNone: {err: order.ErrNotFound}, order.StatusPlaced: {err: order.ErrNotConfirmed}, order.StatusConfirmed: {event: sh},
			order.StatusPaid: {event: sh}, order.StatusShipped: {err: order.ErrAlreadyShipped},
			order.StatusDelivered: {err: order.ErrAlreadyDelivered}, order.StatusCancelled: {err: order.ErrAlreadyCancelled}},
		"deliver": {order.StatusNone: {err: order.ErrNotFound}, order.StatusPlaced: {err: order.ErrNotShipped}, order.StatusConfirmed: {err: order.ErrNotShipped},
			order.StatusPaid: {err: order.ErrNotShipped}, order.StatusShipped: {event: d},
			order.StatusDelivered: {err: order.ErrAlreadyDelivered}, order.StatusCancelled: {err: order.ErrAlreadyCancelled}},
		"cancel": {order.StatusNone: {err: order.ErrNotFound}, order.StatusPlaced: {event: x}, order.StatusConfirmed: {event: x},
			order.StatusPaid: {event: x}, order.StatusShipped: {err: order.ErrAlreadyShipped},
			order.StatusDelivered: {err: order.ErrAlreadyDelivered}, order.StatusCancelled: {err: order.ErrAlreadyCancelled}},
	}
	commands := map[string]order.Command{"confirm": order.Confirm{OrderID: "o1"}, "markPaid": order.MarkPaid{OrderID: "o1"},
		"ship": order.Ship{OrderID: "o1"}, "deliver": order.Deliver{OrderID: "o1"}, "cancel": order.Cancel{OrderID: "o1"}}
	for name, cmd := range commands {
		for status, given := range history {
			var s order.State
			for _, e := range given {
				s = order.Evolve(s, e)
			}
			if s.Status != status {
				t.Fatalf("history for %s folds to %s", status, s.Status)
			}
			w := want[name][status]
			got, err := order.Decide(s, cmd, now)
			if w.err != nil {
				if !errors.Is(err, w.err) || !errors.Is(err, domain.ErrConflict) && !errors.Is(err, domain.ErrNotFound) {
					t.Errorf("%s from %s: err = %v, want %v", name, status, err, w.err)
				}
				continue
			}
			if err != nil || len(got) != 1 || cmp.Diff(w.event, got[0]) != "" {
				t.Errorf("%s from %s = %v, %v; want %v", name, status, got, err, w.event)
			}
		}
	}
}
