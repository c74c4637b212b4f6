package inventory_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/inventory"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var added = inventory.Added{ProductID: "p1", SKU: "SKU-1", Name: "Widget", PriceCents: 1999, At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	stocked := []inventory.Event{added, inventory.Restocked{ProductID: "p1", Quantity: 5}}
	reserved := append(stocked[:2:2], inventory.Reserved{ProductID: "p1", OrderID: "o1", Quantity: 3})
	tests := []struct {
		name  string
		given []inventory.Event
		when  inventory.Command
		then  []inventory.Event
		err   error
		field string
	}{
		{name: "add", when: inventory.AddProduct{ProductID: "p1", SKU: " sku-1 ", Name: "Widget", PriceCents: 1999}, then: []inventory.Event{added}},
		{name: "add twice", given: []inventory.Event{added}, when: inventory.AddProduct{ProductID: "p1", SKU: "SKU-1", Name: "W", PriceCents: 1}, err: inventory.ErrAlreadyAdded},
		{name: "negative price", when: inventory.AddProduct{ProductID: "p1", SKU: "S", Name: "W", PriceCents: -1}, field: "priceCents"},
		{name: "sku with spaces", when: inventory.AddProduct{ProductID: "p1", SKU: "S 1", Name: "W", PriceCents: 1}, field: "sku"},
		{name: "no name", when: inventory.AddProduct{ProductID: "p1", SKU: "S", PriceCents: 1}, field: "name"},
		{name: "change price", given: []inventory.Event{added}, when: inventory.ChangePrice{ProductID: "p1", PriceCents: 2500}, then: []inventory.Event{inventory.PriceChanged{ProductID: "p1", PriceCents: 2500, At: now}}},
		{name: "same price is a no-op", given: []inventory.Event{added}, when: inventory.ChangePrice{ProductID: "p1", PriceCents: 1999}},
		{name: "price of unknown product", when: inventory.ChangePrice{ProductID: "p1", PriceCents: 1}, err: inventory.ErrNotFound},
		{name: "restock", given: []inventory.Event{added}, when: inventory.Restock{ProductID: "p1", Quantity: 5}, then: []inventory.Event{inventory.Restocked{ProductID: "p1", Quantity: 5, At: now}}},
		{name: "restock zero", given: []inventory.Event{added}, when: inventory.Restock{ProductID: "p1"}, field: "quantity"},
		{name: "reserve", given: stocked, when: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 5}, then: []inventory.Event{inventory.Reserved{ProductID: "p1", OrderID: "o1", Quantity: 5, At: now}}},
		{name: "reserve more than available", given: reserved, when: inventory.Reserve{ProductID: "p1", OrderID: "o2", Quantity: 3}, err: inventory.ErrInsufficientStock},
		{name: "reserve again for the same order", given: reserved, when: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 3}},
		{name: "release", given: reserved, when: inventory.Release{ProductID: "p1", OrderID: "o1"}, then: []inventory.Event{inventory.Released{ProductID: "p1", OrderID: "o1", Quantity: 3, At: now}}},
		{name: "release nothing", given: stocked, when: inventory.Release{ProductID: "p1", OrderID: "o9"}},
		{name: "commit", given: reserved, when: inventory.Commit{ProductID: "p1", OrderID: "o1"}, then: []inventory.Event{inventory.Committed{ProductID: "p1", OrderID: "o1", Quantity: 3, At: now}}},
		{name: "commit without reservation", given: stocked, when: inventory.Commit{ProductID: "p1", OrderID: "o1"}, err: inventory.ErrNoReservation},
		{name: "discontinue", given: []inventory.Event{added}, when: inventory.Discontinue{ProductID: "p1"}, then: []inventory.Event{inventory.Discontinued{ProductID: "p1", At: now}}},
		{name: "reserve discontinued", given: append(stocked[:2:2], inventory.Discontinued{ProductID: "p1"}), when: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 1}, err: inventory.ErrDiscontinued},
		{name: "restock discontinued", given: []inventory.Event{added, inventory.Discontinued{ProductID: "p1"}}, when: inventory.Restock{ProductID: "p1", Quantity: 1}, err: inventory.ErrDiscontinued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s inventory.State
			for _, e := range tt.given {
				s = inventory.Evolve(s, e)
			}
			got, err := inventory.Decide(s, tt.when, now)
			var re *domain.RuleError
			switch {
			case tt.field != "":
				if !errors.As(err, &re) || re.Field != tt.field {
					t.Fatalf("err = %v, want a rule error on %s", err, tt.field)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.then, got); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
}

func TestStockFigures(t *testing.T) {
	t.Parallel()
	var s inventory.State
	for _, e := range []inventory.Event{added, inventory.Restocked{Quantity: 10}, inventory.Reserved{OrderID: "a", Quantity: 4},
		inventory.Reserved{OrderID: "b", Quantity: 3}, inventory.Released{OrderID: "a", Quantity: 4}, inventory.Committed{OrderID: "b", Quantity: 3}} {
		s = inventory.Evolve(s, e)
	}
	if s.OnHand != 7 || s.ReservedTotal() != 0 || s.Available() != 7 {
		t.Errorf("on hand %d reserved %d available %d, want 7 0 7", s.OnHand, s.ReservedTotal(), s.Available())
	}
}
