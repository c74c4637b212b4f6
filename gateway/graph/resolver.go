// Package graph is the gateway's GraphQL layer: the gqlgen-generated executable schema
// (generated.go, models_gen.go: never edit) and the resolvers, which read through the query
// services over NATS.
package graph

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/wire"
)

// Resolver is the root resolver. Its dependencies are set once, at start.
type Resolver struct {
	NC *nats.Conn
	NS wire.Namespace
	// Timeout bounds each call to a query service, consistency wait included.
	Timeout time.Duration
}

type consistencyKey struct{}

// WithConsistencyPosition returns ctx carrying the position from the X-Consistency-Position
// header: every field of the request then reads at or past it.
func WithConsistencyPosition(ctx context.Context, pos string) context.Context {
	return context.WithValue(ctx, consistencyKey{}, pos)
}

// minPosition is the field's consistentWith argument, or else the request's header.
func minPosition(ctx context.Context, arg *string) string {
	if arg != nil && *arg != "" {
		return *arg
	}
	pos, _ := ctx.Value(consistencyKey{}).(string)
	return pos
}

func (r *Resolver) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	t := r.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	return context.WithTimeout(ctx, t)
}
