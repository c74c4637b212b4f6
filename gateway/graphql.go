package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/orderflow/orderflow/gateway/graph"
	"github.com/orderflow/orderflow/internal/rpc"
)

// GraphQL error codes (extensions.code).
const (
	CodeBadUserInput = "BAD_USER_INPUT"
	CodeNotFound     = "NOT_FOUND"
	CodeConflict     = "CONFLICT"
	CodeStaleRead    = "STALE_READ"
	CodeUnavailable  = "UNAVAILABLE"
	CodeInternal     = "INTERNAL"
)

func (g *gateway) graphQL() http.Handler {
	resolver := &graph.Resolver{NC: g.opts.NC, NS: g.opts.Namespace, Timeout: g.opts.CallTimeout}
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: resolver}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.Use(extension.Introspection{})
	srv.SetErrorPresenter(g.presentError)
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		g.log.Error("panic in resolver", "panic", p)
		return &rpc.Error{Code: rpc.CodeInternal, Message: "internal error"}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		ctx := graph.WithConsistencyPosition(r.Context(), r.Header.Get("X-Consistency-Position"))
		ctx = resolver.WithLoaders(ctx)
		srv.ServeHTTP(w, r.WithContext(ctx))
	})
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
		rpc.CodeStale: CodeStaleRead, rpc.CodeUnavailable: CodeUnavailable,
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
