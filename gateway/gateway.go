// Package gateway is orderflow's front door: the REST command API under /api/v1 and the GraphQL
// BFF at /graphql. It owns no data: commands and queries go to the services over NATS.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/orderflow/orderflow/gateway/api"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/ops"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// Options configure the gateway.
type Options struct {
	NC *nats.Conn
	// Namespace of the services' subjects; default wire.DefaultNamespace.
	Namespace wire.Namespace
	Log       *slog.Logger
	// Ready reports whether the platform can serve (database, NATS, projectors); /readyz.
	Ready func(ctx context.Context) error
	// CallTimeout bounds each NATS call, read-your-writes wait included; default 5s.
	CallTimeout time.Duration
	// Metrics, if set, is served at /metrics.
	Metrics *prometheus.Registry
	// Idempotency stores Idempotency-Key records; nil ignores the header (commands stay
	// idempotent by the command id derived from it, but responses are not replayed).
	Idempotency *IdempotencyKeys
	// Security: tokens, roles, rate limits, CORS, GraphQL limits.
	Security Security
	// Signer, if set, asserts each request's caller to the services it calls (auth.Signer): they
	// check it again instead of trusting the gateway's word.
	Signer *auth.Signer
}

// New returns the gateway's HTTP handler.
func New(opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.Security.MaxDepth <= 0 {
		opts.Security.MaxDepth = 10
	}
	if opts.Security.MaxComplexity <= 0 {
		opts.Security.MaxComplexity = 1000
	}
	if opts.Security.RequestTimeout <= 0 {
		opts.Security.RequestTimeout = 15 * time.Second
	}
	g := &gateway{opts: opts, log: opts.Log}
	r := chi.NewRouter()
	// A span per request (the client's traceparent is its parent), named by its route.
	traced := func(next http.Handler) http.Handler {
		return otelhttp.NewHandler(next, "gateway", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}))
	}
	r.Use(telemetry.Targeted("gateway"), traced, middleware.RequestID, g.correlation, g.accessLog, g.recoverer, g.cors())
	r.Get("/healthz", ops.Healthz)
	r.Get("/readyz", ops.Readyz(opts.Ready))
	if opts.Metrics != nil {
		telemetry.Register(opts.Metrics)
		r.Method("GET", "/metrics", ops.Metrics(opts.Metrics))
	}
	r.Get("/api/v1/openapi.json", serveOpenAPI)
	r.Method("GET", "/console", console())
	r.Method("GET", "/console/*", console())
	if opts.Security.GraphiQL {
		r.Get("/graphiql", playground.Handler("orderflow GraphiQL", "/graphql"))
	}
	// The API: a token, then the caller's rate, then the request's time bound.
	authed := r.With(g.authenticate, g.rateLimit, g.timeout)
	for _, op := range api.Commands {
		authed.With(g.idempotent).Method(op.Describe().Method, op.Describe().Path, g.handler(op))
	}
	authed.Handle("/graphql", g.graphQL())
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, &problem{Status: http.StatusNotFound, Type: "not-found", Title: "Not found", Detail: "no route " + r.Method + " " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, &problem{Status: http.StatusMethodNotAllowed, Type: "method-not-allowed", Title: "Method not allowed", Detail: r.Method + " is not served at " + r.URL.Path})
	})
	return r
}

type gateway struct {
	opts Options
	log  *slog.Logger
}

type correlationKey struct{}

// correlation takes the caller's X-Correlation-ID, or makes one, and echoes it back.
func (g *gateway) correlation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Correlation-ID")
		if id == "" || len(id) > 100 {
			id = uuid.NewString()
		}
		w.Header().Set("X-Correlation-ID", id)
		ctx := telemetry.WithCorrelation(context.WithValue(r.Context(), correlationKey{}, id), id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func correlationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

func (g *gateway) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		telemetry.Observe(r.Context(), telemetry.HTTPRequests.WithLabelValues(route, r.Method, strconv.Itoa(ww.Status())), start)
		level := slog.LevelDebug
		if ww.Status() >= 500 {
			level = slog.LevelError
		}
		if g.log.Enabled(r.Context(), level) { // the arguments cost allocations even when not logged
			g.log.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
				"duration_ms", time.Since(start).Milliseconds())
		}
	})
}

func (g *gateway) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				g.log.Error("panic in handler", "panic", p, "path", r.URL.Path)
				writeProblem(w, r, internalProblem())
			}
		}()
		next.ServeHTTP(w, r)
	})
}
