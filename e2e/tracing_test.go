package e2e

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/otelsink"
)

// TestOneTraceFollowsAnOrder: with a tracer provider installed (an in-memory exporter here, OTLP
// in production), the trace of a client's traceparent covers the whole fulfillment of the order it
// places: the gateway's request, the NATS call and the order service's handler, the command and its
// append, the saga's queued commands and their handlers (inventory, payment), the payment
// service's call to the card gateway and the gateway's answer; every span's parent is in the trace
// (the first's is the client's); each span is the service (service.name) of the target that made
// it, though one process runs them all; the projectors' batches that applied its events link to
// it; and the log records exported meanwhile (OpenTelemetry's slog bridge) are their targets'
// services' and carry its trace.
func TestOneTraceFollowsAnOrder(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := telemetry.NewRouter(sdktrace.NewSimpleSpanProcessor(exporter), "orderflow") // as Setup installs it, exporting here
	otel.SetTracerProvider(tp)                                                        // the process's global provider: other tests' spans are left out by trace id
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	logs := &logSink{}
	platform.LogExporter = logs // as OTLP export would send them
	t.Cleanup(func() { platform.LogExporter = nil })
	metrics := &otelsink.Metrics{}
	platform.MetricExporter = metrics // as OTLP export would send them
	t.Cleanup(func() { platform.MetricExporter = nil })
	ns := string(natstest.Namespace(t))
	base := startPlatform(t, "targets", "all", "ORDERFLOW_NATS_PREFIX", ns, "PAYMENT_PROVIDER_LATENCY", "1ms", "ORDERFLOW_LOG_LEVEL", "debug",
		"OTEL_METRIC_EXPORT_INTERVAL", "200")
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"traced","sku":"TRACED-1","name":"Traced","priceCents":100}`, nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/traced/restock", `{"quantity":5}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	traceID, parent := "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	body := `{"orderId":"traced-1","customerId":"c","lines":[{"productId":"traced","quantity":1,"unitPriceCents":100}]}`
	if s, _, b := call(t, "POST", base+"/api/v1/orders", body, map[string]string{"traceparent": "00-" + traceID + "-" + parent + "-01"}); s != 201 {
		t.Fatalf("place: %d %s", s, b)
	}
	want := []string{"POST /api/v1/orders", "call " + ns + ".order.place", "order-commands place", "command order", "append order",
		"queue stock.reserve", "job " + ns + ".jobs.stock.reserve", "command product", "append product",
		"queue payment.authorize", "job " + ns + ".jobs.payment.authorize", "command payment", "HTTP POST", "POST /v1/authorizations", // the payment service's call, the card gateway's answer
		"queue order.confirm", "job " + ns + ".jobs.order.confirm"}
	var spans tracetest.SpanStubs
	var names []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		spans, names = nil, nil
		for _, s := range exporter.GetSpans() {
			if s.SpanContext.TraceID().String() == traceID {
				spans = append(spans, s)
				names = append(names, s.Name)
			}
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return slices.Contains(names, w) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order's trace has no %q; it has %q", missing, names)
		}
	}
	ids := map[string]bool{parent: true}
	for _, s := range spans {
		ids[s.SpanContext.SpanID().String()] = true
	}
	for _, s := range spans {
		if !ids[s.Parent.SpanID().String()] {
			t.Errorf("span %q: parent %s is not in the trace", s.Name, s.Parent.SpanID())
		}
	}
	// Each span is the service of the target that made it, though one process runs them all.
	services := map[string]string{}
	for _, sp := range spans {
		name, _ := sp.Resource.Set().Value(semconv.ServiceNameKey)
		services[sp.Name] = name.AsString()
	}
	for span, service := range map[string]string{"POST /api/v1/orders": "gateway", "order-commands place": "order-commands",
		"queue stock.reserve": "fulfillment-saga", "job " + ns + ".jobs.stock.reserve": "inventory-commands",
		"job " + ns + ".jobs.payment.authorize": "payment-commands", "POST /v1/authorizations": "payment-provider",
		"job " + ns + ".jobs.order.confirm": "order-commands", "append product": "inventory-commands", "append payment": "payment-commands"} {
		if services[span] != service {
			t.Errorf("span %q is service %q, want %q", span, services[span], service)
		}
	}
	if distinct := len(slices.Compact(slices.Sorted(maps.Values(services)))); distinct < 6 {
		t.Errorf("the order's trace shows %d services (%v), want at least 6", distinct, services)
	}
	// The read models' batches are traces of their own, linked to the events they applied (each
	// read model in its own time: wait for the slowest).
	for _, projection := range []string{"project orders", "project fulfillment", "project catalog"} {
		linked := func() bool {
			return slices.ContainsFunc(exporter.GetSpans(), func(s tracetest.SpanStub) bool {
				service, _ := s.Resource.Set().Value(semconv.ServiceNameKey)
				want := "projector"
				if projection == "project fulfillment" {
					want = "fulfillment-saga"
				}
				return s.Name == projection && service.AsString() == want &&
					slices.ContainsFunc(s.Links, func(l sdktrace.Link) bool { return l.SpanContext.TraceID().String() == traceID })
			})
		}
		for deadline := time.Now().Add(10 * time.Second); !linked(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("no %q span links to the order's trace", projection)
				break
			}
		}
	}
	// Its log records, exported, are its targets' services' and carry its trace.
	byService := map[string]int{}
	for deadline := time.Now().Add(15 * time.Second); len(byService) < 4 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		byService = logs.servicesOf(traceID)
	}
	if len(byService) < 4 {
		t.Errorf("log records with the order's trace id come from %v, want at least 4 targets", byService)
	}
	for key := range byService {
		if strings.Contains(key, " ") {
			t.Errorf("log records of the order's trace: %s", key)
		}
	}
	t.Logf("the order's log records by service: %v", byService)
	// Its latencies point to it: exemplars in the OpenMetrics answer of /metrics, and in the
	// metrics pushed over OTLP (the process's service, the targets it runs).
	pushed := func() (otelsink.Point, bool) {
		points, _ := metrics.Points()
		i := slices.IndexFunc(points, func(p otelsink.Point) bool {
			route, _ := p.Attributes.Value("route")
			return p.Metric == "orderflow_http_request_duration_seconds" && route.AsString() == "/api/v1/orders" && slices.Contains(p.Exemplars, traceID)
		})
		if i < 0 {
			return otelsink.Point{}, false
		}
		return points[i], true
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p, ok := pushed(); ok {
			if targets, _ := p.Resource.Value("orderflow.targets"); p.Service != "orderflow" || !strings.Contains(targets.AsString(), "fulfillment-saga") || p.Value < 1 {
				t.Errorf("pushed metric %s: service %q, targets %q, count %v; want the process's service and all its targets", p.Metric, p.Service, targets.AsString(), p.Value)
			}
			break
		}
		if time.Now().After(deadline) {
			points, exports := metrics.Points()
			t.Fatalf("%d metric exports (%d points): none with the order's request and its trace as exemplar", exports, len(points))
		}
	}
	_, _, openMetrics := call(t, "GET", base+"/metrics", "", map[string]string{"Accept": "application/openmetrics-text; version=1.0.0"})
	for _, series := range []string{`orderflow_http_request_duration_seconds_bucket{method="POST",route="/api/v1/orders",status="201"`,
		`orderflow_nats_request_duration_seconds_bucket{endpoint="place",outcome="ok",service="order-commands"`,
		`orderflow_job_duration_seconds_bucket{endpoint="payment.authorize",outcome="ok"`} {
		if !slices.ContainsFunc(strings.Split(string(openMetrics), "\n"), func(l string) bool {
			return strings.HasPrefix(l, series) && strings.Contains(l, `# {trace_id="`+traceID+`"}`)
		}) {
			t.Errorf("/metrics: no %s… with the order's trace as exemplar", series)
		}
	}
	t.Logf("the order's trace: %d spans: %s", len(spans), strings.Join(names, ", "))
}

// logSink keeps the log records exported to it.
type logSink struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (s *logSink) Export(_ context.Context, records []sdklog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		s.records = append(s.records, r.Clone())
	}
	return nil
}
func (s *logSink) Shutdown(context.Context) error   { return nil }
func (s *logSink) ForceFlush(context.Context) error { return nil }

// servicesOf counts the records of trace id by their service (service.name); those whose target
// attribute names another service, or that carry no correlation id, under keys that say so.
func (s *logSink) servicesOf(id string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.records {
		if r.TraceID().String() != id {
			continue
		}
		service, _ := r.Resource().Set().Value(semconv.ServiceNameKey)
		target, correlation := "", ""
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			switch kv.Key {
			case "target":
				target = kv.Value.AsString()
			case "correlation_id":
				correlation = kv.Value.AsString()
			}
			return true
		})
		switch {
		case target != service.AsString():
			out["service "+service.AsString()+" of a record of target "+target]++
		case correlation == "":
			out["without a correlation id: "+target]++
		default:
			out[target]++
		}
	}
	return out
}
