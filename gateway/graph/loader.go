package graph

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/orderflow/orderflow/wire"
)

type loadersKey struct{}

// loaders are one request's batching loaders.
type loaders struct {
	orders       *source[wire.Order]
	products     *source[wire.Product]
	customers    *source[wire.Customer]
	fulfillments *source[wire.Fulfillment]
}

// batchWait is how long a loader waits for the other keys of a level before it fetches (gqlgen
// resolves the elements of a list concurrently); maxBatch is the most ids of one fetch, the query
// services' limit.
const (
	batchWait = 1 * time.Millisecond
	maxBatch  = 500
)

// WithLoaders returns ctx with fresh batching loaders for one response (a query's, or one event of
// a subscription): orders asked for by id (aliases), products, customers and sagas are then
// fetched with one call per level of the query, whatever the number of orders and lines. Given
// the operation (in ctx), it starts fetching the orders the query names at its root.
func (r *Resolver) WithLoaders(ctx context.Context) context.Context {
	l := &loaders{
		orders: newSource(func(ctx context.Context, ids []string) (map[string]wire.Order, error) {
			// One id (the usual order(id)) through orders.get: PostgreSQL runs `= $1` from one cached
			// plan, `= any($1)` costs more per call. Measured ad hoc: 20k vs 12k calls/s of the bare
			// query in pgbench, and through the gateway benchmark 3.2k–4.1k vs 2.1k–2.7k queries/s.
			if len(ids) == 1 {
				o, err := one(ctx, r, wire.EndpointOrderByID, wire.OrderByID{ID: ids[0], MinPosition: minPosition(ctx, nil)})
				if o == nil {
					return nil, err
				}
				return map[string]wire.Order{o.ID: *o}, err
			}
			list, err := many(ctx, r, wire.EndpointOrdersByIDs, wire.OrdersByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			return byID(list, func(o wire.Order) string { return o.ID }), err
		}),
		products: newSource(func(ctx context.Context, ids []string) (map[string]wire.Product, error) {
			list, err := many(ctx, r, wire.EndpointProductsByIDs, wire.ProductsByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			return byID(list, func(p wire.Product) string { return p.ID }), err
		}),
		customers: newSource(func(ctx context.Context, ids []string) (map[string]wire.Customer, error) {
			list, err := many(ctx, r, wire.EndpointCustomersByIDs, wire.CustomersByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			return byID(list, func(c wire.Customer) string { return c.ID }), err
		}),
		fulfillments: newSource(func(ctx context.Context, ids []string) (map[string]wire.Fulfillment, error) {
			list, err := many(ctx, r, wire.EndpointFulfillmentsByIDs, wire.FulfillmentsByOrders{OrderIDs: ids, MinPosition: minPosition(ctx, nil)})
			return byID(list, func(f wire.Fulfillment) string { return f.OrderID }), err
		}),
	}
	prefetchRoot(ctx, l)
	return context.WithValue(ctx, loadersKey{}, l)
}

func byID[V any](list []V, id func(V) string) map[string]V {
	out := make(map[string]V, len(list))
	for _, v := range list {
		out[id(v)] = v
	}
	return out
}

func many[Req, T any](ctx context.Context, r *Resolver, endpoint wire.Endpoint[Req, []T], req Req) ([]T, error) {
	return call(ctx, r, endpoint, req)
}

// source is one kind of item for one request: a batching loader, and the items fetched ahead of
// their fields, without a batching wait, when every key is known at once (see prefetchRoot and
// prime).
type source[V any] struct {
	loader *dataloadgen.Loader[string, V]
	fetch  func(context.Context, []string) (map[string]V, error)

	mu    sync.Mutex
	ahead map[string]*fetched[V] // keys fetched ahead, to the fetch that has them
}

// fetched is one call made ahead; done is closed when items and err are set.
type fetched[V any] struct {
	done  chan struct{}
	items map[string]V
	err   error
}

func newSource[V any](fetch func(context.Context, []string) (map[string]V, error)) *source[V] {
	return &source[V]{
		loader: dataloadgen.NewMappedLoader(fetch, dataloadgen.WithWait(batchWait), dataloadgen.WithBatchCapacity(maxBatch)),
		fetch:  fetch,
		ahead:  map[string]*fetched[V]{},
	}
}

// get returns the item of key, or nil if there is none.
func (s *source[V]) get(ctx context.Context, key string) (*V, error) {
	s.mu.Lock()
	f := s.ahead[key]
	s.mu.Unlock()
	if f != nil {
		<-f.done // bounded: the fetch runs under this response's context and the call timeout
		v, found := f.items[key]
		if f.err != nil || !found {
			return nil, f.err
		}
		return &v, nil
	}
	v, err := s.loader.Load(ctx, key)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// start fetches keys now, in calls of at most maxBatch ids made in parallel, without waiting for
// them: get waits for the one it needs. Keys already fetched ahead are not asked again. Each
// call's items are handed to then, if set, before get sees them.
func (s *source[V]) start(ctx context.Context, keys []string, then func(map[string]V)) {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	s.mu.Lock()
	defer s.mu.Unlock()
	keys = slices.DeleteFunc(keys, func(k string) bool { return s.ahead[k] != nil })
	for chunk := range slices.Chunk(keys, maxBatch) {
		f := &fetched[V]{done: make(chan struct{})}
		for _, k := range chunk {
			s.ahead[k] = f
		}
		go func() {
			defer close(f.done)
			f.items, f.err = s.fetch(ctx, chunk)
			if then != nil && f.err == nil {
				then(f.items)
			}
		}()
	}
}

// prefetch hands keys to the source before its fields ask: fetched now when nothing else can
// join the batch (now), else added to the loader's next batch.
func (s *source[V]) prefetch(ctx context.Context, keys []string, now bool) {
	switch {
	case len(keys) == 0:
	case now:
		s.start(ctx, keys, nil)
	default:
		s.loader.LoadAllThunk(ctx, keys)
	}
}

// load returns the item of key from the request's loaders, or null.
func load[V any](ctx context.Context, pick func(*loaders) *source[V], key string) (*V, error) {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok {
		return nil, errNoLoaders
	}
	return pick(l).get(ctx, key)
}

var errNoLoaders = errors.New("graph: the request has no loaders (use Resolver.WithLoaders)")
