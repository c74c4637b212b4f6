package order_test

import (
	"errors"
	"math"
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

func TestDecide(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, order.Evolve, order.Decide, now, []domaintest.Case[order.Event, order.Command]{
		{Name: "place", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: lines}, Then: []order.Event{placed}},
		{Name: "place twice", Given: []order.Event{placed}, When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: lines}, Err: order.ErrAlreadyPlaced},
		{Name: "no lines", When: order.Place{OrderID: "o1", CustomerID: "c1"}, Field: "lines"},
		{Name: "no customer", When: order.Place{OrderID: "o1", CustomerID: " ", Lines: lines}, Field: "customerId"},
		{Name: "no order id", When: order.Place{CustomerID: "c1", Lines: lines}, Field: "orderId"},
		{Name: "zero quantity", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p", Quantity: 0, UnitPriceCents: 1}}}, Field: "lines[0].quantity"},
		{Name: "negative quantity", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{lines[0], {ProductID: "p", Quantity: -1, UnitPriceCents: 1}}}, Field: "lines[1].quantity"},
		{Name: "negative price", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p", Quantity: 1, UnitPriceCents: -5}}}, Field: "lines[0].unitPriceCents"},
		{Name: "no product", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{Quantity: 1, UnitPriceCents: 5}}}, Field: "lines[0].productId"},
		{Name: "total overflows", When: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p", Quantity: 10, UnitPriceCents: math.MaxInt64 / 5}}}, Field: "lines[0].unitPriceCents"},
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
