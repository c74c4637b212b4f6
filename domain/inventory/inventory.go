// Package inventory owns products: catalog data (sku, name, price) and stock (on hand and
// reserved per order). Stock never goes negative: a reservation needs available units, and the
// product stream's expected revision serializes concurrent reservations.
package inventory

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orderflow/orderflow/domain"
)

// Errors of the product lifecycle.
var (
	ErrNotFound          = fmt.Errorf("product %w", domain.ErrNotFound)
	ErrAlreadyAdded      = fmt.Errorf("product already added: %w", domain.ErrConflict)
	ErrDiscontinued      = fmt.Errorf("product is discontinued: %w", domain.ErrConflict)
	ErrInsufficientStock = fmt.Errorf("not enough stock: %w", domain.ErrConflict)
	ErrNoReservation     = fmt.Errorf("no reservation for this order: %w", domain.ErrConflict)
	ErrSKUTaken          = fmt.Errorf("sku already used by another product: %w", domain.ErrConflict)
	// ErrPriceChanged: a reservation's price is not the product's price (it changed since the
	// order was placed, or the order named a product the catalog did not know then).
	ErrPriceChanged = fmt.Errorf("price changed: %w", domain.ErrConflict)
)

// Stream is the event stream of product id.
func Stream(id string) string { return "product-" + id }

// SKUStream records which product holds a sku, as customer.EmailStream does for e-mails.
func SKUStream(sku string) string { return "product_sku-" + NormalizeSKU(sku) }

// NormalizeSKU is the form in which skus are compared.
func NormalizeSKU(sku string) string { return strings.ToUpper(strings.TrimSpace(sku)) }

// ReservationStream records the outcome of an order's stock reservation as a whole (all lines or
// none): the one place a process manager learns whether an order's stock is held.
func ReservationStream(orderID string) string { return "stock_reservation-" + orderID }

// Limits.
const (
	MaxQuantity = 1_000_000
	MaxPrice    = 100_000_000_00 // cents
	// MaxSKULength and MaxNameLength bound a product's sku and name, in characters.
	MaxSKULength  = 64
	MaxNameLength = 200
)

// Commands.
type (
	AddProduct struct {
		ProductID, SKU, Name string
		PriceCents           int64
	}
	ChangePrice struct {
		ProductID  string
		PriceCents int64
	}
	Restock struct {
		ProductID string
		Quantity  int64
	}
	Discontinue struct{ ProductID string }
	// Reserve holds Quantity units for OrderID, which will be charged UnitPriceCents for each: a
	// product reserves only at its current price. Reserving again for the same order is a no-op.
	Reserve struct {
		ProductID, OrderID string
		Quantity           int64
		UnitPriceCents     int64
	}
	// Release gives an order's reserved units back. Releasing nothing is a no-op.
	Release struct{ ProductID, OrderID string }
	// Commit turns an order's reservation into a shipment: the units leave the stock.
	Commit struct{ ProductID, OrderID string }
)

// Command is one of the commands above.
type Command interface{ isCommand() }

func (AddProduct) isCommand()  {}
func (ChangePrice) isCommand() {}
func (Restock) isCommand()     {}
func (Discontinue) isCommand() {}
func (Reserve) isCommand()     {}
func (Release) isCommand()     {}
func (Commit) isCommand()      {}

// Event type names: a stored contract.
const (
	TypeAdded        = "inventory.product_added.v1"
	TypePriceChanged = "inventory.price_changed.v1"
	TypeRestocked    = "inventory.restocked.v1"
	TypeDiscontinued = "inventory.discontinued.v1"
	TypeReserved     = "inventory.stock_reserved.v1"
	TypeReleased     = "inventory.stock_released.v1"
	TypeCommitted    = "inventory.stock_committed.v1"
	TypeSKUClaimed   = "inventory.sku_claimed.v1"

	TypeOrderReserved = "inventory.order_reserved.v1"
	TypeOrderRejected = "inventory.order_rejected.v1"
	TypeOrderReleased = "inventory.order_released.v1"
	TypePrefix        = "inventory."
)

// Events.
type (
	Added struct {
		ProductID  string    `json:"productId"`
		SKU        string    `json:"sku"`
		Name       string    `json:"name"`
		PriceCents int64     `json:"priceCents"`
		At         time.Time `json:"at"`
	}
	PriceChanged struct {
		ProductID  string    `json:"productId"`
		PriceCents int64     `json:"priceCents"`
		At         time.Time `json:"at"`
	}
	Restocked struct {
		ProductID string    `json:"productId"`
		Quantity  int64     `json:"quantity"`
		At        time.Time `json:"at"`
	}
	Discontinued struct {
		ProductID string    `json:"productId"`
		At        time.Time `json:"at"`
	}
	// Reserved: Quantity units are held for the order.
	Reserved Allocation
	// Released: the order's held units are given back.
	Released Allocation
	// Committed: the order's held units left the stock.
	Committed  Allocation
	SKUClaimed struct {
		SKU       string `json:"sku"`
		ProductID string `json:"productId"`
	}
	// OrderReserved: every line of the order is reserved.
	OrderReserved struct {
		OrderID    string    `json:"orderId"`
		ProductIDs []string  `json:"productIds"`
		At         time.Time `json:"at"`
	}
	// OrderRejected: the order's stock could not be reserved. It is recorded before the lines
	// reserved so far are released (by the same command, retried until they are), so nothing of
	// the order stays held.
	OrderRejected struct {
		OrderID   string    `json:"orderId"`
		ProductID string    `json:"productId"`
		Reason    string    `json:"reason"`
		At        time.Time `json:"at"`
	}
	// OrderReleased: whatever the order held is given back.
	OrderReleased struct {
		OrderID    string    `json:"orderId"`
		ProductIDs []string  `json:"productIds"`
		At         time.Time `json:"at"`
	}
)

// Allocation is what the stock events of one order's line record: Quantity units of ProductID,
// for OrderID.
type Allocation struct {
	ProductID string    `json:"productId"`
	OrderID   string    `json:"orderId"`
	Quantity  int64     `json:"quantity"`
	At        time.Time `json:"at"`
}

// Event is an inventory event: one of this package's event types, and no other.
type Event interface {
	domain.Event
	inventoryEvent()
}

func (Added) EventType() string        { return TypeAdded }
func (PriceChanged) EventType() string { return TypePriceChanged }
func (Restocked) EventType() string    { return TypeRestocked }
func (Discontinued) EventType() string { return TypeDiscontinued }
func (Reserved) EventType() string     { return TypeReserved }
func (Released) EventType() string     { return TypeReleased }
func (Committed) EventType() string    { return TypeCommitted }
func (SKUClaimed) EventType() string   { return TypeSKUClaimed }

func (OrderReserved) EventType() string { return TypeOrderReserved }
func (OrderRejected) EventType() string { return TypeOrderRejected }
func (OrderReleased) EventType() string { return TypeOrderReleased }

func (Added) inventoryEvent()         {}
func (PriceChanged) inventoryEvent()  {}
func (Restocked) inventoryEvent()     {}
func (Discontinued) inventoryEvent()  {}
func (Reserved) inventoryEvent()      {}
func (Released) inventoryEvent()      {}
func (Committed) inventoryEvent()     {}
func (SKUClaimed) inventoryEvent()    {}
func (OrderReserved) inventoryEvent() {}
func (OrderRejected) inventoryEvent() {}
func (OrderReleased) inventoryEvent() {}

func (e OrderReserved) AboutOrder() string { return e.OrderID }
func (e OrderRejected) AboutOrder() string { return e.OrderID }
func (e OrderReleased) AboutOrder() string { return e.OrderID }
func (e Reserved) AboutOrder() string      { return e.OrderID }
func (e Released) AboutOrder() string      { return e.OrderID }
func (e Committed) AboutOrder() string     { return e.OrderID }

// State of a product.
type State struct {
	ID           string
	Added        bool
	Discontinued bool
	PriceCents   int64
	OnHand       int64
	Reserved     map[string]int64 // order id → units
	// ReservedUnits is the sum of Reserved, kept by Evolve: a decision reads it in constant time
	// however many orders hold units.
	ReservedUnits int64
}

// ReservedTotal is the sum of all reservations.
func (s State) ReservedTotal() int64 { return s.ReservedUnits }

// Available is what a new reservation can take.
func (s State) Available() int64 { return s.OnHand - s.ReservedTotal() }

// Decide returns the events of command c in state s, or why it cannot be carried out. Pure.
func Decide(s State, c Command, now time.Time) ([]Event, error) {
	now = now.UTC()
	if err := Validate(c); err != nil {
		return nil, err
	}
	if a, ok := c.(AddProduct); ok {
		if s.Added {
			return nil, ErrAlreadyAdded
		}
		return []Event{Added{ProductID: a.ProductID, SKU: NormalizeSKU(a.SKU), Name: strings.TrimSpace(a.Name), PriceCents: a.PriceCents, At: now}}, nil
	}
	if !s.Added {
		return nil, ErrNotFound
	}
	switch c := c.(type) {
	case ChangePrice:
		if s.Discontinued {
			return nil, ErrDiscontinued
		}
		if c.PriceCents == s.PriceCents {
			return nil, nil
		}
		return []Event{PriceChanged{ProductID: s.ID, PriceCents: c.PriceCents, At: now}}, nil
	case Restock:
		if s.Discontinued {
			return nil, ErrDiscontinued
		}
		if s.OnHand+c.Quantity > MaxQuantity {
			return nil, domain.Rule("quantity", fmt.Sprintf("stock would exceed %d units", MaxQuantity))
		}
		return []Event{Restocked{ProductID: s.ID, Quantity: c.Quantity, At: now}}, nil
	case Discontinue:
		if s.Discontinued {
			return nil, nil
		}
		return []Event{Discontinued{ProductID: s.ID, At: now}}, nil
	case Reserve:
		if _, done := s.Reserved[c.OrderID]; done {
			return nil, nil
		}
		if s.Discontinued {
			return nil, ErrDiscontinued
		}
		if c.UnitPriceCents != s.PriceCents {
			return nil, fmt.Errorf("%w: the order says %d cents, the catalog %d", ErrPriceChanged, c.UnitPriceCents, s.PriceCents)
		}
		if c.Quantity > s.Available() {
			return nil, fmt.Errorf("%w: %d available, %d asked", ErrInsufficientStock, s.Available(), c.Quantity)
		}
		return []Event{Reserved{ProductID: s.ID, OrderID: c.OrderID, Quantity: c.Quantity, At: now}}, nil
	case Release:
		q, held := s.Reserved[c.OrderID]
		if !held {
			return nil, nil
		}
		return []Event{Released{ProductID: s.ID, OrderID: c.OrderID, Quantity: q, At: now}}, nil
	case Commit:
		q, held := s.Reserved[c.OrderID]
		if !held {
			return nil, ErrNoReservation
		}
		return []Event{Committed{ProductID: s.ID, OrderID: c.OrderID, Quantity: q, At: now}}, nil
	}
	return nil, fmt.Errorf("inventory: unknown command %T", c)
}

// Evolve returns the state after e. It updates s's reservation map in place, so that an event
// costs the same however many orders hold units (a hot product holds thousands): the state given
// must not be used again, only the one returned (a fold does exactly that).
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Added:
		s.ID, s.Added, s.PriceCents = e.ProductID, true, e.PriceCents
	case PriceChanged:
		s.PriceCents = e.PriceCents
	case Restocked:
		s.OnHand += e.Quantity
	case Discontinued:
		s.Discontinued = true
	case Reserved:
		s = s.reserve(e.OrderID, e.Quantity)
	case Released:
		s = s.reserve(e.OrderID, 0)
	case Committed:
		s = s.reserve(e.OrderID, 0)
		s.OnHand -= e.Quantity
	}
	return s
}

// reserve sets order's reservation (0 removes it), in place.
func (s State) reserve(order string, q int64) State {
	if s.Reserved == nil {
		s.Reserved = map[string]int64{}
	}
	s.ReservedUnits += q - s.Reserved[order]
	if q == 0 {
		delete(s.Reserved, order)
	} else {
		s.Reserved[order] = q
	}
	return s
}

// Validate checks a command's fields, whatever the state: identifiers and text are valid UTF-8
// without control characters and within their lengths, quantities and prices within bounds. Decide
// calls it; command services call it before they load a stream.
func Validate(c Command) error {
	switch c := c.(type) {
	case AddProduct:
		return validateAdd(c)
	case ChangePrice:
		return domain.FirstError(domain.CheckID("productId", c.ProductID), validatePrice(c.PriceCents))
	case Restock:
		return domain.FirstError(domain.CheckID("productId", c.ProductID), validateQuantity(c.Quantity))
	case Discontinue:
		return domain.CheckID("productId", c.ProductID)
	case Reserve:
		return domain.FirstError(domain.CheckID("productId", c.ProductID), domain.CheckID("orderId", c.OrderID), validateQuantity(c.Quantity),
			domain.CheckCents("unitPriceCents", c.UnitPriceCents, false))
	case Release:
		return domain.FirstError(domain.CheckID("productId", c.ProductID), domain.CheckID("orderId", c.OrderID))
	case Commit:
		return domain.FirstError(domain.CheckID("productId", c.ProductID), domain.CheckID("orderId", c.OrderID))
	}
	return nil
}

func validateAdd(a AddProduct) error {
	if err := domain.CheckID("productId", a.ProductID); err != nil {
		return err
	}
	sku := strings.TrimSpace(a.SKU)
	if sku == "" || utf8.RuneCountInString(sku) > MaxSKULength || strings.ContainsFunc(sku, unicode.IsSpace) || domain.CheckID("sku", sku) != nil {
		return domain.Rule("sku", fmt.Sprintf("is required: up to %d ASCII letters, digits and %s, beginning with a letter or a digit", MaxSKULength, domain.IDSeparators))
	}
	if err := domain.CheckText("name", a.Name, MaxNameLength, true); err != nil {
		return err
	}
	return validatePrice(a.PriceCents)
}

func validatePrice(p int64) error {
	if p < 0 || p > MaxPrice {
		return domain.Rule("priceCents", fmt.Sprintf("must be between 0 and %d", int64(MaxPrice)))
	}
	return nil
}

func validateQuantity(q int64) error {
	if q <= 0 || q > MaxQuantity {
		return domain.Rule("quantity", fmt.Sprintf("must be between 1 and %d", MaxQuantity))
	}
	return nil
}

// Codec encodes and decodes the inventory events.
var Codec = domain.NewCodec("inventory",
	domain.Of[Added, Event](),
	domain.Of[PriceChanged, Event](),
	domain.Of[Restocked, Event](),
	domain.Of[Discontinued, Event](),
	domain.Of[Reserved, Event](),
	domain.Of[Released, Event](),
	domain.Of[Committed, Event](),
	domain.Of[SKUClaimed, Event](),
	domain.Of[OrderReserved, Event](),
	domain.Of[OrderRejected, Event](),
	domain.Of[OrderReleased, Event](),
)
