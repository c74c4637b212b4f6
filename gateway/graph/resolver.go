// Package graph is the gateway's GraphQL layer: the gqlgen-generated executable schema
// (generated.go, models_gen.go: never edit) and the resolvers, which read through the query
// services over NATS.
package graph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/orderflow/orderflow/gateway/api"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// Resolver is the root resolver. Its dependencies are set once, at start.
type Resolver struct {
	NC *nats.Conn
	NS wire.Namespace
	// Timeout bounds each call to a query service, consistency wait included.
	Timeout time.Duration
	// Edge sends the mutations' commands (api.Command) to their services, as REST does; Meta is
	// a command's identity for its scope (operation and id) and idempotency key, as REST's.
	Edge api.Edge
	Meta func(ctx context.Context, scope, idempotencyKey string) wire.CommandMeta
	// MaxLive bounds the live subscriptions this gateway serves at once (default 5,000): past it,
	// a new subscription is refused with UNAVAILABLE.
	MaxLive int

	liveMu sync.Mutex
	live   *hub // the live queries' announcements, once one has started
}

// caller is the request's principal; without one (authentication off), an admin.
func caller(ctx context.Context) auth.Principal {
	if p, ok := auth.From(ctx); ok {
		return p
	}
	return auth.Principal{Subject: "anonymous", Role: auth.Admin}
}

// mutate carries out command c on id with body as the REST API does (the same authorization,
// command identity and answer); the idempotency key makes a retry the same command.
func mutate[B, Req, Resp any](ctx context.Context, r *Resolver, c *api.Command[B, Req, Resp], id string, body *B, idempotencyKey *string) (*CommandResult, error) {
	res, err := execute(ctx, r, c, id, body, idempotencyKey)
	if err != nil {
		return nil, err
	}
	return &CommandResult{ID: res.ID, Position: res.Position}, nil
}

// execute is mutate's work, answering the command's whole result (its receipt, if it has one).
func execute[B, Req, Resp any](ctx context.Context, r *Resolver, c *api.Command[B, Req, Resp], id string, body *B, idempotencyKey *string) (api.Result, error) {
	key := ""
	if idempotencyKey != nil {
		key = *idempotencyKey
	}
	if len(key) > 255 {
		return api.Result{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "idempotencyKey", Message: "must be at most 255 characters"}
	}
	res, err := api.Execute(ctx, r.Edge, c, id, body, r.Meta(ctx, c.Doc.ID+":"+id, key))
	var p *api.Problem
	if errors.As(err, &p) {
		return api.Result{}, refused(p)
	}
	return res, err
}

// refused turns the edge's refusal of a command into the GraphQL error of the same kind.
func refused(p *api.Problem) error {
	code := "BAD_USER_INPUT"
	if p.Status == http.StatusForbidden {
		code = "FORBIDDEN"
	}
	ext := map[string]any{"code": code}
	if p.Field != "" {
		ext["field"] = p.Field
	}
	return &gqlerror.Error{Message: p.Detail, Extensions: ext}
}

// forbidden is a FORBIDDEN GraphQL error.
func forbidden(msg string) error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": "FORBIDDEN"}}
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

// call asks a service's endpoint, within the resolver's timeout.
func call[Req, T any](ctx context.Context, r *Resolver, endpoint wire.Endpoint[Req, T], req Req) (T, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	return rpc.Ask(ctx, r.NC, r.NS, endpoint, req)
}

// one asks a query service for one item; not found is null, not an error.
func one[Req, T any](ctx context.Context, r *Resolver, endpoint wire.Endpoint[Req, T], req Req) (*T, error) {
	v, err := call(ctx, r, endpoint, req)
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
// firstArg puts a `first` argument, 1 to max, into to; absent, it leaves to as it is.
func firstArg(first *int64, max int, to *int) error {
	if first == nil {
		return nil
	}
	if *first < 1 || *first > int64(max) {
		return &rpc.Error{Code: rpc.CodeInvalid, Field: "first", Message: fmt.Sprintf("must be between 1 and %d", max)}
	}
	*to = int(*first)
	return nil
}

func pageArgs(first *int64, after *string, toFirst *int, toAfter *string) error {
	if err := firstArg(first, 100, toFirst); err != nil {
		return err
	}
	if after != nil && toAfter != nil {
		*toAfter = *after
	}
	return nil
}

// pageInfo is a forward page's PageInfo: its items' cursors, whether more follow, and whether it
// started after a cursor (then pages come before it).
func pageInfo(cursors []string, end string, more bool, after string) *PageInfo {
	p := &PageInfo{HasNextPage: more, HasPreviousPage: after != ""}
	if end != "" {
		p.EndCursor = &end
	}
	if len(cursors) > 0 {
		p.StartCursor = &cursors[0]
	}
	return p
}

// orders lists orders as a connection.
func (r *Resolver) orders(ctx context.Context, req wire.ListOrders, first *int64, after *string) (*OrderConnection, error) {
	if err := pageArgs(first, after, &req.First, &req.After); err != nil {
		return nil, err
	}
	page, err := call(ctx, r, wire.EndpointListOrders, req)
	if err != nil {
		return nil, err
	}
	prime(ctx, page.Orders)
	conn := &OrderConnection{PageInfo: pageInfo(page.Cursors, page.EndCursor, page.HasNextPage, req.After)}
	conn.Nodes, conn.Edges = edges(page.Orders, page.Cursors, func(o *wire.Order, c string) *OrderEdge { return &OrderEdge{Node: o, Cursor: c} })
	return conn, nil
}

// edges returns the items of a page as a connection's nodes, and as its edges with their cursors.
func edges[T, E any](items []T, cursors []string, edge func(node *T, cursor string) E) ([]*T, []E) {
	nodes, out := make([]*T, len(items)), make([]E, len(items))
	for i := range items {
		nodes[i], out[i] = &items[i], edge(&items[i], cursors[i])
	}
	return nodes, out
}

// discoveryWait is how long the services field collects discovery answers.
const discoveryWait = 300 * time.Millisecond

// admin calls an operators' endpoint (the projections service) for an admin caller only.
func admin[Req, T any](ctx context.Context, r *Resolver, endpoint wire.Endpoint[Req, T], req Req) (*T, error) {
	if !caller(ctx).IsAdmin() {
		return nil, forbidden("for admins only")
	}
	v, err := call(ctx, r, endpoint, req)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func pointers[T any](list []T) []*T {
	out := make([]*T, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out
}

// prime hands the request's loaders every customer, product and saga a list of orders will ask
// for, at once, when the query selects them: each is then fetched in one batch whatever the
// order in which the field resolvers run (they run concurrently, and a busy machine spreads
// them past any batching wait). Under the operation's only root field nothing else can join
// those batches: they are fetched at once, without the batching wait.
func prime(ctx context.Context, orders []wire.Order) {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	fc := graphql.GetFieldContext(ctx)
	if !ok || fc == nil {
		return
	}
	primeChildren(ctx, l, orders, fc.Field.Selections, fc.Object == "Query" && alone(ctx))
}

// primeChildren hands l the customers, products and sagas of orders that sel selects.
func primeChildren(ctx context.Context, l *loaders, orders []wire.Order, sel ast.SelectionSet, now bool) {
	frags := graphql.GetOperationContext(ctx).Doc.Fragments
	var customers, products, ids []string
	wantCustomers, wantProducts, wantSagas := selects(sel, frags, "customer"), selects(sel, frags, "product"), selects(sel, frags, "fulfillment")
	for _, o := range orders {
		if wantCustomers {
			customers = append(customers, o.CustomerID)
		}
		if wantProducts {
			for _, line := range o.Lines {
				products = append(products, line.ProductID)
			}
		}
		if wantSagas {
			ids = append(ids, o.ID)
		}
	}
	l.customers.prefetch(ctx, customers, now)
	l.products.prefetch(ctx, products, now)
	l.fulfillments.prefetch(ctx, ids, now)
}

// prefetchRoot starts, before any resolver runs, the fetch of every order a query names at its
// root (`order(id: ...)`, aliases included, with no position of their own), in one call, and
// once they are in, the fetch of their customers, products and sagas the query selects: one
// call per service, none waiting for a batching window, whatever the number of aliases.
func prefetchRoot(ctx context.Context, l *loaders) {
	if !graphql.HasOperationContext(ctx) {
		return
	}
	op := graphql.GetOperationContext(ctx)
	if op.Operation == nil || op.Operation.Operation != ast.Query || op.Stats.GetExtension(acceptedKey) == nil {
		return // a refused operation is answered through the loaders too: fetch nothing for it
	}
	var ids []string
	var sel ast.SelectionSet
	for _, s := range op.Operation.SelectionSet {
		f, ok := s.(*ast.Field)
		if !ok || f.Name != "order" || f.Arguments.ForName("consistentWith") != nil || f.Arguments.ForName("id") == nil {
			continue
		}
		v, err := f.Arguments.ForName("id").Value.Value(op.Variables)
		if id, ok := v.(string); err == nil && ok {
			ids = append(ids, id)
			sel = append(sel, f.SelectionSet...)
		}
	}
	if len(ids) == 0 {
		return
	}
	// The children are asked for before the orders' fields can see them, so none of their
	// resolvers reaches a loader first.
	l.orders.start(ctx, ids, func(found map[string]wire.Order) {
		primeChildren(ctx, l, slices.Collect(maps.Values(found)), sel, true)
	})
}

// alone reports whether the operation selects exactly one root field (so no sibling resolver
// runs beside it to batch with).
func alone(ctx context.Context) bool {
	op := graphql.GetOperationContext(ctx).Operation
	if op == nil || len(op.SelectionSet) != 1 {
		return false
	}
	_, field := op.SelectionSet[0].(*ast.Field)
	return field
}

// selects reports whether a field called name is selected anywhere under set.
func selects(set ast.SelectionSet, frags ast.FragmentDefinitionList, name string) bool {
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			if s.Name == name || selects(s.SelectionSet, frags, name) {
				return true
			}
		case *ast.InlineFragment:
			if selects(s.SelectionSet, frags, name) {
				return true
			}
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil && selects(f.SelectionSet, frags, name) {
				return true
			}
		}
	}
	return false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// address is a GraphQL address input as the commands take it (nil: an empty one, which the
// domain refuses field by field).
func address(a *AddressInput) wire.Address {
	if a == nil {
		return wire.Address{}
	}
	return wire.Address{Line1: a.Line1, Line2: deref(a.Line2), City: a.City, PostalCode: a.PostalCode, Country: a.Country}
}

// withDecisions adds a saga's decisions to an order's timeline, as entries of the saga's own stream
// (sortTimeline puts them in place).
func withDecisions(entries []*wire.TimelineEntry, f wire.Fulfillment) []*wire.TimelineEntry {
	traceID := telemetry.TraceID(f.TraceParent)
	out := slices.Clone(entries)
	for _, d := range f.Decisions {
		summary := strings.ToLower(d.Step)
		if len(d.Sent) > 0 {
			summary += ": sent " + strings.Join(d.Sent, ", ")
		}
		if d.Retry > 0 {
			summary += fmt.Sprintf(" (re-send %d)", d.Retry)
		}
		if d.Stuck {
			summary += "; stuck, waits for an operator"
		}
		if d.Error != "" {
			summary += "; " + d.Error
		}
		out = append(out, &wire.TimelineEntry{At: d.At, Stream: "fulfillment-" + f.OrderID, Type: "saga." + strings.ToLower(d.Step),
			CorrelationID: f.CorrelationID, TraceID: traceID, Actor: "saga:fulfillment", Summary: summary})
	}
	return out
}

// withParked adds to an order's timeline the parking of any of its events by a read model (when
// the projections service answers; a timeline without them is still the order's).
func withParked(ctx context.Context, r *Resolver, entries []*wire.TimelineEntry) []*wire.TimelineEntry {
	at := map[string]*wire.TimelineEntry{}
	for _, e := range entries {
		if e.Position != "" {
			at[e.Position] = e
		}
	}
	list, err := admin(ctx, r, wire.EndpointProjectionsList, struct{}{})
	if err != nil {
		return entries
	}
	out := entries
	for _, p := range *list {
		if p.Parked == 0 {
			continue
		}
		parked, err := admin(ctx, r, wire.EndpointProjectionParked, wire.ProjectionName{Name: p.Name})
		if err != nil {
			continue
		}
		for _, pe := range *parked {
			if e := at[pe.Position]; e != nil {
				out = append(out, &wire.TimelineEntry{At: pe.ParkedAt, Stream: "projection-" + p.Name, Type: "parked", CorrelationID: e.CorrelationID,
					TraceID: e.TraceID, Actor: "projector:" + p.Name,
					Summary: fmt.Sprintf("%s at %s parked by %s after %d attempts: %s", pe.Type, pe.Position, p.Name, pe.Attempts, pe.Error)})
			}
		}
	}
	return out
}

// sortTimeline keeps the log's events in log order and puts each of the other entries (the saga's
// decisions, parkings: no position) in time order after the events of its instant.
func sortTimeline(entries []*wire.TimelineEntry) []*wire.TimelineEntry {
	var events, others []*wire.TimelineEntry
	for _, e := range entries {
		if e.Position != "" {
			events = append(events, e)
		} else {
			others = append(others, e)
		}
	}
	slices.SortStableFunc(others, func(a, b *wire.TimelineEntry) int { return a.At.Compare(b.At) })
	out := make([]*wire.TimelineEntry, 0, len(entries))
	for _, e := range events {
		for len(others) > 0 && others[0].At.Before(e.At) {
			out, others = append(out, others[0]), others[1:]
		}
		out = append(out, e)
	}
	return append(out, others...)
}

// acceptedKey marks, in an operation's stats, that every check of the gateway let it through.
const acceptedKey = "orderflow.accepted"

// Accepted is the gqlgen extension, used after every other check, that marks an operation
// accepted: only then does prefetchRoot fetch its orders. gqlgen answers a refused operation
// through the response middleware too, so without it the orders a refused query named (an id
// with a NUL, one outside the safe set, an operation over the depth limit) were fetched anyway.
type Accepted struct{}

// ExtensionName implements graphql.HandlerExtension.
func (Accepted) ExtensionName() string { return "Accepted" }

// Validate implements graphql.HandlerExtension.
func (Accepted) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (Accepted) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	oc.Stats.SetExtension(acceptedKey, true)
	return nil
}
