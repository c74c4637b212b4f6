package order

import (
	"time"

	"github.com/orderflow/orderflow/domain"
)

// Event type names are a stored contract: never rename one; a changed payload gets a new
// version and an upcaster.
const (
	TypePlaced    = "order.placed.v1"
	TypeCancelled = "order.cancelled.v1"
	TypeConfirmed = "order.confirmed.v1"
	TypePaid      = "order.paid.v1"
	TypeShipped   = "order.shipped.v1"
	TypeDelivered = "order.delivered.v1"
)

// TypePrefix selects every order event in $all.
const TypePrefix = "order."

// Event is an order event: one of this package's event types, and no other; each is about one
// order.
type Event interface {
	domain.Event
	domain.AboutOrder
	orderEvent()
}

// Placed: a customer placed an order.
type Placed struct {
	OrderID    string    `json:"orderId"`
	CustomerID string    `json:"customerId"`
	Lines      []Line    `json:"lines"`
	TotalCents int64     `json:"totalCents"`
	At         time.Time `json:"at"`
	// Unregistered: the customer placed it without an account. A Cancelled follows in the same
	// append, and no fulfillment starts.
	Unregistered bool `json:"unregistered,omitempty"`
}

// Cancelled: the order was cancelled; Reason may be empty.
type Cancelled struct {
	OrderID string    `json:"orderId"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Milestone is what the lifecycle events after Placed record: the order reached a status.
type Milestone struct {
	OrderID string    `json:"orderId"`
	At      time.Time `json:"at"`
}

// The lifecycle events.
type (
	// Confirmed: stock is reserved and payment authorized.
	Confirmed Milestone
	// Paid: the payment was captured.
	Paid Milestone
	// Shipped: the order left the warehouse.
	Shipped Milestone
	// Delivered: the order arrived.
	Delivered Milestone
)

func (Placed) EventType() string    { return TypePlaced }
func (Cancelled) EventType() string { return TypeCancelled }
func (Confirmed) EventType() string { return TypeConfirmed }
func (Paid) EventType() string      { return TypePaid }
func (Shipped) EventType() string   { return TypeShipped }
func (Delivered) EventType() string { return TypeDelivered }

func (Placed) orderEvent()    {}
func (Cancelled) orderEvent() {}
func (Confirmed) orderEvent() {}
func (Paid) orderEvent()      {}
func (Shipped) orderEvent()   {}
func (Delivered) orderEvent() {}

func (e Placed) AboutOrder() string    { return e.OrderID }
func (e Cancelled) AboutOrder() string { return e.OrderID }
func (e Confirmed) AboutOrder() string { return e.OrderID }
func (e Paid) AboutOrder() string      { return e.OrderID }
func (e Shipped) AboutOrder() string   { return e.OrderID }
func (e Delivered) AboutOrder() string { return e.OrderID }

// Codec encodes and decodes the order events.
var Codec = domain.NewCodec("order",
	domain.Of[Placed, Event](),
	domain.Of[Cancelled, Event](),
	domain.Of[Confirmed, Event](),
	domain.Of[Paid, Event](),
	domain.Of[Shipped, Event](),
	domain.Of[Delivered, Event](),
)
