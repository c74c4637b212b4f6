package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// TestOrderTimeline: a confirmed order's timeline spans its own stream, its reservation, the
// product it reserved and its payment, in log order, every entry with its flow (the request's
// correlation id), who asked (the customer, then the saga) and the client's trace id; a
// compensated order's shows the refusal and the cancellation; another customer's order is not
// theirs to read; `orderflow trace` prints the same.
func TestOrderTimeline(t *testing.T) {
	t.Parallel()
	ns := string(natstest.Namespace(t))
	base, db := startPlatformDB(t, "targets", "all", "ORDERFLOW_NATS_PREFIX", ns, "PAYMENT_PROVIDER_LATENCY", "1ms")
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"tl","sku":"TL-1","name":"Timeline","priceCents":700}`, nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/tl/restock", `{"quantity":1}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	customer := map[string]string{"Authorization": registered(t, base, "c-tl")["Authorization"], "traceparent": "00-" + traceID + "-00f067aa0ba902b7-01",
		"X-Correlation-ID": "checkout-42"}
	place := func(id string) {
		t.Helper()
		body := fmt.Sprintf(`{"orderId":%q,"lines":[{"productId":"tl","quantity":1,"unitPriceCents":700}]}`, id)
		if s, _, b := call(t, "POST", base+"/api/v1/orders", body, customer); s != 201 {
			t.Fatalf("place %s: %d %s", id, s, b)
		}
	}
	timeline := func(id, status string) []wire.TimelineEntry {
		t.Helper()
		q := `query($id: ID!) { order(id: $id) { status timeline { at stream type position correlationId causationId traceId actor summary } } }`
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			a := graphQL(t, base, q, map[string]any{"id": id}, map[string]string{"Authorization": customer["Authorization"]})
			var o struct {
				Status   string
				Timeline []wire.TimelineEntry
			}
			_ = json.Unmarshal(a.Data["order"], &o)
			if len(a.Errors) == 0 && o.Status == status && slices.ContainsFunc(o.Timeline, func(e wire.TimelineEntry) bool { return strings.HasSuffix(e.Type, "."+strings.ToLower(status)+".v1") }) {
				return o.Timeline
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: %s %+v %v; want %s with its timeline", id, o.Status, o.Timeline, a.Errors, status)
			}
		}
	}
	tlOK, tlLate := orderID("tl-ok"), orderID("tl-late")
	place(tlOK)
	all := timeline(tlOK, "CONFIRMED")
	place(tlLate)                          // one unit, taken: this one is compensated
	var ok, decisions []wire.TimelineEntry // the log's events, the saga's decisions
	for _, e := range all {
		if strings.HasPrefix(e.Type, "saga.") {
			decisions = append(decisions, e)
		} else {
			ok = append(ok, e)
		}
	}
	var decided []string
	for _, d := range decisions {
		decided = append(decided, d.Summary)
		if d.Actor != "saga:fulfillment" || d.CorrelationID != "checkout-42" || d.TraceID != traceID || d.Stream != "fulfillment-"+tlOK {
			t.Errorf("decision %+v: want the saga's, in the order's flow and trace", d)
		}
	}
	if want := []string{"reserving: sent stock.reserve", "authorizing: sent payment.authorize", "confirming: sent order.confirm", "confirmed"}; !slices.Equal(decided, want) {
		t.Errorf("the saga's decisions: %q, want %q", decided, want)
	}
	kinds := map[string]bool{}
	for i, e := range ok {
		kinds[strings.SplitN(e.Stream, "-", 2)[0]] = true
		if e.CorrelationID != "checkout-42" || e.TraceID != traceID || e.Actor == "" || e.CausationID == "" || e.Summary == "" {
			t.Errorf("entry %d: %+v; want the request's flow and trace, an actor, a cause and a summary", i, e)
		}
		if i > 0 && e.Position <= ok[i-1].Position && len(e.Position) == len(ok[i-1].Position) {
			t.Errorf("entry %d at %s after %s: want log order", i, e.Position, ok[i-1].Position)
		}
	}
	for _, k := range []string{"order", "stock_reservation", "product", "payment"} {
		if !kinds[k] {
			t.Errorf("no %s stream in the timeline: %v", k, kinds)
		}
	}
	if ok[0].Type != "order.placed.v1" || ok[0].Actor != "customer:c-tl" || ok[len(ok)-1].Type != "order.confirmed.v1" || ok[len(ok)-1].Actor != "saga:fulfillment" {
		t.Errorf("first %s by %s, last %s by %s; want placed by the customer, confirmed by the saga", ok[0].Type, ok[0].Actor, ok[len(ok)-1].Type, ok[len(ok)-1].Actor)
	}
	late := timeline(tlLate, "CANCELLED")
	var types []string
	for _, e := range late {
		types = append(types, e.Type)
	}
	if !slices.ContainsFunc(late, func(e wire.TimelineEntry) bool {
		return e.Type == "saga.cancelled" && strings.Contains(e.Summary, "sent order.cancel") && strings.Contains(e.Summary, "out of stock")
	}) {
		t.Errorf("compensated order: no decision to cancel it for want of stock in %+v", late)
	}
	if !slices.Contains(types, "inventory.order_rejected.v1") || slices.Contains(types, "order.confirmed.v1") {
		t.Errorf("compensated order's timeline: %v; want the rejected reservation and the cancellation", types)
	}
	for _, e := range late {
		if strings.Contains(e.Summary, tlOK) {
			t.Errorf("the other order of the same flow leaked into this timeline: %+v", e)
		}
	}
	// Another customer does not see the order, let alone its timeline.
	other := graphQL(t, base, `query($id: ID!) { order(id: $id) { timeline { type } } }`, map[string]any{"id": tlOK}, map[string]string{"Authorization": tokenFor(t, "c-other", auth.Customer)})
	if string(other.Data["order"]) != "null" && len(other.Errors) == 0 {
		t.Errorf("another customer read the timeline: %s", other.Data["order"])
	}
	// GraphQL operations have their RED metrics too.
	if _, _, m := call(t, "GET", base+"/metrics", "", nil); !strings.Contains(string(m), `orderflow_graphql_operation_duration_seconds_count{operation="anonymous",outcome="ok",type="query"}`) {
		t.Errorf("/metrics: no GraphQL operations")
	}
	var out bytes.Buffer
	env := map[string]string{"DATABASE_URL": db}
	if err := cli.Main(t.Context(), []string{"trace", tlOK}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Logf("orderflow trace %s:\n%s", tlOK, out.String())
	for _, want := range []string{"order " + tlOK + ": ", "by customer:c-tl", "by saga:fulfillment", "flow checkout-42, trace " + traceID, "order.confirmed.v1", "inventory.stock_reserved.v1",
		"saga: CONFIRMED (confirmed), 3 commands sent"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("orderflow trace: no %q in\n%s", want, out.String())
		}
	}
	if err := cli.Main(t.Context(), []string{"trace", "nope"}, func(k string) string { return env[k] }, &out, io.Discard); err == nil {
		t.Error("orderflow trace of an unknown order: no error")
	}
}
