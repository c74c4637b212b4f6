package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// cachedCommands finds the command services' cache holding commands in /metrics.
var cachedCommands = regexp.MustCompile(`(?m)^orderflow_command_cache_commands [1-9]`)

// TestFulfillmentThroughThePlatform runs every target, the saga and the simulated card gateway
// included: 12 orders race for 5 units; each ends CONFIRMED or CANCELLED by itself, exactly 5 are
// confirmed, and the catalog agrees.
func TestFulfillmentThroughThePlatform(t *testing.T) {
	t.Parallel()
	base := startPlatform(t, "targets", "all", "PAYMENT_PROVIDER_LATENCY", "1ms")
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"last","sku":"LAST-1","name":"Last units","priceCents":1000}`, nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/last/restock", `{"quantity":5}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	const orders = 12
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"orderId":"o%d","customerId":"c%d","lines":[{"productId":"last","quantity":1,"unitPriceCents":1000}]}`, i, i)
			if s, _, b := call(t, "POST", base+"/api/v1/orders", body, nil); s != 201 {
				t.Errorf("place o%d: %d %s", i, s, b)
			}
		}()
	}
	wg.Wait()
	var q strings.Builder
	q.WriteString("{")
	for i := range orders {
		fmt.Fprintf(&q, `o%d: order(id: "o%d") { status fulfillment { step outcome attempts lastError } } `, i, i)
	}
	q.WriteString(`product(id: "last") { onHand reserved available } }`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := graphQL(t, base, q.String(), nil, nil)
		confirmed, cancelled := 0, 0
		for i := range orders {
			var o struct {
				Status      string
				Fulfillment struct{ Step, Outcome string }
			}
			_ = json.Unmarshal(a.Data[fmt.Sprintf("o%d", i)], &o)
			switch {
			case o.Status == "CONFIRMED" && o.Fulfillment.Outcome == "confirmed":
				confirmed++
			case o.Status == "CANCELLED" && o.Fulfillment.Outcome == "compensated":
				cancelled++
			}
		}
		var p struct{ OnHand, Reserved, Available int }
		_ = json.Unmarshal(a.Data["product"], &p)
		if confirmed+cancelled == orders && p.Reserved == confirmed {
			if confirmed != 5 || p.Available != 0 || p.OnHand != 5 {
				t.Fatalf("%d confirmed, %d cancelled; stock %+v; want 5 confirmed holding the 5 units", confirmed, cancelled, p)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d confirmed, %d cancelled of %d; stock %+v; errors %+v", confirmed, cancelled, orders, p, a.Errors)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSagasCommand(t *testing.T) {
	t.Parallel()
	// A namespace of its own per run: JetStream would drop a repeated run's commands as duplicates
	// of the last run's (their message ids derive from the order id).
	ns := string(natstest.Namespace(t))
	base, db := startPlatformDB(t, "targets", "all", "ORDERFLOW_NATS_PREFIX", ns, "PAYMENT_PROVIDER_LATENCY", "1ms")
	if s, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"unknown-product","customerId":"c","lines":[{"productId":"none","quantity":1,"unitPriceCents":5}]}`, nil); s != 201 {
		t.Fatalf("place: %d %s", s, b)
	}
	env := map[string]string{"NATS_URL": natstest.URL(t), "ORDERFLOW_NATS_PREFIX": ns, "ORDERFLOW_NATS_INSECURE": "true", "ORDERFLOW_NATS_SEEDS": seedsOf(t)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out bytes.Buffer
		err := cli.Main(t.Context(), []string{"sagas", "show", "unknown-product"}, func(k string) string { return env[k] }, &out, io.Discard)
		// Final: compensated, and its compensation (the order's cancellation) seen done.
		if err == nil && strings.Contains(out.String(), `"outcome": "compensated"`) && strings.Contains(out.String(), "out of stock") &&
			!strings.Contains(out.String(), `"awaiting"`) {
			// Who placed the order, and who the saga's commands say asked.
			if !strings.Contains(out.String(), `"startedBy": "admin:test-admin"`) || !strings.Contains(out.String(), `"actor": "saga:fulfillment"`) {
				t.Errorf("sagas show names no actors:\n%s", out.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sagas show: %v %s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out bytes.Buffer
	if err := cli.Main(t.Context(), []string{"sagas", "list"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0 in flight, 0 confirmed, 1 compensated") || !strings.Contains(out.String(), "circuit breaker closed") || !strings.Contains(out.String(), "unknown-product") {
		t.Fatalf("sagas list:\n%s", out.String())
	}
	// The same figures and the breaker as Prometheus metrics.
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, _, metrics := call(t, "GET", base+"/metrics", "", nil)
		m := string(metrics)
		if strings.Contains(m, `orderflow_fulfillment_sagas{state="compensated"} 1`) && strings.Contains(m, `orderflow_payment_provider_breaker{state="closed"} 1`) &&
			strings.Contains(m, `orderflow_fulfillment_sagas{state="in_flight"} 0`) &&
			strings.Contains(m, `orderflow_projection_events_applied_total{projection="orders"}`) && strings.Contains(m, `orderflow_projection_lag_events{projection="orders"} 0`) &&
			strings.Contains(m, `orderflow_projection_parked{projection="catalog"} 0`) && strings.Contains(m, `orderflow_projection_up{projection="fulfillment"} 1`) &&
			strings.Contains(m, "orderflow_eventstore_horizon_age_seconds") && strings.Contains(m, `orderflow_projection_batch_seconds_count{projection="orders"}`) &&
			cachedCommands.MatchString(m) &&
			// RED of REST routes, NATS endpoints and queued commands (a refused reservation among them).
			strings.Contains(m, `orderflow_http_request_duration_seconds_count{method="POST",route="/api/v1/orders",status="201"}`) &&
			strings.Contains(m, `orderflow_nats_request_duration_seconds_count{endpoint="place",outcome="ok",service="order-commands"}`) &&
			strings.Contains(m, `orderflow_job_duration_seconds_count{endpoint="stock.reserve",outcome="refused"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics:\n%s", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A saga parked for an operator (as after MaxRetries re-sends of a compensation) is listed
	// by --stuck and counted by the metric.
	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `update fulfillment.fulfillment set stuck = true, state = jsonb_set(state, '{stuck}', 'true') where order_id = 'unknown-product'`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := cli.Main(t.Context(), []string{"sagas", "list", "--stuck"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 stuck") || !strings.Contains(out.String(), "STUCK") || !strings.Contains(out.String(), "unknown-product") {
		t.Fatalf("sagas list --stuck:\n%s", out.String())
	}
	for deadline = time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, _, metrics := call(t, "GET", base+"/metrics", "", nil); strings.Contains(string(metrics), `orderflow_fulfillment_sagas{state="stuck"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(`/metrics: no orderflow_fulfillment_sagas{state="stuck"} 1`)
		}
	}
}

// TestTheSagaLingersAsConfigured: FULFILLMENT_LINGER reaches the saga's batches. With 700 ms, the
// saga decides on an order's reserved stock no sooner than 700 ms after the reservation was
// recorded (a batch that has an event waits that long for more; with the default 10 ms the
// decision follows within milliseconds). A lower bound: however busy the machine, it holds.
func TestTheSagaLingersAsConfigured(t *testing.T) {
	t.Parallel()
	const linger = 700 * time.Millisecond
	base := startPlatform(t, "targets", "all", "PAYMENT_PROVIDER_LATENCY", "1ms", "FULFILLMENT_LINGER", linger.String())
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"slow","sku":"SLOW-1","name":"Slow","priceCents":1000}`, nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/slow/restock", `{"quantity":5}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"lingered","customerId":"c1","lines":[{"productId":"slow","quantity":1}]}`, nil); s != 201 {
		t.Fatalf("place: %d %s", s, b)
	}
	var o struct {
		Status   string
		Timeline []wire.TimelineEntry
	}
	for deadline := time.Now().Add(30 * time.Second); o.Status != "CONFIRMED"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("order not confirmed after 30s: %s %+v", o.Status, o.Timeline)
		}
		a := graphQL(t, base, `{ order(id: "lingered") { status timeline { at stream type } } }`, nil, nil)
		_ = json.Unmarshal(a.Data["order"], &o)
	}
	reserved := slices.IndexFunc(o.Timeline, func(e wire.TimelineEntry) bool { return strings.HasPrefix(e.Stream, "stock_reservation-") })
	if reserved < 0 {
		t.Fatalf("no reservation in the timeline: %+v", o.Timeline)
	}
	next := slices.IndexFunc(o.Timeline[reserved:], func(e wire.TimelineEntry) bool { return strings.HasPrefix(e.Stream, "fulfillment-") })
	if next < 0 {
		t.Fatalf("no decision of the saga after the reservation: %+v", o.Timeline)
	}
	r, d := o.Timeline[reserved], o.Timeline[reserved+next]
	if gap := d.At.Sub(r.At); gap < linger-50*time.Millisecond {
		t.Errorf("the saga decided %s after the reservation (%s at %s, %s at %s), want at least the linger, %s", gap, r.Type, r.At.Format(time.StampMilli), d.Type, d.At.Format(time.StampMilli), linger)
	}
}
