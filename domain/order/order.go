// Package order owns the order aggregate: its commands, events, state and the pure rules that
// decide which events a command produces.
package order

import (
	"fmt"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// Limits of one order.
const (
	MaxLines    = 100
	MaxQuantity = 10_000
	MaxIDLength = domain.MaxIDLength
	// MaxReasonLength bounds a cancellation's reason, in characters.
	MaxReasonLength = 500
)

// Errors of the order lifecycle. Each wraps a domain error kind.
var (
	ErrNotFound = fmt.Errorf("order %w", domain.ErrNotFound)
	// ErrAlreadyPlaced: the order id is taken. It says no more (not whose, nor in what state): a
	// customer who sends another customer's order id learns nothing of that order.
	ErrAlreadyPlaced       = fmt.Errorf("order id already used: %w", domain.ErrConflict)
	ErrCustomerDeactivated = fmt.Errorf("customer is deactivated and cannot order: %w", domain.ErrConflict)
	ErrCustomerErased      = fmt.Errorf("customer is erased and cannot order: %w", domain.ErrConflict)
	ErrAlreadyCancelled    = fmt.Errorf("order already cancelled: %w", domain.ErrConflict)
	ErrAlreadyConfirmed    = fmt.Errorf("order already confirmed: %w", domain.ErrConflict)
	ErrNotConfirmed        = fmt.Errorf("order not confirmed yet: %w", domain.ErrConflict)
	ErrAlreadyPaid         = fmt.Errorf("order already paid: %w", domain.ErrConflict)
	ErrAlreadyShipped      = fmt.Errorf("order already shipped: %w", domain.ErrConflict)
	ErrNotShipped          = fmt.Errorf("order not shipped yet: %w", domain.ErrConflict)
	ErrAlreadyDelivered    = fmt.Errorf("order already delivered: %w", domain.ErrConflict)
)

// Stream is the event stream of order id.
func Stream(id string) string { return "order-" + id }

// StreamPrefix selects every order stream in $all.
const StreamPrefix = "order-"

// Line is one product of an order. Money is in integer cents.
type Line struct {
	ProductID      string `json:"productId"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
}

// Status of an order.
type Status string

// Statuses. StatusNone is an order that has not been placed.
const (
	StatusNone      Status = ""
	StatusPlaced    Status = "PLACED"
	StatusConfirmed Status = "CONFIRMED"
	StatusPaid      Status = "PAID"
	StatusShipped   Status = "SHIPPED"
	StatusDelivered Status = "DELIVERED"
	StatusCancelled Status = "CANCELLED"
)

// Command is Place, Confirm, MarkPaid, Ship, Deliver or Cancel.
type Command interface{ isCommand() }

// Place places a new order. The price of a line is the catalog's: Catalog holds the current price
// of each product the catalog knows, and a line that asks a price (UnitPriceCents set) must ask
// that one. A line of a product the catalog does not know keeps the price it asks (0 if none): no
// such order is ever confirmed, since its stock reservation checks the price again and refuses a
// product it does not know. Account is what the customer service said of CustomerID.
type Place struct {
	OrderID    string
	CustomerID string
	Lines      []PlaceLine
	Catalog    map[string]int64
	Account    Account
}

// PlaceLine is a line as the customer asks for it.
type PlaceLine struct {
	ProductID string
	Quantity  int64
	// UnitPriceCents, when set, is the price per unit the customer expects to pay.
	UnitPriceCents *int64
}

// Account is a customer's account as an order is placed.
type Account int

// Accounts.
const (
	// AccountActive: registered and active.
	AccountActive Account = iota
	// AccountGuest: no account, and staff places the order for the customer (a phone order).
	AccountGuest
	// AccountNone: no account, and the customer places the order: it is cancelled as it is placed.
	AccountNone
	// AccountDeactivated and AccountErased: the account is closed; the customer cannot order.
	AccountDeactivated
	AccountErased
)

// Cancel cancels a placed order.
type Cancel struct {
	OrderID string
	Reason  string
	// ByCustomer, when set, is the customer asking: another customer's order is not found to it.
	ByCustomer string
}

// Confirm confirms a placed order (stock reserved, payment authorized).
type Confirm struct{ OrderID string }

// MarkPaid records that a confirmed order's payment was captured.
type MarkPaid struct{ OrderID string }

// Ship records that a confirmed or paid order left the warehouse.
type Ship struct{ OrderID string }

// Deliver records that a shipped order arrived.
type Deliver struct{ OrderID string }

func (Place) isCommand()    {}
func (Cancel) isCommand()   {}
func (Confirm) isCommand()  {}
func (MarkPaid) isCommand() {}
func (Ship) isCommand()     {}
func (Deliver) isCommand()  {}

// transitions is the lifecycle: for each command after Place, the statuses it leaves from, and
// the named error each other status answers with.
var transitions = map[string]struct {
	from    []Status
	refused map[Status]error
}{
	"confirm": {[]Status{StatusPlaced}, map[Status]error{
		StatusConfirmed: ErrAlreadyConfirmed, StatusPaid: ErrAlreadyConfirmed, StatusShipped: ErrAlreadyShipped,
		StatusDelivered: ErrAlreadyDelivered, StatusCancelled: ErrAlreadyCancelled}},
	"markPaid": {[]Status{StatusConfirmed}, map[Status]error{
		StatusPlaced: ErrNotConfirmed, StatusPaid: ErrAlreadyPaid, StatusShipped: ErrAlreadyShipped,
		StatusDelivered: ErrAlreadyDelivered, StatusCancelled: ErrAlreadyCancelled}},
	"ship": {[]Status{StatusConfirmed, StatusPaid}, map[Status]error{
		StatusPlaced: ErrNotConfirmed, StatusShipped: ErrAlreadyShipped, StatusDelivered: ErrAlreadyDelivered,
		StatusCancelled: ErrAlreadyCancelled}},
	"deliver": {[]Status{StatusShipped}, map[Status]error{
		StatusPlaced: ErrNotShipped, StatusConfirmed: ErrNotShipped, StatusPaid: ErrNotShipped,
		StatusDelivered: ErrAlreadyDelivered, StatusCancelled: ErrAlreadyCancelled}},
	"cancel": {[]Status{StatusPlaced, StatusConfirmed, StatusPaid}, map[Status]error{
		StatusShipped: ErrAlreadyShipped, StatusDelivered: ErrAlreadyDelivered, StatusCancelled: ErrAlreadyCancelled}},
}

// allowed returns nil if command name may leave status s, else its named error.
func allowed(name string, s Status) error {
	if s == StatusNone {
		return ErrNotFound
	}
	t := transitions[name]
	for _, f := range t.from {
		if f == s {
			return nil
		}
	}
	if err, ok := t.refused[s]; ok {
		return err
	}
	return fmt.Errorf("order: %s from %s: %w", name, s, domain.ErrConflict)
}

// reach returns milestone e if command name may leave state s.
func reach(s State, name string, e Event) ([]Event, error) {
	if err := allowed(name, s.Status); err != nil {
		return nil, err
	}
	return []Event{e}, nil
}

// State is what Decide needs to know of an order, folded from its events by Evolve.
type State struct {
	ID         string
	CustomerID string
	Status     Status
	TotalCents int64
	Lines      []Line
}

// Decide returns the events a command produces in state s, or why it cannot be carried out.
// It is pure: the same state, command and time always give the same answer.
func Decide(s State, c Command, now time.Time) ([]Event, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	switch c := c.(type) {
	case Place:
		return place(s, c, now.UTC())
	case Cancel:
		if c.ByCustomer != "" && s.Status != StatusNone && s.CustomerID != c.ByCustomer {
			return nil, ErrNotFound
		}
		return reach(s, "cancel", Cancelled{OrderID: s.ID, Reason: c.Reason, At: now.UTC()})
	case Confirm:
		return reach(s, "confirm", Confirmed{OrderID: s.ID, At: now.UTC()})
	case MarkPaid:
		return reach(s, "markPaid", Paid{OrderID: s.ID, At: now.UTC()})
	case Ship:
		return reach(s, "ship", Shipped{OrderID: s.ID, At: now.UTC()})
	case Deliver:
		return reach(s, "deliver", Delivered{OrderID: s.ID, At: now.UTC()})
	}
	return nil, fmt.Errorf("order: unknown command %T", c)
}

// place decides Place: the order at the catalog's prices, refused for a closed account, and
// cancelled in the same breath for a customer without one.
func place(s State, c Place, now time.Time) ([]Event, error) {
	if s.Status != StatusNone {
		return nil, ErrAlreadyPlaced
	}
	switch c.Account {
	case AccountDeactivated:
		return nil, fmt.Errorf("customer %s: %w", c.CustomerID, ErrCustomerDeactivated)
	case AccountErased:
		return nil, fmt.Errorf("customer %s: %w", c.CustomerID, ErrCustomerErased)
	}
	lines := make([]Line, len(c.Lines))
	var total int64
	for i, l := range c.Lines {
		price, known := c.Catalog[l.ProductID]
		switch {
		case known && l.UnitPriceCents != nil && *l.UnitPriceCents != price:
			return nil, &PriceError{Field: fmt.Sprintf("lines[%d].unitPriceCents", i), ProductID: l.ProductID, PriceCents: price, AskedCents: *l.UnitPriceCents}
		case !known && l.UnitPriceCents != nil:
			price = *l.UnitPriceCents
		}
		lines[i] = Line{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: price}
		// Quantity ≤ MaxQuantity and price ≤ MaxCents: the product stays within int64.
		if line := l.Quantity * price; line > domain.MaxCents || total+line > domain.MaxCents {
			return nil, domain.Rule(fmt.Sprintf("lines[%d].quantity", i), fmt.Sprintf("the order's total must be at most %d cents", int64(domain.MaxCents)))
		} else {
			total += line
		}
	}
	placed := Placed{OrderID: c.OrderID, CustomerID: c.CustomerID, Lines: lines, TotalCents: total, At: now}
	if c.Account == AccountNone {
		placed.Unregistered = true
		return []Event{placed, Cancelled{OrderID: c.OrderID, Reason: "customer " + c.CustomerID + " is not registered", At: now}}, nil
	}
	return []Event{placed}, nil
}

// PriceError: a line asks another price than the catalog's. It is a conflict with the catalog's
// state, and says the current price.
type PriceError struct {
	Field                  string
	ProductID              string
	PriceCents, AskedCents int64
}

func (e *PriceError) Error() string {
	return fmt.Sprintf("%s: product %s costs %d cents, not %d", e.Field, e.ProductID, e.PriceCents, e.AskedCents)
}

// Is makes a PriceError a domain.ErrConflict.
func (e *PriceError) Is(target error) bool { return target == domain.ErrConflict }

// Evolve returns the state after event e.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Placed:
		s.ID, s.CustomerID, s.Status, s.TotalCents, s.Lines = e.OrderID, e.CustomerID, StatusPlaced, e.TotalCents, e.Lines
	case Cancelled:
		s.Status = StatusCancelled
	case Confirmed:
		s.Status = StatusConfirmed
	case Paid:
		s.Status = StatusPaid
	case Shipped:
		s.Status = StatusShipped
	case Delivered:
		s.Status = StatusDelivered
	}
	return s
}

// Total is the sum of quantity × unit price over lines. Placed lines keep it within MaxCents.
func Total(lines []Line) int64 {
	var t int64
	for _, l := range lines {
		t += l.Quantity * l.UnitPriceCents
	}
	return t
}

// Validate checks a command's fields, whatever the state: identifiers and text are valid UTF-8
// without control characters and within their lengths, quantities and prices within bounds. Decide
// calls it; command services call it before they load a stream, so that nothing invalid reaches the
// event store.
func Validate(c Command) error {
	switch c := c.(type) {
	case Place:
		return validatePlace(c)
	case Cancel:
		err := domain.FirstError(domain.CheckID("orderId", c.OrderID), domain.CheckText("reason", c.Reason, MaxReasonLength, false))
		if err == nil && c.ByCustomer != "" {
			err = domain.CheckID("byCustomer", c.ByCustomer)
		}
		return err
	case Confirm:
		return domain.CheckID("orderId", c.OrderID)
	case MarkPaid:
		return domain.CheckID("orderId", c.OrderID)
	case Ship:
		return domain.CheckID("orderId", c.OrderID)
	case Deliver:
		return domain.CheckID("orderId", c.OrderID)
	}
	return nil
}

func validatePlace(c Place) error {
	if err := domain.FirstError(domain.CheckID("orderId", c.OrderID), domain.CheckID("customerId", c.CustomerID)); err != nil {
		return err
	}
	switch {
	case len(c.Lines) == 0:
		return domain.Rule("lines", "an order needs at least one line")
	case len(c.Lines) > MaxLines:
		return domain.Rule("lines", fmt.Sprintf("an order has at most %d lines", MaxLines))
	}
	for i, l := range c.Lines {
		field := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
		if err := domain.CheckID(field("productId"), l.ProductID); err != nil {
			return err
		}
		switch {
		case l.Quantity <= 0:
			return domain.Rule(field("quantity"), "must be positive")
		case l.Quantity > MaxQuantity:
			return domain.Rule(field("quantity"), fmt.Sprintf("must be at most %d", MaxQuantity))
		}
		if l.UnitPriceCents != nil {
			if err := domain.CheckCents(field("unitPriceCents"), *l.UnitPriceCents, false); err != nil {
				return err
			}
		}
	}
	return nil
}
