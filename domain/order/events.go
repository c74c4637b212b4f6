package order

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event type names are a stored contract: never rename one; a changed payload gets a new
// version and an upcaster.
const (
	TypePlaced    = "order.placed.v1"
	TypeCancelled = "order.cancelled.v1"
)

// TypePrefix selects every order event in $all.
const TypePrefix = "order."

// Event is an order event.
type Event interface{ EventType() string }

// Placed: a customer placed an order.
type Placed struct {
	OrderID    string    `json:"orderId"`
	CustomerID string    `json:"customerId"`
	Lines      []Line    `json:"lines"`
	TotalCents int64     `json:"totalCents"`
	At         time.Time `json:"at"`
}

// Cancelled: the order was cancelled; Reason may be empty.
type Cancelled struct {
	OrderID string    `json:"orderId"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

func (Placed) EventType() string    { return TypePlaced }
func (Cancelled) EventType() string { return TypeCancelled }

// Encode returns e's type name and JSON payload.
func Encode(e Event) (string, []byte, error) {
	data, err := json.Marshal(e)
	return e.EventType(), data, err
}

// Decode parses a stored order event. An unknown type is an error: a reader of order streams
// must know every order event.
func Decode(typ string, data []byte) (Event, error) {
	var (
		e   Event
		err error
	)
	switch typ {
	case TypePlaced:
		var p Placed
		err = json.Unmarshal(data, &p)
		e = p
	case TypeCancelled:
		var c Cancelled
		err = json.Unmarshal(data, &c)
		e = c
	default:
		return nil, fmt.Errorf("order: unknown event type %q", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("order: decode %s: %w", typ, err)
	}
	return e, nil
}
