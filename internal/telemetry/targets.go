package telemetry

import (
	"context"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/sdk/resource"
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
	providers *perService[*sdktrace.TracerProvider]
}

// NewRouter returns a Router whose providers send their spans to processor, each with its
// service's resource (serviceResource; fallback for spans of no target).
func NewRouter(processor sdktrace.SpanProcessor, fallback string) *Router {
	return &Router{providers: newPerService(fallback, processor, func(res *resource.Resource) *sdktrace.TracerProvider {
		return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(processor), sdktrace.WithResource(res))
	})}
}

// Tracer implements trace.TracerProvider.
func (r *Router) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &routedTracer{router: r, name: name, opts: opts}
}

// Shutdown flushes and stops every provider (and so the shared processor, once).
func (r *Router) Shutdown(ctx context.Context) error { return r.providers.shutdown(ctx) }

// routedTracer starts each span from the provider of its context's target.
type routedTracer struct {
	embedded.Tracer
	router *Router
	name   string
	opts   []trace.TracerOption
}

func (t *routedTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.router.providers.of(TargetOf(ctx)).Tracer(t.name, t.opts...).Start(ctx, name, opts...)
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

// perService is a provider of each service (tracer, logger), made at its service's first use with
// its resource, all sharing one processor: one batch, one exporter.
type perService[P interface{ Shutdown(context.Context) error }] struct {
	fallback  string
	processor interface{ Shutdown(context.Context) error }
	create    func(*resource.Resource) P

	mu        sync.RWMutex
	providers map[string]P
}

func newPerService[P interface{ Shutdown(context.Context) error }](fallback string, processor interface{ Shutdown(context.Context) error }, create func(*resource.Resource) P) *perService[P] {
	return &perService[P]{fallback: fallback, processor: processor, create: create, providers: map[string]P{}}
}

// of is service's provider (the fallback's for "").
func (s *perService[P]) of(service string) P {
	if service == "" {
		service = s.fallback
	}
	s.mu.RLock()
	p, ok := s.providers[service]
	s.mu.RUnlock()
	if ok {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.providers[service]; ok {
		return p
	}
	p = s.create(serviceResource(service))
	s.providers[service] = p
	return p
}

// shutdown flushes and stops every provider, and so the processor they share (itself, if there
// is none), answering the first error.
func (s *perService[P]) shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.providers) == 0 {
		return s.processor.Shutdown(ctx)
	}
	var first error
	for _, p := range s.providers {
		if err := p.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}
