package telemetry_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"

	"github.com/orderflow/orderflow/internal/telemetry"
)

// TestEachTargetIsAServiceOfItsOwn: spans started under a target's context carry its name as
// service.name, a child span the target of its own context (not its parent's), and spans of no
// target the fallback's; one processor gets them all, and Shutdown flushes it.
func TestEachTargetIsAServiceOfItsOwn(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	r := telemetry.NewRouter(sdktrace.NewSimpleSpanProcessor(exporter), "orderflow")
	tracer := r.Tracer("test")
	ctx, gw := tracer.Start(telemetry.WithTarget(context.Background(), "gateway"), "request")
	_, svc := tracer.Start(telemetry.WithTarget(ctx, "order-commands"), "handler")
	svc.End()
	gw.End()
	_, none := tracer.Start(context.Background(), "startup")
	none.End()
	want := map[string]string{"request": "gateway", "handler": "order-commands", "startup": "orderflow"}
	spans := exporter.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans exported, want 3", len(spans))
	}
	for _, s := range spans {
		service, _ := s.Resource.Set().Value(semconv.ServiceNameKey)
		if service.AsString() != want[s.Name] {
			t.Errorf("span %q: service %q, want %q", s.Name, service.AsString(), want[s.Name])
		}
		if s.Name == "handler" && s.Parent.SpanID() != gw.SpanContext().SpanID() {
			t.Errorf("the handler's parent is %s, want the request %s", s.Parent.SpanID(), gw.SpanContext().SpanID())
		}
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
