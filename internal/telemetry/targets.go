package telemetry

import (
	"context"
	"net/http"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

type targetKey struct{}

// WithTarget returns ctx as target's: the spans started under it are that target's service
// (service.name), whichever process runs it.
func WithTarget(ctx context.Context, target string) context.Context {
	return context.WithValue(ctx, targetKey{}, target)
}

// TargetOf is the target ctx works for ("" if none said).
func TargetOf(ctx context.Context) string {
	t, _ := ctx.Value(targetKey{}).(string)
	return t
}

// Router is a tracer provider that gives each target its own: a span started under a context of
// WithTarget comes from the target's provider, whose resource names the target as service.name;
// other spans come from the fallback service's. One process running several targets (`orderflow
// dev`, `serve --target=a,b`) thus shows them as the services they are. The providers share one
// span processor (one batch, one exporter).
type Router struct {
	embedded.TracerProvider
	processor sdktrace.SpanProcessor
	fallback  string

	mu        sync.RWMutex
	providers map[string]*sdktrace.TracerProvider
}

// NewRouter returns a Router whose providers send their spans to processor, each with its
// service's resource (serviceResource; fallback for spans of no target).
func NewRouter(processor sdktrace.SpanProcessor, fallback string) *Router {
	return &Router{processor: processor, fallback: fallback, providers: map[string]*sdktrace.TracerProvider{}}
}

// provider is service's provider, made at its first span.
func (r *Router) provider(service string) *sdktrace.TracerProvider {
	if service == "" {
		service = r.fallback
	}
	r.mu.RLock()
	tp, ok := r.providers[service]
	r.mu.RUnlock()
	if ok {
		return tp
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if tp, ok := r.providers[service]; ok {
		return tp
	}
	tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.processor), sdktrace.WithResource(serviceResource(service)))
	r.providers[service] = tp
	return tp
}

// Tracer implements trace.TracerProvider.
func (r *Router) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &routedTracer{router: r, name: name, opts: opts}
}

// Shutdown flushes and stops every provider (and so the shared processor, once).
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return shutdownAll(ctx, r.providers, r.processor)
}

// routedTracer starts each span from the provider of its context's target.
type routedTracer struct {
	embedded.Tracer
	router *Router
	name   string
	opts   []trace.TracerOption
}

func (t *routedTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.router.provider(TargetOf(ctx)).Tracer(t.name, t.opts...).Start(ctx, name, opts...)
}

// Targeted makes every request target's (WithTarget) before next sees it: an HTTP service's
// spans, its request's span first, are the target's service.
func Targeted(target string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(WithTarget(r.Context(), target)))
		})
	}
}
