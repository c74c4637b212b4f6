package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/testkit/logbuf"
)

const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestTraceContextTravels: a traceparent kept in an event's metadata becomes a span's parent; a
// span's context goes into NATS headers and comes out of them; logs of a traced context carry its
// trace and span ids.
func TestTraceContextTravels(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(telemetry.WithParent(context.Background(), parent, ""), "handle")
	defer span.End()
	if got := span.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("trace id %s: the event's traceparent was not the parent", got)
	}
	h := nats.Header{}
	telemetry.Inject(ctx, h)
	back := telemetry.Extract(context.Background(), h)
	if tp, _ := telemetry.TraceParent(back); tp == "" || !strings.Contains(tp, span.SpanContext().SpanID().String()) {
		t.Errorf("through NATS headers %v: %q, want the span %s", h, tp, span.SpanContext().SpanID())
	}
	if telemetry.TraceID(parent) != "4bf92f3577b34da6a3ce929d0e0e4736" || telemetry.TraceID("garbage") != "" {
		t.Error("TraceID")
	}
	var out bytes.Buffer
	log := slog.New(telemetry.LogHandler{Handler: slog.NewJSONHandler(&out, nil)}).With("target", "t")
	log.InfoContext(telemetry.WithCorrelation(ctx, "checkout-42"), "traced")
	log.Info("untraced")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) ||
		!strings.Contains(lines[0], `"span_id":"`+span.SpanContext().SpanID().String()+`"`) || !strings.Contains(lines[0], `"correlation_id":"checkout-42"`) ||
		!strings.Contains(lines[0], `"target":"t"`) || strings.Contains(lines[1], "trace_id") {
		t.Errorf("logs:\n%s", out.String())
	}
}

// TestAFloodIsALinePerInterval: a thousand warnings of one kind are one line, then, when the
// interval ends, one more saying how many it stands for, without waiting for another warning;
// other kinds and info lines pass.
func TestAFloodIsALinePerInterval(t *testing.T) {
	var out logbuf.Buffer
	log := slog.New(telemetry.NewQuieter(slog.NewTextHandler(&out, nil), 200*time.Millisecond)).With("target", "t")
	for i := range 1000 {
		log.Warn("queued command failed; will retry", "order", i)
	}
	log.Error("another kind")
	log.Info("info passes")
	log.Info("info passes")
	if got := strings.Count(out.String(), "\n"); got != 4 {
		t.Fatalf("%d lines:\n%s", got, out.String())
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "repeated=999"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no summary of the flood 5s after it ended:\n%s", out.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; len(lines) != 5 || !strings.Contains(last, "order=999") || !strings.Contains(last, "target=t") {
		t.Errorf("the summary is the latest warning with its count:\n%s", out.String())
	}
}
