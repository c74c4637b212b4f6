package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/orderflow/orderflow/internal/auth"
)

// Security is the gateway's configuration of its callers: tokens, roles, rate limits, CORS,
// GraphQL limits, how long a request may take.
type Security struct {
	// Verifier checks bearer tokens. Nil turns authentication off: every caller is an admin
	// (tests of other concerns only; the binary always sets one).
	Verifier *auth.Verifier
	// RateLimit is requests per second per client (a token's subject, else the address) for
	// customers; 0 turns it off. AdminRateLimit is the same for admins; 0 is no limit.
	RateLimit, AdminRateLimit int
	// CORSOrigins may call from a browser ("*" for any); none turns CORS off.
	CORSOrigins []string
	// Introspection serves the schema to introspection queries.
	Introspection bool
	// MaxDepth and MaxComplexity bound a GraphQL operation; defaults 10 and 1000 (admins: ten
	// times the complexity).
	MaxDepth, MaxComplexity int
	// MaxSubscriptions bounds the live subscriptions one gateway serves at once; default 5,000.
	MaxSubscriptions int
	// RequestTimeout bounds a request (not a websocket); default 15s.
	RequestTimeout time.Duration
	// GraphiQL serves the GraphiQL page at /graphiql (development).
	GraphiQL bool
}

// anonymousAdmin is the caller when authentication is off.
var anonymousAdmin = auth.Principal{Subject: "anonymous", Role: auth.Admin}

// bearer returns the token of an Authorization header value.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// principal authenticates an Authorization header value.
func (g *gateway) principal(header string) (auth.Principal, error) {
	if g.opts.Security.Verifier == nil {
		return anonymousAdmin, nil
	}
	token, ok := bearer(header)
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: want Authorization: Bearer <token>", auth.ErrInvalid)
	}
	return g.opts.Security.Verifier.Verify(token)
}

// authenticate requires a valid bearer token on the API. A websocket upgrade of /graphql
// authenticates in its connection_init message instead.
func (g *gateway) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		p, err := g.principal(r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow"`)
			if strings.HasPrefix(r.URL.Path, "/graphql") {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []any{map[string]any{
					"message": err.Error(), "extensions": map[string]any{"code": CodeUnauthenticated}}}})
				return
			}
			writeProblem(w, r, &problem{Status: http.StatusUnauthorized, Type: "unauthenticated", Title: "Unauthenticated", Detail: err.Error()})
			return
		}
		next.ServeHTTP(w, r.WithContext(g.asCaller(r.Context(), p)))
	})
}

// asCaller returns ctx of a request by p: the services it calls hear of p, signed.
func (g *gateway) asCaller(ctx context.Context, p auth.Principal) context.Context {
	ctx = auth.With(ctx, p)
	if g.opts.Signer != nil {
		ctx = auth.WithSigner(ctx, g.opts.Signer)
	}
	return ctx
}

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// rateLimit limits each client: customers (by subject) at RateLimit per second, admins at
// AdminRateLimit (0: unlimited). Over the limit: 429 with Retry-After.
func (g *gateway) rateLimit(next http.Handler) http.Handler {
	s := g.opts.Security
	limiter := func(n int) func(http.Handler) http.Handler {
		if n <= 0 {
			return func(h http.Handler) http.Handler { return h }
		}
		return httprate.Limit(n, time.Second,
			httprate.WithKeyFuncs(func(r *http.Request) (string, error) {
				if p, ok := auth.From(r.Context()); ok {
					return string(p.Role) + ":" + p.Subject, nil
				}
				return httprate.KeyByIP(r)
			}),
			httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
				if w.Header().Get("Retry-After") == "" {
					w.Header().Set("Retry-After", "1")
				}
				writeProblem(w, r, &problem{Status: http.StatusTooManyRequests, Type: "rate-limited", Title: "Too many requests",
					Detail: "more than " + strconv.Itoa(n) + " requests per second from this client; retry after the Retry-After seconds"})
			}))
	}
	customers, admins := limiter(s.RateLimit)(next), limiter(s.AdminRateLimit)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := auth.From(r.Context()); ok && p.IsAdmin() {
			admins.ServeHTTP(w, r)
			return
		}
		customers.ServeHTTP(w, r)
	})
}

// cors answers browsers' preflights for the configured origins.
func (g *gateway) cors() func(http.Handler) http.Handler {
	if len(g.opts.Security.CORSOrigins) == 0 {
		return func(h http.Handler) http.Handler { return h }
	}
	return cors.Handler(cors.Options{
		AllowedOrigins: g.opts.Security.CORSOrigins,
		AllowedMethods: []string{"GET", "POST", "OPTIONS"},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Consistency-Position", "X-Correlation-ID", "traceparent", "tracestate"},
		ExposedHeaders: []string{"X-Consistency-Position", "X-Correlation-ID", "Location", "Retry-After", "Idempotent-Replayed"},
		MaxAge:         600,
	})
}

// timeout bounds a request's context (not a websocket's).
func (g *gateway) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), g.opts.Security.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// depthLimit refuses GraphQL operations nested deeper than max fields, and operations whose
// fragments expand to more than maxFields field selections (a fragment that spreads another twice,
// 26 levels deep, is 1 KB of text and 2^26 fields). Each fragment is measured once (memoized), so
// the check is linear in the text whatever the expansion; it runs before the complexity
// calculation, which expands fragments.
type depthLimit struct{ max, maxFields int }

// extension is the limit as a gqlgen extension.
func (d depthLimit) extension() operationCheck {
	return operationCheck{name: "DepthLimit", check: d.check}
}

func (d depthLimit) check(oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	m := measure{fragments: oc.Doc.Fragments, done: map[string]shape{}}
	s := m.set(oc.Operation.SelectionSet, 0)
	if s.fields > d.maxFields {
		return &gqlerror.Error{Message: fmt.Sprintf("operation selects more than %d fields once its fragments are expanded", d.maxFields),
			Extensions: map[string]any{"code": CodeComplexityLimit}}
	}
	if s.depth > d.max {
		return &gqlerror.Error{Message: fmt.Sprintf("operation is %d levels deep: the limit is %d", s.depth, d.max),
			Extensions: map[string]any{"code": CodeDepthLimit}}
	}
	return nil
}

// shape is what an expanded selection set measures: its depth and its number of fields
// (saturating, never past maxShape).
type shape struct{ depth, fields int }

const maxShape = 1 << 40

type measure struct {
	fragments ast.FragmentDefinitionList
	done      map[string]shape // fragments measured
	visits    int              // selections looked at: linear in the text, whatever the expansion
}

func (m *measure) set(set ast.SelectionSet, nesting int) shape {
	var out shape
	m.visits += len(set)
	if nesting > 64 { // a fragment cycle (validation refuses it anyway)
		return shape{depth: nesting}
	}
	for _, sel := range set {
		var s shape
		switch x := sel.(type) {
		case *ast.Field:
			s = m.set(x.SelectionSet, nesting+1)
			s.depth++
			s.fields++
		case *ast.InlineFragment:
			s = m.set(x.SelectionSet, nesting+1)
		case *ast.FragmentSpread:
			var ok bool
			if s, ok = m.done[x.Name]; !ok {
				if f := m.fragments.ForName(x.Name); f != nil {
					s = m.set(f.SelectionSet, nesting+1)
				}
				m.done[x.Name] = s
			}
		}
		out.depth = max(out.depth, s.depth)
		out.fields = min(out.fields+s.fields, maxShape)
	}
	return out
}

// noIntrospection refuses introspection queries with a code, when introspection is off.
type noIntrospection struct{}

func (noIntrospection) ExtensionName() string                   { return "NoIntrospection" }
func (noIntrospection) Validate(graphql.ExecutableSchema) error { return nil }
func (noIntrospection) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	for _, sel := range oc.Operation.SelectionSet {
		if f, ok := sel.(*ast.Field); ok && (f.Name == "__schema" || f.Name == "__type") {
			return &gqlerror.Error{Message: "introspection is off on this gateway (GATEWAY_INTROSPECTION)",
				Extensions: map[string]any{"code": CodeIntrospectionDisabled}}
		}
	}
	return nil
}
