package inventory_test

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain/domaintest"
	"github.com/orderflow/orderflow/domain/inventory"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var added = inventory.Added{ProductID: "p1", SKU: "SKU-1", Name: "Widget", PriceCents: 1999, At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	stocked := []inventory.Event{added, inventory.Restocked{ProductID: "p1", Quantity: 5}}
	reserved := append(stocked[:2:2], inventory.Reserved{ProductID: "p1", OrderID: "o1", Quantity: 3})
	tests := []domaintest.Case[inventory.Event, inventory.Command]{
		{Name: "add", When: inventory.AddProduct{ProductID: "p1", SKU: " sku-1 ", Name: "Widget", PriceCents: 1999}, Then: []inventory.Event{added}},
		{Name: "add twice", Given: []inventory.Event{added}, When: inventory.AddProduct{ProductID: "p1", SKU: "SKU-1", Name: "W", PriceCents: 1}, Err: inventory.ErrAlreadyAdded},
		{Name: "negative price", When: inventory.AddProduct{ProductID: "p1", SKU: "S", Name: "W", PriceCents: -1}, Field: "priceCents"},
		{Name: "sku with spaces", When: inventory.AddProduct{ProductID: "p1", SKU: "S 1", Name: "W", PriceCents: 1}, Field: "sku"},
		{Name: "no name", When: inventory.AddProduct{ProductID: "p1", SKU: "S", PriceCents: 1}, Field: "name"},
		{Name: "change price", Given: []inventory.Event{added}, When: inventory.ChangePrice{ProductID: "p1", PriceCents: 2500}, Then: []inventory.Event{inventory.PriceChanged{ProductID: "p1", PriceCents: 2500, At: now}}},
		{Name: "same price is a no-op", Given: []inventory.Event{added}, When: inventory.ChangePrice{ProductID: "p1", PriceCents: 1999}},
		{Name: "price of unknown product", When: inventory.ChangePrice{ProductID: "p1", PriceCents: 1}, Err: inventory.ErrNotFound},
		{Name: "restock", Given: []inventory.Event{added}, When: inventory.Restock{ProductID: "p1", Quantity: 5}, Then: []inventory.Event{inventory.Restocked{ProductID: "p1", Quantity: 5, At: now}}},
		{Name: "restock zero", Given: []inventory.Event{added}, When: inventory.Restock{ProductID: "p1"}, Field: "quantity"},
		{Name: "reserve", Given: stocked, When: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 5, UnitPriceCents: 1999}, Then: []inventory.Event{inventory.Reserved{ProductID: "p1", OrderID: "o1", Quantity: 5, At: now}}},
		{Name: "reserve more than available", Given: reserved, When: inventory.Reserve{ProductID: "p1", OrderID: "o2", Quantity: 3, UnitPriceCents: 1999}, Err: inventory.ErrInsufficientStock},
		{Name: "reserve at another price", Given: stocked, When: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 1, UnitPriceCents: 1}, Err: inventory.ErrPriceChanged},
		{Name: "reserve after the price changed", Given: append(stocked[:2:2], inventory.PriceChanged{ProductID: "p1", PriceCents: 2500}), When: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 1, UnitPriceCents: 1999}, Err: inventory.ErrPriceChanged},
		{Name: "reserve again for the same order", Given: reserved, When: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 3}},
		{Name: "release", Given: reserved, When: inventory.Release{ProductID: "p1", OrderID: "o1"}, Then: []inventory.Event{inventory.Released{ProductID: "p1", OrderID: "o1", Quantity: 3, At: now}}},
		{Name: "release nothing", Given: stocked, When: inventory.Release{ProductID: "p1", OrderID: "o9"}},
		{Name: "commit", Given: reserved, When: inventory.Commit{ProductID: "p1", OrderID: "o1"}, Then: []inventory.Event{inventory.Committed{ProductID: "p1", OrderID: "o1", Quantity: 3, At: now}}},
		{Name: "commit without reservation", Given: stocked, When: inventory.Commit{ProductID: "p1", OrderID: "o1"}, Err: inventory.ErrNoReservation},
		{Name: "discontinue", Given: []inventory.Event{added}, When: inventory.Discontinue{ProductID: "p1"}, Then: []inventory.Event{inventory.Discontinued{ProductID: "p1", At: now}}},
		{Name: "reserve discontinued", Given: append(stocked[:2:2], inventory.Discontinued{ProductID: "p1"}), When: inventory.Reserve{ProductID: "p1", OrderID: "o1", Quantity: 1}, Err: inventory.ErrDiscontinued},
		{Name: "restock discontinued", Given: []inventory.Event{added, inventory.Discontinued{ProductID: "p1"}}, When: inventory.Restock{ProductID: "p1", Quantity: 1}, Err: inventory.ErrDiscontinued},
	}
	domaintest.Run(t, inventory.Evolve, inventory.Decide, now, tests)
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
