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
//
// Every step that waits has a deadline, so no saga waits for ever: RESERVING and CONFIRMING send
// their command again (the same command id, a new message id) after StepTimeout, with growing
// delays; RESERVING gives up after MaxRetries (it cancels the order and releases whatever was
// reserved). A compensation (release stock, void the payment, cancel the order) is awaited until
// its event arrives and sent again until then; after MaxRetries the saga is parked: marked stuck,
// counted by the orderflow_fulfillment_sagas{state="stuck"} metric and listed by
// `orderflow sagas list --stuck`, for an operator to look at.
package fulfillment

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/wire"
)

// Step is where a fulfillment stands.
type Step string

// Steps of a fulfillment.
const (
	StepReserving   Step = "RESERVING"
	StepAuthorizing Step = "AUTHORIZING"
	StepConfirming  Step = "CONFIRMING"
	StepConfirmed   Step = "CONFIRMED"
	StepCancelled   Step = "CANCELLED"
)

// inFlight are the steps of a fulfillment not yet finished: all but the last two.
var inFlight = []string{string(StepReserving), string(StepAuthorizing), string(StepConfirming)}

// Outcome is how a finished fulfillment ended.
type Outcome string

// Outcomes of a finished fulfillment.
const (
	OutcomeConfirmed   Outcome = "confirmed"
	OutcomeCompensated Outcome = "compensated"
	OutcomeTimedOut    Outcome = "timed_out"
)

// State is one order's fulfillment.
type State struct {
	OrderID           string       `json:"orderId"`
	CustomerID        string       `json:"customerId"`
	TotalCents        int64        `json:"totalCents"`
	Lines             []order.Line `json:"lines"`
	Step              Step         `json:"step"`
	Outcome           Outcome      `json:"outcome,omitempty"`
	StockHeld         bool         `json:"stockHeld"`
	PaymentAuthorized bool         `json:"paymentAuthorized"`
	Attempts          int64        `json:"attempts"` // commands sent
	Deadline          *time.Time   `json:"deadline,omitempty"`
	// Retries counts the re-sends of the current step's commands (0 when a step begins).
	Retries int `json:"retries,omitempty"`
	// Awaiting lists the compensations sent and not yet seen done ("release", "void", "cancel").
	Awaiting []string `json:"awaiting,omitempty"`
	// Stuck: the saga gave up re-sending (MaxRetries) and waits for an operator.
	Stuck     bool      `json:"stuck,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Flow is the placing request's flow, which every command of the saga continues.
	Flow Flow `json:"flow,omitzero"`
	// Decisions are the latest of what it decided (MaxDecisions), for the order's timeline.
	Decisions []wire.FulfillmentDecision `json:"decisions,omitempty"`
}

// MaxDecisions bounds the decisions a saga keeps.
const MaxDecisions = 50

// decided records what the saga just decided: its step, what it sent, whether it parked itself.
func (s *State) decided(now time.Time, before *State, cmds []Command) {
	d := wire.FulfillmentDecision{At: now, Step: string(s.Step), Retry: s.Retries, Stuck: s.Stuck}
	for _, c := range cmds {
		d.Sent = append(d.Sent, c.Endpoint)
	}
	if s.LastError != "" && (before == nil || before.LastError != s.LastError) {
		d.Error = s.LastError
	}
	if len(d.Sent) == 0 && d.Error == "" && before != nil && before.Step == s.Step && before.Stuck == s.Stuck {
		return // nothing an operator would call a decision
	}
	s.Decisions = append(slices.Clone(s.Decisions), d)
	if n := len(s.Decisions); n > MaxDecisions {
		s.Decisions = s.Decisions[n-MaxDecisions:]
	}
}

// Flow is what the saga's commands carry of the request that placed the order: its correlation
// id and trace context, so that the order's whole life is one flow (its timeline, its trace).
type Flow struct {
	CorrelationID string `json:"correlationId,omitempty"`
	// Actor is who placed the order ("customer:<id>", "admin:<subject>").
	Actor       string `json:"actor,omitempty"`
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// Started is an order placed, with the flow of the request that placed it.
type Started struct {
	order.Placed
	Flow Flow
}

// Actor is who the saga's commands say asked for them.
const Actor = "saga:fulfillment"

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
	// StepTimeout is how long the saga waits for the answer to a reservation, a confirmation or a
	// compensation before it sends the command again; each re-send doubles it (up to 16 times).
	// Default 30s.
	StepTimeout time.Duration
	// MaxRetries bounds the re-sends of one step: then a reservation gives up (the order is
	// cancelled) and a confirmation or compensation is parked as stuck. Default 8.
	MaxRetries int
	// Linger is how long a batch of the saga's events waits for more before it is decided
	// (projections.Options.Linger; default projections.DefaultLinger). A longer one decides more
	// orders per transaction and sends the command services larger groups of commands, for up to
	// that much more latency on each of an order's steps.
	Linger time.Duration
}

func (o Options) withDefaults() Options {
	if o.PaymentTimeout <= 0 {
		o.PaymentTimeout = 2 * time.Minute
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 30 * time.Second
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 8
	}
	return o
}

// send returns the command of step. A re-send keeps the command id (the command service appends
// nothing twice) but gets a message id of its own: the queue would drop a repeated one as a
// duplicate.
// send queues endpoint's command for step, its payload of the endpoint's request type.
func send[Req any](s *State, step string, endpoint wire.Endpoint[Req, wire.CommandReply], payload func(wire.CommandMeta) Req) Command {
	s.Attempts++
	correlation := s.Flow.CorrelationID
	if correlation == "" {
		correlation = s.OrderID // a saga started before flows were kept
	}
	m := wire.CommandMeta{CommandID: "fulfillment:" + s.OrderID + ":" + step, CorrelationID: correlation, Actor: Actor,
		TraceParent: s.Flow.TraceParent, TraceState: s.Flow.TraceState}
	id := m.CommandID
	if s.Retries > 0 {
		id = fmt.Sprintf("%s#%d", id, s.Retries)
	}
	return Command{ID: id, Endpoint: endpoint.Name, Payload: payload(m)}
}

// wait sets the step's deadline: StepTimeout, doubled for each re-send so far.
func (s *State) wait(now time.Time, opts Options) {
	d := now.Add(opts.StepTimeout << min(s.Retries, 4))
	s.Deadline = &d
}

func (s *State) reserve() Command {
	return send(s, "reserve", wire.EndpointReserveStock, func(m wire.CommandMeta) wire.ReserveStock {
		lines := make([]wire.OrderLine, len(s.Lines))
		for i, l := range s.Lines {
			lines[i] = wire.OrderLine(l)
		}
		return wire.ReserveStock{Meta: m, OrderID: s.OrderID, Lines: lines}
	})
}

// compensate sends the compensation named (release, void or cancel) and awaits its event.
func (s *State) compensate(name, reason string) Command {
	if !slices.Contains(s.Awaiting, name) {
		s.Awaiting = append(slices.Clip(s.Awaiting), name)
	}
	switch name {
	case "release":
		return s.release()
	case "void":
		return s.void()
	}
	return s.cancel(reason)
}

// done records that a compensation's event arrived.
func (s *State) done(name string) {
	if i := slices.Index(s.Awaiting, name); i >= 0 {
		s.Awaiting = slices.Delete(slices.Clone(s.Awaiting), i, i+1)
	}
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
	return send(s, "release", wire.EndpointReleaseStock, func(m wire.CommandMeta) wire.OrderStock {
		return wire.OrderStock{Meta: m, OrderID: s.OrderID, ProductIDs: s.productIDs()}
	})
}

func (s *State) void() Command {
	return send(s, "void", wire.EndpointVoidPayment, func(m wire.CommandMeta) wire.IDCommand { return wire.IDCommand{Meta: m, ID: s.OrderID} })
}

func (s *State) cancel(reason string) Command {
	return send(s, "cancel", wire.EndpointCancelOrder, func(m wire.CommandMeta) wire.CancelOrder {
		return wire.CancelOrder{Meta: m, OrderID: s.OrderID, Reason: reason}
	})
}

// confirm sends the confirmation; the caller resets Retries when the step begins.
func (s *State) confirm() Command {
	s.Step = StepConfirming
	return send(s, "confirm", wire.EndpointConfirmOrder, func(m wire.CommandMeta) wire.IDCommand { return wire.IDCommand{Meta: m, ID: s.OrderID} })
}

func (s *State) end(outcome Outcome) {
	s.Step, s.Outcome, s.Deadline, s.Retries = StepCancelled, outcome, nil, 0
}

// React returns the saga's state after event e (a domain event of order, inventory or payment, or
// DeadlinePassed) and the commands to send. s is nil for an order the saga has not seen. It is
// pure; duplicates, late events and events of unknown orders change nothing and send nothing.
func React(s *State, e any, now time.Time, opts Options) (*State, []Command) {
	now = now.UTC()
	opts = opts.withDefaults()
	var flow Flow
	if st, ok := e.(Started); ok {
		e, flow = st.Placed, st.Flow
	}
	if p, ok := e.(order.Placed); ok {
		if s != nil {
			return s, nil // a duplicate
		}
		if p.Unregistered {
			return nil, nil // cancelled as it was placed (the customer has no account): nothing to fulfil
		}
		s = &State{OrderID: p.OrderID, CustomerID: p.CustomerID, TotalCents: p.TotalCents, Lines: slices.Clone(p.Lines), Step: StepReserving, StartedAt: now, UpdatedAt: now, Flow: flow}
		s.wait(now, opts)
		cmds := []Command{s.reserve()}
		s.decided(now, nil, cmds)
		return s, cmds
	}
	if s == nil {
		return nil, nil // an order placed before the saga existed, or another saga's
	}
	next := *s
	cmds := react(&next, e, now, opts)
	switch {
	case next.Step == StepConfirming && (next.Deadline == nil || next.Step != s.Step):
		next.wait(now, opts)
	case next.Step == StepCancelled && len(next.Awaiting) > 0 && !next.Stuck && (next.Deadline == nil || len(cmds) > 0 && next.Retries == s.Retries):
		next.wait(now, opts) // compensations sent: await them
	case next.Step == StepCancelled && len(next.Awaiting) == 0:
		next.Deadline, next.Stuck = nil, false // nothing left to wait for
	}
	if cmds == nil && unchanged(s, &next) {
		return s, nil
	}
	next.UpdatedAt = now
	next.decided(now, s, cmds)
	return &next, cmds
}

// unchanged reports whether b is the same saga state as a, but for UpdatedAt.
func unchanged(a, b *State) bool {
	sameDeadline := (a.Deadline == nil) == (b.Deadline == nil) && (a.Deadline == nil || a.Deadline.Equal(*b.Deadline))
	return a.Step == b.Step && a.Outcome == b.Outcome && a.StockHeld == b.StockHeld && a.PaymentAuthorized == b.PaymentAuthorized &&
		a.Retries == b.Retries && a.Stuck == b.Stuck && slices.Equal(a.Awaiting, b.Awaiting) && sameDeadline
}

func react(s *State, e any, now time.Time, opts Options) []Command {
	switch e := e.(type) {
	case inventory.OrderReserved:
		switch s.Step {
		case StepReserving:
			s.StockHeld, s.Retries = true, 0
			if s.TotalCents == 0 {
				return []Command{s.confirm()}
			}
			deadline := now.Add(opts.PaymentTimeout)
			s.Step, s.Deadline, s.Retries = StepAuthorizing, &deadline, 0
			return []Command{send(s, "authorize", wire.EndpointAuthorizePayment, func(m wire.CommandMeta) wire.AuthorizePayment {
				return wire.AuthorizePayment{Meta: m, PaymentID: s.OrderID, OrderID: s.OrderID, AmountCents: s.TotalCents}
			})}
		case StepCancelled:
			if !s.StockHeld && s.Outcome != "" { // the reservation answer raced a cancellation
				s.StockHeld = true
				return []Command{s.compensate("release", "")}
			}
		}
	case inventory.OrderRejected:
		if s.Step == StepReserving {
			why := "out of stock"
			if strings.Contains(e.Reason, inventory.ErrPriceChanged.Error()) {
				why = "price changed"
			}
			s.LastError = why + ": " + e.Reason
			s.end(OutcomeCompensated)
			return []Command{s.compensate("cancel", why)}
		}
	case inventory.OrderReleased:
		s.StockHeld = false
		s.done("release")
	case payment.Authorized:
		switch s.Step {
		case StepAuthorizing:
			s.PaymentAuthorized, s.Retries = true, 0
			return []Command{s.confirm()}
		case StepCancelled:
			s.PaymentAuthorized = true // too late: give it back
			return []Command{s.compensate("void", "")}
		}
	case payment.Declined:
		if s.Step == StepAuthorizing {
			s.LastError = "payment declined: " + e.Reason
			s.end(OutcomeCompensated)
			return []Command{s.compensate("release", ""), s.compensate("cancel", "payment declined")}
		}
	case payment.Voided:
		s.PaymentAuthorized = false
		s.done("void")
	case order.Confirmed:
		if s.Step == StepConfirming {
			s.Step, s.Outcome, s.Deadline, s.Retries = StepConfirmed, OutcomeConfirmed, nil, 0
		}
	case order.Cancelled:
		s.done("cancel")
		var cmds []Command
		switch s.Step {
		case StepCancelled:
			return nil // the saga's own cancellation, or a duplicate
		case StepReserving:
			// The reservation may still succeed: OrderReserved will release it.
		default:
			if s.StockHeld {
				cmds = append(cmds, s.compensate("release", ""))
			}
			if s.PaymentAuthorized {
				cmds = append(cmds, s.compensate("void", ""))
			}
		}
		s.LastError = "cancelled by the customer"
		if e.Reason != "" {
			s.LastError += ": " + e.Reason
		}
		s.end(OutcomeCompensated)
		return cmds
	case DeadlinePassed:
		if s.Deadline == nil || e.At.Before(*s.Deadline) {
			return nil
		}
		return s.deadlinePassed(e.At, opts)
	}
	return nil
}

// deadlinePassed is what the saga does when the current step's deadline passes.
func (s *State) deadlinePassed(now time.Time, opts Options) []Command {
	retry := s.Retries < opts.MaxRetries
	if retry {
		s.Retries++
	}
	switch s.Step {
	case StepReserving:
		if retry {
			s.LastError = "no answer to the reservation yet: sent again"
			s.wait(now, opts)
			return []Command{s.reserve()}
		}
		s.LastError = "no answer to the reservation: gave up"
		s.end(OutcomeTimedOut)
		return []Command{s.compensate("release", ""), s.compensate("cancel", "stock not reserved in time")}
	case StepAuthorizing:
		s.LastError = "payment not authorized in time"
		s.end(OutcomeTimedOut)
		return []Command{s.compensate("release", ""), s.compensate("cancel", "payment timed out")}
	case StepConfirming:
		if retry {
			s.LastError = "no answer to the confirmation yet: sent again"
			s.wait(now, opts)
			return []Command{s.confirm()}
		}
		s.park("the order was not confirmed")
	case StepCancelled:
		if len(s.Awaiting) == 0 {
			s.Deadline = nil
			return nil
		}
		if retry {
			s.LastError = fmt.Sprintf("compensation not done yet (%v): sent again", s.Awaiting)
			s.wait(now, opts)
			var cmds []Command
			for _, name := range s.Awaiting {
				cmds = append(cmds, s.compensate(name, "compensation"))
			}
			return cmds
		}
		s.park(fmt.Sprintf("compensation not done (%v)", s.Awaiting))
	default:
		s.Deadline = nil
	}
	return nil
}

// park gives up re-sending: the saga is stuck until an operator looks.
func (s *State) park(why string) {
	s.Stuck, s.Deadline = true, nil
	s.LastError = why + fmt.Sprintf(" after %d re-sends: stuck", s.Retries)
}

// orderOf returns the order an event concerns, "" for none.
func orderOf(e any) string {
	if a, ok := e.(domain.AboutOrder); ok {
		return a.AboutOrder()
	}
	return ""
}

// payload encodes a command for the queue.
func payload(c Command) ([]byte, error) { return json.Marshal(c.Payload) }
