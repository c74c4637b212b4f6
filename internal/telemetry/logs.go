package telemetry

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// LogsFromEnv says where logs go, as the trace export's variables say (OTEL_EXPORTER_OTLP_ENDPOINT,
// or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT; /v1/logs is added to a base URL for http/protobuf; the
// protocol variables), unless OTEL_LOGS_EXPORTER is none.
func LogsFromEnv(getenv func(string) string) Exporter { return signalFromEnv(getenv, "LOGS") }

// LogExporter is the OTLP log exporter exp names (nil, nil without an endpoint).
func LogExporter(ctx context.Context, exp Exporter) (sdklog.Exporter, error) {
	switch {
	case exp.Endpoint == "":
		return nil, nil
	case exp.Protocol == "grpc":
		return otlploggrpc.New(ctx, otlploggrpc.WithEndpointURL(exp.Endpoint))
	case exp.Protocol == "http/protobuf" || exp.Protocol == "":
		return otlploghttp.New(ctx, otlploghttp.WithEndpointURL(exp.Endpoint))
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", exp.Protocol)
}

// Logs sends log records to OpenTelemetry as each target's service: a logger provider per target
// (its resource names it as service.name), sharing one batch processor and exporter, bridged
// from log/slog. A nil *Logs exports nothing.
type Logs struct {
	providers *perService[*sdklog.LoggerProvider]
}

// NewLogs returns Logs exporting through processor (e.g. sdklog.NewBatchProcessor), with
// fallback the service of records of no target.
func NewLogs(processor sdklog.Processor, fallback string) *Logs {
	return &Logs{providers: newPerService(fallback, processor, func(res *resource.Resource) *sdklog.LoggerProvider {
		return sdklog.NewLoggerProvider(sdklog.WithProcessor(processor), sdklog.WithResource(res))
	})}
}

// Handler is target's slog handler into OpenTelemetry: its records carry the trace and span of
// their context (InfoContext and the like) and its correlation id. Nil without export.
func (l *Logs) Handler(target string) slog.Handler {
	if l == nil {
		return nil
	}
	return LogHandler{Handler: otelslog.NewHandler(Name, otelslog.WithLoggerProvider(l.providers.of(target))), TraceInContext: true}
}

// Shutdown flushes and stops every provider.
func (l *Logs) Shutdown(ctx context.Context) error {
	if l == nil {
		return nil
	}
	return l.providers.shutdown(ctx)
}

// Tee is a handler that gives each record to both a and b (b may be nil: a alone).
func Tee(a, b slog.Handler) slog.Handler {
	if b == nil {
		return a
	}
	return tee{a, b}
}

type tee struct{ a, b slog.Handler }

func (t tee) Enabled(ctx context.Context, level slog.Level) bool {
	return t.a.Enabled(ctx, level) || t.b.Enabled(ctx, level)
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var errA, errB error
	if t.a.Enabled(ctx, r.Level) {
		errA = t.a.Handle(ctx, r.Clone())
	}
	if t.b.Enabled(ctx, r.Level) {
		errB = t.b.Handle(ctx, r)
	}
	if errA != nil {
		return errA
	}
	return errB
}

func (t tee) WithAttrs(attrs []slog.Attr) slog.Handler {
	return tee{t.a.WithAttrs(attrs), t.b.WithAttrs(attrs)}
}
func (t tee) WithGroup(name string) slog.Handler {
	return tee{t.a.WithGroup(name), t.b.WithGroup(name)}
}

// AtLeast is h for records of level or above only (nil stays nil).
func AtLeast(h slog.Handler, level slog.Leveler) slog.Handler {
	if h == nil {
		return nil
	}
	return leveled{h, level}
}

type leveled struct {
	slog.Handler
	level slog.Leveler
}

func (h leveled) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.level.Level() && h.Handler.Enabled(ctx, level)
}
func (h leveled) WithAttrs(attrs []slog.Attr) slog.Handler {
	return leveled{h.Handler.WithAttrs(attrs), h.level}
}
func (h leveled) WithGroup(name string) slog.Handler {
	return leveled{h.Handler.WithGroup(name), h.level}
}
