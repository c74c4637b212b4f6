package fulfillment_test

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/sagas/fulfillment"
	"github.com/orderflow/orderflow/wire"
)

var (
	t0     = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	opts   = fulfillment.Options{PaymentTimeout: time.Minute}
	placed = order.Placed{OrderID: "o1", CustomerID: "c1", Lines: []order.Line{{ProductID: "p1", Quantity: 2, UnitPriceCents: 500}, {ProductID: "p2", Quantity: 1, UnitPriceCents: 100}}, TotalCents: 1100}
)

var (
	reserved   = inventory.OrderReserved{OrderID: "o1", ProductIDs: []string{"p1", "p2"}}
	rejected   = inventory.OrderRejected{OrderID: "o1", ProductID: "p1", Reason: "not enough stock"}
	authorized = payment.Authorized{PaymentID: "o1", OrderID: "o1", AmountCents: 1100}
	declined   = payment.Declined{PaymentID: "o1", OrderID: "o1", AmountCents: 1100, Reason: "card declined"}
	confirmed  = order.Confirmed{OrderID: "o1"}
	cancelled  = order.Cancelled{OrderID: "o1", Reason: "changed my mind"}
)

// run feeds events to the saga in order and returns the final state and every command sent.
func run(t *testing.T, events ...any) (*fulfillment.State, []string) {
	t.Helper()
	var s *fulfillment.State
	var sent []string
	for _, e := range events {
		var cmds []fulfillment.Command
		s, cmds = fulfillment.React(s, e, t0, opts)
		for _, c := range cmds {
			sent = append(sent, c.Endpoint)
		}
	}
	return s, sent
}

func check(t *testing.T, s *fulfillment.State, sent []string, step fulfillment.Step, outcome fulfillment.Outcome, want ...string) {
	t.Helper()
	if s == nil {
		t.Fatal("no saga")
	}
	if s.Step != step || s.Outcome != outcome {
		t.Errorf("step %s outcome %q, want %s %q", s.Step, s.Outcome, step, outcome)
	}
	if len(sent) != len(want) {
		t.Fatalf("sent %v, want %v", sent, want)
	}
	for i := range want {
		if sent[i] != want[i] {
			t.Fatalf("sent %v, want %v", sent, want)
		}
	}
}

func TestPaths(t *testing.T) {
	t.Parallel()
	var (
		reserve, authorize, confirm = wire.EndpointReserveStock.Name, wire.EndpointAuthorizePayment.Name, wire.EndpointConfirmOrder.Name
		release, cancel, void       = wire.EndpointReleaseStock.Name, wire.EndpointCancelOrder.Name, wire.EndpointVoidPayment.Name
	)
	tests := []struct {
		name    string
		events  []any
		step    fulfillment.Step
		outcome fulfillment.Outcome
		sent    []string
	}{
		{"happy", []any{placed, reserved, authorized, confirmed}, fulfillment.StepConfirmed, fulfillment.OutcomeConfirmed, []string{reserve, authorize, confirm}},
		{"out of stock", []any{placed, rejected, cancelled}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, cancel}},
		{"declined", []any{placed, reserved, declined, cancelled}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, authorize, release, cancel}},
		{"customer cancels while reserving, reservation lands after", []any{placed, cancelled, reserved}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, release}},
		{"customer cancels while reserving, reservation rejected after", []any{placed, cancelled, rejected}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve}},
		{"customer cancels while authorizing", []any{placed, reserved, cancelled}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, authorize, release}},
		{"customer cancels while authorizing, authorization lands after", []any{placed, reserved, cancelled, authorized}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, authorize, release, void}},
		{"customer cancels while confirming", []any{placed, reserved, authorized, cancelled}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, authorize, confirm, release, void}},
		{"customer cancels after confirmation", []any{placed, reserved, authorized, confirmed, cancelled}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, authorize, confirm, release, void}},
		{"duplicates change nothing", []any{placed, placed, reserved, reserved, authorized, authorized, confirmed, confirmed}, fulfillment.StepConfirmed, fulfillment.OutcomeConfirmed, []string{reserve, authorize, confirm}},
		{"events after the end change nothing", []any{placed, rejected, cancelled, rejected, declined, confirmed, cancelled}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, cancel}},
		{"stock that lands after the end is released", []any{placed, rejected, cancelled, reserved}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, cancel, release}},
		{"deadline", []any{placed, reserved, fulfillment.DeadlinePassed{At: t0.Add(time.Minute)}}, fulfillment.StepCancelled, fulfillment.OutcomeTimedOut, []string{reserve, authorize, release, cancel}},
		{"authorization after the deadline is voided", []any{placed, reserved, fulfillment.DeadlinePassed{At: t0.Add(time.Hour)}, authorized}, fulfillment.StepCancelled, fulfillment.OutcomeTimedOut, []string{reserve, authorize, release, cancel, void}},
		{"a deadline that no longer applies is ignored", []any{placed, reserved, authorized, fulfillment.DeadlinePassed{At: t0.Add(time.Second)}}, fulfillment.StepConfirming, "", []string{reserve, authorize, confirm}},
		{"a confirmation with no answer is sent again", []any{placed, reserved, authorized, fulfillment.DeadlinePassed{At: t0.Add(time.Hour)}, confirmed}, fulfillment.StepConfirmed, fulfillment.OutcomeConfirmed, []string{reserve, authorize, confirm, confirm}},
		{"a reservation with no answer is sent again", []any{placed, fulfillment.DeadlinePassed{At: t0.Add(time.Hour)}, reserved}, fulfillment.StepAuthorizing, "", []string{reserve, reserve, authorize}},
		{"a compensation with no answer is sent again", []any{placed, reserved, declined, fulfillment.DeadlinePassed{At: t0.Add(time.Hour)}}, fulfillment.StepCancelled, fulfillment.OutcomeCompensated, []string{reserve, authorize, release, cancel, release, cancel}},
		{"an early deadline is ignored", []any{placed, reserved, fulfillment.DeadlinePassed{At: t0.Add(time.Second)}}, fulfillment.StepAuthorizing, "", []string{reserve, authorize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, sent := run(t, tt.events...)
			check(t, s, sent, tt.step, tt.outcome, tt.sent...)
			if s.Step == fulfillment.StepCancelled && s.Outcome != fulfillment.OutcomeTimedOut && s.LastError == "" {
				t.Errorf("cancelled without a reason")
			}
		})
	}
}

func TestUnknownOrderIsIgnored(t *testing.T) {
	t.Parallel()
	for _, e := range []any{reserved, rejected, authorized, declined, confirmed, cancelled, fulfillment.DeadlinePassed{At: t0}} {
		if s, cmds := fulfillment.React(nil, e, t0, opts); s != nil || cmds != nil {
			t.Errorf("%T for an unknown order: %+v %+v", e, s, cmds)
		}
	}
}

func TestCommandIDsDeriveFromSagaAndStep(t *testing.T) {
	t.Parallel()
	s, cmds := fulfillment.React(nil, placed, t0, opts)
	again, cmds2 := fulfillment.React(nil, placed, t0.Add(time.Hour), opts)
	if cmds[0].ID != "fulfillment:o1:reserve" || cmds2[0].ID != cmds[0].ID || s.OrderID != again.OrderID {
		t.Fatalf("ids %q %q", cmds[0].ID, cmds2[0].ID)
	}
	_, cmds = fulfillment.React(s, reserved, t0, opts)
	a := cmds[0].Payload.(wire.AuthorizePayment)
	if a.AmountCents != 1100 || a.PaymentID != "o1" || a.Meta.CommandID != "fulfillment:o1:authorize" || a.Meta.CorrelationID != "o1" {
		t.Fatalf("authorize = %+v", a)
	}
}

func TestFreeOrderSkipsPayment(t *testing.T) {
	t.Parallel()
	free := placed
	free.TotalCents = 0
	s, sent := run(t, free, reserved, confirmed)
	check(t, s, sent, fulfillment.StepConfirmed, fulfillment.OutcomeConfirmed, wire.EndpointReserveStock.Name, wire.EndpointConfirmOrder.Name)
}

// deadlines fires the saga's deadline until it has none, returning the state and the commands sent.
func deadlines(s *fulfillment.State, limit int) (*fulfillment.State, []fulfillment.Command) {
	var sent []fulfillment.Command
	for i := 0; i < limit && s.Deadline != nil; i++ {
		var cmds []fulfillment.Command
		s, cmds = fulfillment.React(s, fulfillment.DeadlinePassed{At: *s.Deadline}, *s.Deadline, opts)
		sent = append(sent, cmds...)
	}
	return s, sent
}

// TestEveryWaitHasADeadline: a saga whose commands are never answered neither waits for ever nor
// re-sends for ever: a reservation gives up and compensates, a compensation parks as stuck.
func TestEveryWaitHasADeadline(t *testing.T) {
	t.Parallel()
	s, cmds := fulfillment.React(nil, placed, t0, opts)
	if s.Deadline == nil {
		t.Fatal("RESERVING has no deadline")
	}
	s, sent := deadlines(s, 100)
	sent = append(cmds, sent...)
	if s.Step != fulfillment.StepCancelled || s.Outcome != fulfillment.OutcomeTimedOut || !s.Stuck || s.Deadline != nil {
		t.Fatalf("after every deadline: %+v; want CANCELLED, timed out, stuck, no deadline", s)
	}
	ids := map[string]bool{}
	byEndpoint := map[string]int{}
	for _, c := range sent {
		if ids[c.ID] {
			t.Errorf("message id %s sent twice: the queue would drop the re-send", c.ID)
		}
		ids[c.ID] = true
		byEndpoint[c.Endpoint]++
	}
	const max = 8 // the default MaxRetries
	if byEndpoint[wire.EndpointReserveStock.Name] != 1+max || byEndpoint[wire.EndpointReleaseStock.Name] != 1+max || byEndpoint[wire.EndpointCancelOrder.Name] != 1+max {
		t.Errorf("sent %v; want the reservation, then the release and the cancellation, each %d times", byEndpoint, 1+max)
	}
	for _, c := range sent {
		if c.Endpoint == wire.EndpointReserveStock.Name && c.Payload.(wire.ReserveStock).Meta.CommandID != "fulfillment:o1:reserve" {
			t.Errorf("a re-sent reservation has command id %q: the inventory service would not know it", c.Payload.(wire.ReserveStock).Meta.CommandID)
		}
	}
	// The compensations' events arrive at last: the saga is done, and no longer stuck.
	s, cmds = fulfillment.React(s, inventory.OrderReleased{OrderID: "o1"}, t0, opts)
	s, _ = fulfillment.React(s, order.Cancelled{OrderID: "o1"}, t0, opts)
	if s.Stuck || len(s.Awaiting) != 0 || s.Deadline != nil || cmds != nil {
		t.Errorf("after the compensations' events: %+v, sent %v", s, cmds)
	}
}

// TestCompensationDoneStopsTheDeadline: a compensation answered in time leaves no deadline.
func TestCompensationDoneStopsTheDeadline(t *testing.T) {
	t.Parallel()
	s, _ := run(t, placed, reserved, declined)
	if s.Deadline == nil || len(s.Awaiting) != 2 {
		t.Fatalf("compensating: %+v; want a deadline awaiting release and cancel", s)
	}
	s, _ = run(t, placed, reserved, declined, inventory.OrderReleased{OrderID: "o1"}, cancelled)
	if s.Deadline != nil || len(s.Awaiting) != 0 || s.Stuck {
		t.Fatalf("compensated: %+v; want no deadline", s)
	}
}
