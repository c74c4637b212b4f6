// Package fulfillment is the order fulfillment process manager: placed → reserve stock →
// authorize payment → confirm, or compensate (release stock, void the authorization, cancel the
// order) when stock is short, the card is declined, payment does not come in time, or the
// customer cancels.
//
// Durability: the saga runs as a projection (package projections). For each batch of events, its
// state rows, the commands it decides to send (an outbox table) and its checkpoint commit in one
// PostgreSQL transaction; a dispatcher then queues the outbox on NATS JetStream (package jobs),
// where the command services consume it. Command ids derive from saga id + step, so a command
// sent twice (a crash between queueing and deleting the outbox row, a duplicate event) appends
// nothing twice. Deadlines are a column of the state row: they survive restarts, are claimed with
// FOR UPDATE SKIP LOCKED, and are checked against the state again when they fire.
package fulfillment

import (
	"encoding/json"
	"time"

	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/internal/wire"
)

// Steps of a fulfillment.
const (
	StepReserving   = "RESERVING"
	StepAuthorizing = "AUTHORIZING"
	StepConfirming  = "CONFIRMING"
	StepConfirmed   = "CONFIRMED"
	StepCancelled   = "CANCELLED"
)

// Outcomes of a finished fulfillment.
const (
	OutcomeConfirmed   = "confirmed"
	OutcomeCompensated = "compensated"
	OutcomeTimedOut    = "timed_out"
)

// State is one order's fulfillment.
type State struct {
	OrderID           string           `json:"orderId"`
	CustomerID        string           `json:"customerId"`
	TotalCents        int64            `json:"totalCents"`
	Lines             []wire.OrderLine `json:"lines"`
	Step              string           `json:"step"`
	Outcome           string           `json:"outcome,omitempty"`
	StockHeld         bool             `json:"stockHeld"`
	PaymentAuthorized bool             `json:"paymentAuthorized"`
	Attempts          int64            `json:"attempts"` // commands sent
	Deadline          *time.Time       `json:"deadline,omitempty"`
	LastError         string           `json:"lastError,omitempty"`
	StartedAt         time.Time        `json:"startedAt"`
	UpdatedAt         time.Time        `json:"updatedAt"`
}

// Command is what the saga sends: a queued command for a command service's endpoint.
type Command struct {
	ID       string
	Endpoint string
	Payload  any
}

// DeadlinePassed is the event of a deadline firing.
type DeadlinePassed struct{ At time.Time }

// Options of the saga's rules.
type Options struct {
	// PaymentTimeout is how long the saga waits for an authorization once stock is held.
	PaymentTimeout time.Duration
}

func (s *State) send(step, endpoint string, payload func(wire.CommandMeta) any) Command {
	s.Attempts++
	m := wire.CommandMeta{CommandID: "fulfillment:" + s.OrderID + ":" + step, CorrelationID: s.OrderID}
	return Command{ID: m.CommandID, Endpoint: endpoint, Payload: payload(m)}
}

func (s *State) productIDs() []string {
	ids := make([]string, 0, len(s.Lines))
	seen := map[string]bool{}
	for _, l := range s.Lines {
		if !seen[l.ProductID] {
			seen[l.ProductID] = true
			ids = append(ids, l.ProductID)
		}
	}
	return ids
}

func (s *State) release() Command {
	s.StockHeld = false
	return s.send("release", wire.EndpointReleaseStock, func(m wire.CommandMeta) any {
		return wire.OrderStock{Meta: m, OrderID: s.OrderID, ProductIDs: s.productIDs()}
	})
}

func (s *State) void() Command {
	return s.send("void", wire.EndpointVoidPayment, func(m wire.CommandMeta) any { return wire.IDCommand{Meta: m, ID: s.OrderID} })
}

func (s *State) cancel(reason string) Command {
	return s.send("cancel", wire.EndpointCancelOrder, func(m wire.CommandMeta) any {
		return wire.CancelOrder{Meta: m, OrderID: s.OrderID, Reason: reason}
	})
}

func (s *State) confirm() Command {
	s.Step, s.Deadline = StepConfirming, nil
	return s.send("confirm", wire.EndpointConfirmOrder, func(m wire.CommandMeta) any { return wire.IDCommand{Meta: m, ID: s.OrderID} })
}

func (s *State) end(outcome string) {
	s.Step, s.Outcome, s.Deadline = StepCancelled, outcome, nil
}

// React returns the saga's state after event e (a domain event of order, inventory or payment, or
// DeadlinePassed) and the commands to send. s is nil for an order the saga has not seen. It is
// pure; duplicates, late events and events of unknown orders change nothing and send nothing.
func React(s *State, e any, now time.Time, opts Options) (*State, []Command) {
	now = now.UTC()
	if p, ok := e.(order.Placed); ok {
		if s != nil {
			return s, nil // a duplicate
		}
		lines := make([]wire.OrderLine, len(p.Lines))
		for i, l := range p.Lines {
			lines[i] = wire.OrderLine(l)
		}
		s = &State{OrderID: p.OrderID, CustomerID: p.CustomerID, TotalCents: p.TotalCents, Lines: lines, Step: StepReserving, StartedAt: now, UpdatedAt: now}
		c := s.send("reserve", wire.EndpointReserveStock, func(m wire.CommandMeta) any {
			return wire.ReserveStock{Meta: m, OrderID: s.OrderID, Lines: s.Lines}
		})
		return s, []Command{c}
	}
	if s == nil {
		return nil, nil // an order placed before the saga existed, or another saga's
	}
	next := *s
	next.Lines = s.Lines
	cmds := react(&next, e, now, opts)
	if cmds == nil && next.Step == s.Step && next.StockHeld == s.StockHeld && next.PaymentAuthorized == s.PaymentAuthorized {
		return s, nil
	}
	next.UpdatedAt = now
	return &next, cmds
}

func react(s *State, e any, now time.Time, opts Options) []Command {
	switch e := e.(type) {
	case inventory.OrderReserved:
		switch s.Step {
		case StepReserving:
			s.StockHeld = true
			if s.TotalCents == 0 {
				return []Command{s.confirm()}
			}
			deadline := now.Add(opts.PaymentTimeout)
			s.Step, s.Deadline = StepAuthorizing, &deadline
			return []Command{s.send("authorize", wire.EndpointAuthorizePayment, func(m wire.CommandMeta) any {
				return wire.AuthorizePayment{Meta: m, PaymentID: s.OrderID, OrderID: s.OrderID, AmountCents: s.TotalCents}
			})}
		case StepCancelled:
			if !s.StockHeld && s.Outcome != "" { // the reservation answer raced a cancellation
				s.StockHeld = true
				return []Command{s.release()}
			}
		}
	case inventory.OrderRejected:
		if s.Step == StepReserving {
			s.LastError = "out of stock: " + e.Reason
			s.end(OutcomeCompensated)
			return []Command{s.cancel("out of stock")}
		}
	case inventory.OrderReleased:
		s.StockHeld = false
	case payment.Authorized:
		switch s.Step {
		case StepAuthorizing:
			s.PaymentAuthorized = true
			return []Command{s.confirm()}
		case StepCancelled:
			s.PaymentAuthorized = true // too late: give it back
			return []Command{s.void()}
		}
	case payment.Declined:
		if s.Step == StepAuthorizing {
			s.LastError = "payment declined: " + e.Reason
			s.end(OutcomeCompensated)
			return []Command{s.release(), s.cancel("payment declined")}
		}
	case payment.Voided:
		s.PaymentAuthorized = false
	case order.Confirmed:
		if s.Step == StepConfirming {
			s.Step, s.Outcome = StepConfirmed, OutcomeConfirmed
		}
	case order.Cancelled:
		var cmds []Command
		switch s.Step {
		case StepCancelled:
			return nil // the saga's own cancellation, or a duplicate
		case StepReserving:
			// The reservation may still succeed: OrderReserved will release it.
		default:
			if s.StockHeld {
				cmds = append(cmds, s.release())
			}
			if s.PaymentAuthorized {
				cmds = append(cmds, s.void())
			}
		}
		s.LastError = "cancelled by the customer"
		if e.Reason != "" {
			s.LastError += ": " + e.Reason
		}
		s.end(OutcomeCompensated)
		return cmds
	case DeadlinePassed:
		if s.Step == StepAuthorizing && s.Deadline != nil && !e.At.Before(*s.Deadline) {
			s.LastError = "payment not authorized in time"
			s.end(OutcomeTimedOut)
			return []Command{s.release(), s.cancel("payment timed out")}
		}
	}
	return nil
}

// orderOf returns the order an event concerns, "" for none.
func orderOf(e any) string {
	if o, ok := e.(order.Event); ok && order.IDOf(o) != "" { // every domain event has EventType: check the id
		return order.IDOf(o)
	}
	switch e := e.(type) {
	case inventory.OrderReserved:
		return e.OrderID
	case inventory.OrderRejected:
		return e.OrderID
	case inventory.OrderReleased:
		return e.OrderID
	case payment.Authorized:
		return e.OrderID
	case payment.Declined:
		return e.OrderID
	case payment.Voided:
		return e.OrderID
	}
	return ""
}

// payload encodes a command for the queue.
func payload(c Command) ([]byte, error) { return json.Marshal(c.Payload) }
