// Package payment owns payments of orders: authorization (approved or declined by the card
// provider: a decline is an event, not an error), capture, void and refunds.
package payment

import (
	"fmt"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// Errors of the payment lifecycle.
var (
	ErrNotFound          = fmt.Errorf("payment %w", domain.ErrNotFound)
	ErrAlreadyAuthorized = fmt.Errorf("payment already authorized or declined: %w", domain.ErrConflict)
	ErrNotAuthorized     = fmt.Errorf("payment is not authorized: %w", domain.ErrConflict)
	ErrNotCaptured       = fmt.Errorf("payment is not captured: %w", domain.ErrConflict)
	ErrRefundTooLarge    = fmt.Errorf("refund exceeds what was captured and not yet refunded: %w", domain.ErrConflict)
)

// Stream is the event stream of payment id.
func Stream(id string) string { return "payment-" + id }

// Status of a payment.
type Status string

// Statuses.
const (
	StatusNone       Status = ""
	StatusAuthorized Status = "AUTHORIZED"
	StatusDeclined   Status = "DECLINED"
	StatusCaptured   Status = "CAPTURED"
	StatusVoided     Status = "VOIDED"
	StatusRefunded   Status = "REFUNDED" // fully refunded
)

// Commands. Authorize carries the provider's answer: deciding is pure, calling the provider is
// the command service's job.
type (
	Authorize struct {
		PaymentID, OrderID string
		AmountCents        int64
		Approved           bool
		DeclineReason      string
		ProviderRef        string
	}
	Capture struct{ PaymentID string }
	Void    struct{ PaymentID string }
	Refund  struct {
		PaymentID   string
		AmountCents int64
	}
)

// Command is one of the commands above.
type Command interface{ isCommand() }

func (Authorize) isCommand() {}
func (Capture) isCommand()   {}
func (Void) isCommand()      {}
func (Refund) isCommand()    {}

// Event type names: a stored contract.
const (
	TypeAuthorized = "payment.authorized.v1"
	TypeDeclined   = "payment.declined.v1"
	TypeCaptured   = "payment.captured.v1"
	TypeVoided     = "payment.voided.v1"
	TypeRefunded   = "payment.refunded.v1"
	TypePrefix     = "payment."
)

// Events.
type (
	Authorized struct {
		PaymentID   string    `json:"paymentId"`
		OrderID     string    `json:"orderId"`
		AmountCents int64     `json:"amountCents"`
		ProviderRef string    `json:"providerRef,omitempty"`
		At          time.Time `json:"at"`
	}
	Declined struct {
		PaymentID   string    `json:"paymentId"`
		OrderID     string    `json:"orderId"`
		AmountCents int64     `json:"amountCents"`
		Reason      string    `json:"reason"`
		At          time.Time `json:"at"`
	}
	// Captured: the authorized amount was taken.
	Captured Transfer
	Voided   struct {
		PaymentID string    `json:"paymentId"`
		OrderID   string    `json:"orderId"`
		At        time.Time `json:"at"`
	}
	// Refunded: AmountCents of what was captured went back.
	Refunded Transfer
)

// Transfer is what the events that move money record: AmountCents of OrderID's payment.
type Transfer struct {
	PaymentID   string    `json:"paymentId"`
	OrderID     string    `json:"orderId"`
	AmountCents int64     `json:"amountCents"`
	At          time.Time `json:"at"`
}

// Event is a payment event: one of this package's event types, and no other.
type Event interface {
	domain.Event
	paymentEvent()
}

func (Authorized) EventType() string { return TypeAuthorized }
func (Declined) EventType() string   { return TypeDeclined }
func (Captured) EventType() string   { return TypeCaptured }
func (Voided) EventType() string     { return TypeVoided }
func (Refunded) EventType() string   { return TypeRefunded }

func (Authorized) paymentEvent() {}
func (Declined) paymentEvent()   {}
func (Captured) paymentEvent()   {}
func (Voided) paymentEvent()     {}
func (Refunded) paymentEvent()   {}

func (e Authorized) AboutOrder() string { return e.OrderID }
func (e Declined) AboutOrder() string   { return e.OrderID }
func (e Voided) AboutOrder() string     { return e.OrderID }
func (e Captured) AboutOrder() string   { return e.OrderID }
func (e Refunded) AboutOrder() string   { return e.OrderID }

// State of a payment.
type State struct {
	ID, OrderID   string
	Status        Status
	AmountCents   int64
	CapturedCents int64
	RefundedCents int64
}

// Validate checks a command's identifiers (valid UTF-8, no control characters, within their
// length), whatever the state. Decide calls it; command services call it before they load a stream.
// The provider's decline reason and reference are the provider's words, not checked here.
func Validate(c Command) error {
	switch c := c.(type) {
	case Authorize:
		return domain.FirstError(domain.CheckID("paymentId", c.PaymentID), domain.CheckID("orderId", c.OrderID), domain.CheckCents("amountCents", c.AmountCents, true))
	case Capture:
		return domain.CheckID("paymentId", c.PaymentID)
	case Void:
		return domain.CheckID("paymentId", c.PaymentID)
	case Refund:
		return domain.FirstError(domain.CheckID("paymentId", c.PaymentID), domain.CheckCents("amountCents", c.AmountCents, true))
	}
	return nil
}

// Decide returns the events of command c in state s, or why it cannot be carried out. Pure.
func Decide(s State, c Command, now time.Time) ([]Event, error) {
	now = now.UTC()
	if err := Validate(c); err != nil {
		return nil, err
	}
	switch c := c.(type) {
	case Authorize:
		switch {
		case c.AmountCents <= 0:
			return nil, domain.Rule("amountCents", "must be positive")
		case s.Status != StatusNone:
			return nil, ErrAlreadyAuthorized
		case !c.Approved:
			return []Event{Declined{PaymentID: c.PaymentID, OrderID: c.OrderID, AmountCents: c.AmountCents, Reason: domain.Printable(c.DeclineReason, 500), At: now}}, nil
		}
		return []Event{Authorized{PaymentID: c.PaymentID, OrderID: c.OrderID, AmountCents: c.AmountCents, ProviderRef: domain.Printable(c.ProviderRef, 200), At: now}}, nil
	case Capture:
		switch s.Status {
		case StatusNone:
			return nil, ErrNotFound
		case StatusCaptured, StatusRefunded:
			return nil, nil // captured already: a repeated capture changes nothing
		case StatusAuthorized:
			return []Event{Captured{PaymentID: s.ID, OrderID: s.OrderID, AmountCents: s.AmountCents, At: now}}, nil
		}
		return nil, ErrNotAuthorized
	case Void:
		switch s.Status {
		case StatusNone:
			return nil, ErrNotFound
		case StatusVoided, StatusDeclined:
			return nil, nil // nothing is held
		case StatusAuthorized:
			return []Event{Voided{PaymentID: s.ID, OrderID: s.OrderID, At: now}}, nil
		}
		return nil, ErrNotAuthorized // captured: refund instead
	case Refund:
		switch {
		case c.AmountCents <= 0:
			return nil, domain.Rule("amountCents", "must be positive")
		case s.Status == StatusNone:
			return nil, ErrNotFound
		case s.Status != StatusCaptured:
			return nil, ErrNotCaptured
		case c.AmountCents > s.CapturedCents-s.RefundedCents:
			return nil, fmt.Errorf("%w: %d refundable", ErrRefundTooLarge, s.CapturedCents-s.RefundedCents)
		}
		return []Event{Refunded{PaymentID: s.ID, OrderID: s.OrderID, AmountCents: c.AmountCents, At: now}}, nil
	}
	return nil, fmt.Errorf("payment: unknown command %T", c)
}

// Evolve returns the state after e.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Authorized:
		s.ID, s.OrderID, s.AmountCents, s.Status = e.PaymentID, e.OrderID, e.AmountCents, StatusAuthorized
	case Declined:
		s.ID, s.OrderID, s.AmountCents, s.Status = e.PaymentID, e.OrderID, e.AmountCents, StatusDeclined
	case Captured:
		s.CapturedCents, s.Status = e.AmountCents, StatusCaptured
	case Voided:
		s.Status = StatusVoided
	case Refunded:
		s.RefundedCents += e.AmountCents
		if s.RefundedCents == s.CapturedCents {
			s.Status = StatusRefunded
		}
	}
	return s
}

// Codec encodes and decodes the payment events.
var Codec = domain.NewCodec("payment",
	domain.Of[Authorized, Event](),
	domain.Of[Declined, Event](),
	domain.Of[Captured, Event](),
	domain.Of[Voided, Event](),
	domain.Of[Refunded, Event](),
)
