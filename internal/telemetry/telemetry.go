// Package telemetry is orderflow's tracing: OpenTelemetry, configured by the standard OTEL_*
// environment (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turn export on;
// OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf, OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER
// and OTEL_RESOURCE_ATTRIBUTES as the SDK reads them), and the carriers that take a trace across
// what is not HTTP: NATS message headers and the traceparent an event keeps in its metadata.
//
// Without an endpoint nothing is exported and spans are not recorded (the no-op provider), but
// trace context still travels: a client's traceparent reaches every event its request causes.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of orderflow's spans.
const Name = "github.com/orderflow/orderflow"

// Tracer is orderflow's tracer, from the global provider (Setup sets it).
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Exporter says where traces go: Endpoint, an OTLP collector's traces URL (empty: no export),
// over Protocol, grpc or http/protobuf (the default). Headers, compression and timeouts come from
// the standard OTEL_EXPORTER_OTLP_* environment, as the SDK reads it.
type Exporter struct {
	Endpoint, Protocol string
}

// ExporterFromEnv reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT (a base
// URL: /v1/traces is added for http/protobuf), and the protocol variables, unless
// OTEL_TRACES_EXPORTER is none.
func ExporterFromEnv(getenv func(string) string) Exporter { return signalFromEnv(getenv, "TRACES") }

// signalFromEnv is where signal (TRACES, LOGS, METRICS) goes: nowhere if OTEL_<signal>_EXPORTER is
// none; else OTEL_EXPORTER_OTLP_<signal>_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT (with
// /v1/<signal> added for http/protobuf), over OTEL_EXPORTER_OTLP_<signal>_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL.
func signalFromEnv(getenv func(string) string, signal string) Exporter {
	if getenv("OTEL_"+signal+"_EXPORTER") == "none" {
		return Exporter{}
	}
	e := Exporter{Protocol: firstOf(getenv("OTEL_EXPORTER_OTLP_"+signal+"_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf")}
	switch base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); {
	case getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "":
		e.Endpoint = getenv("OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT")
	case base != "" && e.Protocol == "http/protobuf":
		e.Endpoint = strings.TrimSuffix(base, "/") + "/v1/" + strings.ToLower(signal)
	default:
		e.Endpoint = base
	}
	return e
}

// Setup installs the global propagator (W3C trace context and baggage) and, when exp names an
// endpoint, a tracer provider exporting to it, batched, with service.name service (and
// OTEL_RESOURCE_ATTRIBUTES; the sampler follows OTEL_TRACES_SAMPLER). It returns what flushes and
// stops the provider.
func Setup(ctx context.Context, service string, exp Exporter) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if exp.Endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	var client *otlptrace.Exporter
	switch exp.Protocol {
	case "grpc":
		client, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(exp.Endpoint))
	case "http/protobuf", "":
		client, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(exp.Endpoint))
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", exp.Protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	// Each target its own service (Router); service.namespace is the installation's name.
	tp := NewRouter(sdktrace.NewBatchSpanProcessor(client), service)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Headers carries trace context in NATS message headers.
type Headers nats.Header

func (h Headers) Get(key string) string { return nats.Header(h).Get(key) }
func (h Headers) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h Headers) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes ctx's trace context into NATS headers, and reports whether there was one.
func Inject(ctx context.Context, h nats.Header) bool {
	if !trace.SpanContextFromContext(ctx).IsValid() && baggage.FromContext(ctx).Len() == 0 {
		return false
	}
	otel.GetTextMapPropagator().Inject(ctx, Headers(h))
	return len(h) > 0
}

// Extract returns ctx with the trace context of NATS headers h as its remote parent.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, Headers(h))
}

// TraceParent is ctx's trace context as W3C traceparent and tracestate values, as events keep
// them in their metadata ("" when ctx carries none).
func TraceParent(ctx context.Context) (traceparent, tracestate string) {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// FromTraceParent returns the span context a traceparent names (invalid when it names none).
func FromTraceParent(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
	return trace.SpanContextFromContext(ctx)
}

// WithParent returns ctx with the traceparent of an event or a command as its remote parent.
func WithParent(ctx context.Context, traceparent, tracestate string) context.Context {
	sc := FromTraceParent(traceparent, tracestate)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// TraceID is the trace id of a traceparent, "" when it has none.
func TraceID(traceparent string) string {
	if sc := FromTraceParent(traceparent, ""); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// Instance is this process as an instance of its services (service.instance.id): its host and
// process id. Two instances of a target are two series of its metrics, not one overwriting the
// other.
var Instance = func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}()

// serviceResource is the resource of service's telemetry from this process: its name, namespace
// and instance, the host, the SDK, OTEL_RESOURCE_ATTRIBUTES, and attrs.
func serviceResource(service string, attrs ...attribute.KeyValue) *resource.Resource {
	attrs = append(attrs, semconv.ServiceNamespace("orderflow"), semconv.ServiceName(service), semconv.ServiceInstanceID(Instance))
	res, err := resource.New(context.Background(), resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost(), resource.WithAttributes(attrs...))
	if err != nil { // a partial resource is still one: keep what was found
		res = resource.NewSchemaless(attrs...)
	}
	return res
}

// Service is the service.name of a process running targets: the target's name alone, else
// "orderflow".
func Service(targets []string) string {
	if len(targets) == 1 {
		return targets[0]
	}
	return "orderflow"
}

// End ends span, recording err (if any) as its error.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

type correlationKey struct{}

// WithCorrelation returns ctx carrying the correlation id of the flow it works for, for its logs;
// also as W3C baggage (correlation_id), so that it travels with the trace context wherever that
// goes (NATS headers, HTTP calls, queued commands).
func WithCorrelation(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	ctx = context.WithValue(ctx, correlationKey{}, id)
	if m, err := baggage.NewMember(correlationMember, url.PathEscape(id)); err == nil {
		if b, err := baggage.FromContext(ctx).SetMember(m); err == nil {
			ctx = baggage.ContextWithBaggage(ctx, b)
		}
	}
	return ctx
}

// correlationMember is the baggage member of the correlation id.
const correlationMember = "correlation_id"

// CorrelationOf is the correlation id ctx carries: its own, else its baggage's ("" if none).
func CorrelationOf(ctx context.Context) string {
	if id, ok := ctx.Value(correlationKey{}).(string); ok {
		return id
	}
	if v := baggage.FromContext(ctx).Member(correlationMember).Value(); v != "" {
		if id, err := url.PathUnescape(v); err == nil {
			return id
		}
	}
	return ""
}

// LogHandler adds the trace_id, span_id and correlation_id of the record's context to every log
// line logged with one (Logger.InfoContext and the like), so that logs join traces and flows.
// With TraceInContext (OpenTelemetry's bridge, which takes the trace from the context itself),
// only the correlation id.
type LogHandler struct {
	slog.Handler
	TraceInContext bool
}

func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !h.TraceInContext {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := CorrelationOf(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return LogHandler{h.Handler.WithAttrs(attrs), h.TraceInContext}
}
func (h LogHandler) WithGroup(name string) slog.Handler {
	return LogHandler{h.Handler.WithGroup(name), h.TraceInContext}
}
