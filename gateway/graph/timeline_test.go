package graph

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/wire"
)

// TestTimelineMergesDecisionsByTime: the log's events keep their log order (even when their
// clocks disagree), and the saga's decisions fall in after the events of their instant, with what
// they sent, re-sent or gave up on.
func TestTimelineMergesDecisionsByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	events := []*wire.TimelineEntry{
		{At: at(0), Position: "10-1", Type: "order.placed.v1"},
		{At: at(5), Position: "12-2", Type: "inventory.order_reserved.v1"},
		{At: at(4), Position: "13-3", Type: "payment.authorized.v1"}, // committed later, stamped earlier
	}
	f := wire.Fulfillment{OrderID: "o", CorrelationID: "flow", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Decisions: []wire.FulfillmentDecision{
			{At: at(0), Step: "RESERVING", Sent: []string{"stock.reserve"}},
			{At: at(2), Step: "RESERVING", Sent: []string{"stock.reserve"}, Retry: 1},
			{At: at(9), Step: "CANCELLED", Sent: []string{"order.cancel"}, Stuck: true, Error: "card declined"},
		}}
	got := sortTimeline(withDecisions(events, f))
	var order []string
	for _, e := range got {
		order = append(order, e.Type+" "+e.Summary)
	}
	want := []string{
		"order.placed.v1 ",
		"saga.reserving reserving: sent stock.reserve",
		"saga.reserving reserving: sent stock.reserve (re-send 1)",
		"inventory.order_reserved.v1 ",
		"payment.authorized.v1 ",
		"saga.cancelled cancelled: sent order.cancel; stuck, waits for an operator; card declined",
	}
	if len(order) != len(want) {
		t.Fatalf("timeline %q, want %q", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Errorf("entry %d: %q, want %q", i, order[i], want[i])
		}
	}
	for _, e := range got[1:3] {
		if e.Stream != "fulfillment-o" || e.Actor != "saga:fulfillment" || e.CorrelationID != "flow" || e.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("decision entry %+v", e)
		}
	}
}
