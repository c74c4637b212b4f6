// Package graph is the gateway's GraphQL layer: the gqlgen-generated executable schema
// (generated.go, models_gen.go: never edit) and the resolvers, which read through the query
// services over NATS.
package graph

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/rpc"
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

// one asks a query service for one item; not found is null, not an error.
func one[T any](ctx context.Context, r *Resolver, endpoint string, req any) (*T, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	v, err := rpc.Call[T](ctx, r.NC, r.NS.Subject(endpoint), req)
	var rerr *rpc.Error
	if errors.As(err, &rerr) && rerr.Code == rpc.CodeNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// pageArgs checks first (1 to 100) and copies the page arguments into a request.
func pageArgs(first *int64, after *string, toFirst *int, toAfter *string) error {
	if first != nil {
		if *first < 1 || *first > 100 {
			return &rpc.Error{Code: rpc.CodeInvalid, Field: "first", Message: "must be between 1 and 100"}
		}
		*toFirst = int(*first)
	}
	if after != nil && toAfter != nil {
		*toAfter = *after
	}
	return nil
}

func pageInfo(end string, more bool) *PageInfo {
	p := &PageInfo{HasNextPage: more}
	if end != "" {
		p.EndCursor = &end
	}
	return p
}

// orders lists orders as a connection.
func (r *Resolver) orders(ctx context.Context, req wire.ListOrders, first *int64, after *string) (*OrderConnection, error) {
	if err := pageArgs(first, after, &req.First, &req.After); err != nil {
		return nil, err
	}
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	page, err := rpc.Call[wire.OrderPage](ctx, r.NC, r.NS.Subject(wire.EndpointListOrders), req)
	if err != nil {
		return nil, err
	}
	conn := &OrderConnection{PageInfo: pageInfo(page.EndCursor, page.HasNextPage), Edges: []*OrderEdge{}, Nodes: []*wire.Order{}}
	for i := range page.Orders {
		o := &page.Orders[i]
		conn.Nodes = append(conn.Nodes, o)
		conn.Edges = append(conn.Edges, &OrderEdge{Node: o, Cursor: page.Cursors[i]})
	}
	return conn, nil
}
