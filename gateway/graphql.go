package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/orderflow/orderflow/gateway/graph"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
)

// GraphQL error codes (extensions.code).
const (
	CodeBadUserInput = "BAD_USER_INPUT"
	CodeNotFound     = "NOT_FOUND"
	CodeConflict     = "CONFLICT"
	CodeStaleRead    = "STALE_READ"
	CodeUnavailable  = "UNAVAILABLE"
	CodeInternal     = "INTERNAL"
	// CodeUnauthenticated: no valid token; CodeForbidden: the token's role may not do this.
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	// CodeDepthLimit: the operation nests deeper than the gateway allows.
	CodeDepthLimit = "DEPTH_LIMIT_EXCEEDED"
	// CodeComplexityLimit: the operation would select more fields than the gateway allows.
	CodeComplexityLimit = "COMPLEXITY_LIMIT_EXCEEDED"
	// CodeIntrospectionDisabled: introspection is off (GATEWAY_INTROSPECTION).
	CodeIntrospectionDisabled = "INTROSPECTION_DISABLED"
)

func (g *gateway) graphQL() http.Handler {
	resolver := &graph.Resolver{NC: g.opts.NC, NS: g.opts.Namespace, Timeout: g.opts.CallTimeout, Edge: g, Meta: commandMeta, MaxLive: g.opts.Security.MaxSubscriptions}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: resolver}))
	sec := g.opts.Security
	srv.AddTransport(transport.Websocket{
		KeepAlivePingInterval: 10 * time.Second,
		InitTimeout:           10 * time.Second, // a socket that never says connection_init is closed
		Upgrader:              websocket.Upgrader{CheckOrigin: g.allowedOrigin},
		// graphql-transport-ws: the token travels in connection_init's payload.
		InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			p, err := g.principal(payload.Authorization())
			if err != nil {
				return ctx, nil, err
			}
			return g.asCaller(ctx, p), nil, nil
		},
	})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000)) // parsed and validated once per query text
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	if sec.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(noIntrospection{})
	}
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.Use(inputHygiene)
	srv.Use(&idArguments{})
	// Before the complexity limit: it expands fragments, this measures each once.
	srv.Use(depthLimit{max: sec.MaxDepth, maxFields: 10 * sec.MaxComplexity}.extension())
	// Admins' batch queries (hundreds of orders by alias) may weigh ten times a customer's.
	srv.Use(&extension.ComplexityLimit{Func: func(ctx context.Context, _ *graphql.OperationContext) int {
		if p, ok := auth.From(ctx); ok && p.IsAdmin() {
			return 10 * sec.MaxComplexity
		}
		return sec.MaxComplexity
	}})
	srv.Use(graph.Accepted{}) // last: every check above let the operation through
	// Loaders live for one response: a query's, or one event of a subscription (whose products
	// and customers must be read afresh each time).
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		start := time.Now()
		resp := next(resolver.WithLoaders(ctx))
		if graphql.HasOperationContext(ctx) { // RED: per operation, by the first error's code
			oc := graphql.GetOperationContext(ctx)
			name, typ, outcome := "anonymous", "unknown", "ok"
			if oc.OperationName != "" {
				name = oc.OperationName
			}
			if oc.Operation != nil {
				typ = string(oc.Operation.Operation)
			}
			if resp != nil && len(resp.Errors) > 0 {
				outcome = "error"
				if code, ok := resp.Errors[0].Extensions["code"].(string); ok {
					outcome = code
				}
			}
			telemetry.Observe(ctx, telemetry.GraphQLOperations.WithLabelValues(name, typ, outcome), start)
		}
		return resp
	})
	srv.SetErrorPresenter(g.presentError)
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		g.log.Error("panic in resolver", "panic", p)
		return &rpc.Error{Code: rpc.CodeInternal, Message: "internal error"}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if r.Method == http.MethodPost {
			body, refusal := readGraphQLBody(r)
			if refusal != nil {
				writeGraphQLRefusal(w, refusal)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		ctx := graph.WithConsistencyPosition(r.Context(), r.Header.Get("X-Consistency-Position"))
		srv.ServeHTTP(w, r.WithContext(ctx))
	})
}

// graphQLRefusal is a request the gateway answers before gqlgen sees it: an HTTP status and one
// GraphQL error with its code.
type graphQLRefusal struct {
	status        int
	code, message string
}

// Codes of the requests refused before they are parsed.
const (
	// CodeBatchNotSupported: the body is a JSON array of operations (a batch).
	CodeBatchNotSupported = "BATCH_NOT_SUPPORTED"
	// CodeBadRequest: the body is not one JSON object of a GraphQL request.
	CodeBadRequest = "BAD_REQUEST"
	// CodeTooLarge: the body is over MaxBodyBytes.
	CodeTooLarge = "REQUEST_TOO_LARGE"
)

// readGraphQLBody reads a POST's body and refuses what gqlgen would answer badly: a batch (a JSON
// array: gqlgen answers a 400 with code INTERNAL and its message quotes the whole body, personal
// data included), a body that is not JSON (the same), one over MaxBodyBytes, and a string with a
// lone surrogate escape. Nothing of the body is logged or echoed.
func readGraphQLBody(r *http.Request) ([]byte, *graphQLRefusal) {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &graphQLRefusal{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes)}
	case err != nil:
		return nil, &graphQLRefusal{http.StatusBadRequest, CodeBadRequest, "the body could not be read"}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return body, nil // gqlgen answers other media types (or none) itself
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		return nil, &graphQLRefusal{http.StatusBadRequest, CodeBatchNotSupported, "batched requests (a JSON array of operations) are not supported: send one operation per request, or one operation with aliases"}
	case !json.Valid(body) || len(trimmed) == 0 || trimmed[0] != '{':
		return nil, &graphQLRefusal{http.StatusBadRequest, CodeBadRequest, "the body must be one JSON object: {\"query\": …, \"variables\": …}"}
	case !utf8.Valid(body):
		return nil, &graphQLRefusal{http.StatusBadRequest, CodeBadRequest, "the body must be UTF-8"}
	case loneSurrogate(body):
		return nil, &graphQLRefusal{http.StatusBadRequest, CodeBadUserInput, `a string escapes half of a UTF-16 surrogate pair ("\ud800") on its own`}
	}
	return body, nil
}

func writeGraphQLRefusal(w http.ResponseWriter, f *graphQLRefusal) {
	w.Header().Set("Content-Type", "application/graphql-response+json")
	w.WriteHeader(f.status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"message": f.message, "extensions": map[string]any{"code": f.code}}}})
}

// presentError is the one place that maps a service error to a GraphQL error code.
func (g *gateway) presentError(ctx context.Context, err error) *gqlerror.Error {
	gerr := graphql.DefaultErrorPresenter(ctx, err)
	var e *rpc.Error
	if !errors.As(err, &e) {
		var already *gqlerror.Error
		if errors.As(err, &already) && already.Extensions != nil {
			return gerr // parse and validation errors carry gqlgen's own code
		}
		g.log.Error("graphql field failed", "path", gerr.Path.String(), "err", err)
		gerr.Message = "internal error"
		gerr.Extensions = map[string]any{"code": CodeInternal}
		return gerr
	}
	code := map[string]string{
		rpc.CodeInvalid: CodeBadUserInput, rpc.CodeNotFound: CodeNotFound, rpc.CodeConflict: CodeConflict,
		rpc.CodeStale: CodeStaleRead, rpc.CodeUnavailable: CodeUnavailable, rpc.CodeForbidden: CodeForbidden,
	}[e.Code]
	if code == "" {
		code, e.Message = CodeInternal, "internal error"
	}
	gerr.Message = e.Message
	gerr.Extensions = map[string]any{"code": code}
	if e.Field != "" {
		gerr.Extensions["field"] = e.Field
	}
	for k, v := range e.Details {
		gerr.Extensions[k] = v
	}
	return gerr
}

// allowedOrigin checks a websocket's Origin: same host, or a configured CORS origin.
func (g *gateway) allowedOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	if o := g.opts.Security.CORSOrigins; slices.Contains(o, "*") || slices.Contains(o, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
