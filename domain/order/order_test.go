package order_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/order"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var lines = []order.Line{{ProductID: "sku-1", Quantity: 2, UnitPriceCents: 1250}, {ProductID: "sku-2", Quantity: 1, UnitPriceCents: 499}}

var placed = order.Placed{OrderID: "o1", CustomerID: "c1", Lines: lines, TotalCents: 2999, At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		given   []order.Event
		when    order.Command
		then    []order.Event
		wantErr error
		field   string // for rule errors
	}{
		{name: "place", when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: lines}, then: []order.Event{placed}},
		{name: "place twice", given: []order.Event{placed}, when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: lines}, wantErr: order.ErrAlreadyPlaced},
		{name: "no lines", when: order.Place{OrderID: "o1", CustomerID: "c1"}, field: "lines"},
		{name: "no customer", when: order.Place{OrderID: "o1", CustomerID: " ", Lines: lines}, field: "customerId"},
		{name: "no order id", when: order.Place{CustomerID: "c1", Lines: lines}, field: "orderId"},
		{name: "zero quantity", when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p", Quantity: 0, UnitPriceCents: 1}}}, field: "lines[0].quantity"},
		{name: "negative quantity", when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{lines[0], {ProductID: "p", Quantity: -1, UnitPriceCents: 1}}}, field: "lines[1].quantity"},
		{name: "negative price", when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p", Quantity: 1, UnitPriceCents: -5}}}, field: "lines[0].unitPriceCents"},
		{name: "no product", when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{Quantity: 1, UnitPriceCents: 5}}}, field: "lines[0].productId"},
		{name: "total overflows", when: order.Place{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p", Quantity: 10, UnitPriceCents: math.MaxInt64 / 5}}}, field: "lines[0].unitPriceCents"},
		{name: "cancel", given: []order.Event{placed}, when: order.Cancel{OrderID: "o1", Reason: "changed my mind"}, then: []order.Event{order.Cancelled{OrderID: "o1", Reason: "changed my mind", At: now}}},
		{name: "cancel twice", given: []order.Event{placed, order.Cancelled{OrderID: "o1", At: now}}, when: order.Cancel{OrderID: "o1"}, wantErr: order.ErrAlreadyCancelled},
		{name: "cancel unknown order", when: order.Cancel{OrderID: "nope"}, wantErr: order.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s order.State
			for _, e := range tt.given {
				s = order.Evolve(s, e)
			}
			got, err := order.Decide(s, tt.when, now)
			switch {
			case tt.field != "":
				var re *domain.RuleError
				if !errors.As(err, &re) || re.Field != tt.field {
					t.Fatalf("Decide() error = %v, want a rule error on %s", err, tt.field)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decide() error = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Decide() error = %v", err)
			}
			if d := cmp.Diff(tt.then, got); d != "" {
				t.Errorf("Decide() events (-want +got):\n%s", d)
			}
		})
	}
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
	if want := (order.State{ID: "o1", CustomerID: "c1", Status: order.StatusPlaced, TotalCents: 2999}); s != want {
		t.Fatalf("after Placed: %+v, want %+v", s, want)
	}
	if s = order.Evolve(s, order.Cancelled{OrderID: "o1"}); s.Status != order.StatusCancelled {
		t.Fatalf("after Cancelled: status %s", s.Status)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []order.Event{placed, order.Cancelled{OrderID: "o1", Reason: "r", At: now}} {
		typ, data, err := order.Encode(e)
		if err != nil {
			t.Fatalf("encode %T: %v", e, err)
		}
		got, err := order.Decode(typ, data)
		if err != nil {
			t.Fatalf("decode %s: %v", typ, err)
		}
		if d := cmp.Diff(e, got); d != "" {
			t.Errorf("round trip (-want +got):\n%s", d)
		}
	}
	if _, err := order.Decode("order.unknown.v1", []byte(`{}`)); err == nil {
		t.Error("decoding an unknown type succeeded")
	}
}
