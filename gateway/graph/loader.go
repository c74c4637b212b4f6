package graph

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
)

// loader batches the loads of one kind of item within one request: the keys asked while the
// request resolves one level of its query (gqlgen resolves list elements concurrently) are fetched
// in one call, after a short wait for the others. Each key is fetched once per request.
type loader[K comparable, V any] struct {
	fetch func(ctx context.Context, keys []K) (map[K]V, error)
	wait  time.Duration

	mu      sync.Mutex
	cache   map[K]*entry[V]
	pending []K
	timer   *time.Timer
}

type entry[V any] struct {
	done  chan struct{}
	value V
	found bool
	err   error
}

func newLoader[K comparable, V any](wait time.Duration, fetch func(context.Context, []K) (map[K]V, error)) *loader[K, V] {
	return &loader[K, V]{fetch: fetch, wait: wait, cache: map[K]*entry[V]{}}
}

// Load returns the item of key, found false if there is none.
func (l *loader[K, V]) Load(ctx context.Context, key K) (V, bool, error) {
	l.mu.Lock()
	e, ok := l.cache[key]
	if !ok {
		e = &entry[V]{done: make(chan struct{})}
		l.cache[key] = e
		l.pending = append(l.pending, key)
		if l.timer == nil {
			l.timer = time.AfterFunc(l.wait, func() { l.flush(context.WithoutCancel(ctx)) })
		}
	}
	l.mu.Unlock()
	select {
	case <-e.done:
		return e.value, e.found, e.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

func (l *loader[K, V]) flush(ctx context.Context) {
	l.mu.Lock()
	keys := l.pending
	l.pending, l.timer = nil, nil
	entries := make([]*entry[V], len(keys))
	for i, k := range keys {
		entries[i] = l.cache[k]
	}
	l.mu.Unlock()
	values, err := l.fetch(ctx, keys)
	for i, k := range keys {
		e := entries[i]
		e.value, e.found = values[k]
		e.err = err
		close(e.done)
	}
}

type loadersKey struct{}

// loaders are one request's batching loaders.
type loaders struct {
	products  *loader[string, wire.Product]
	customers *loader[string, wire.Customer]
}

// batchWait is how long a loader waits for the other keys of a level before it fetches.
const batchWait = 2 * time.Millisecond

// WithLoaders returns ctx with fresh batching loaders for one request: products and customers are
// then fetched with one call per level of the query, whatever the number of orders and lines.
func (r *Resolver) WithLoaders(ctx context.Context) context.Context {
	l := &loaders{
		products: newLoader(batchWait, func(ctx context.Context, ids []string) (map[string]wire.Product, error) {
			list, err := many[wire.Product](ctx, r, wire.EndpointProductsByIDs, wire.ProductsByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			out := make(map[string]wire.Product, len(list))
			for _, p := range list {
				out[p.ID] = p
			}
			return out, err
		}),
		customers: newLoader(batchWait, func(ctx context.Context, ids []string) (map[string]wire.Customer, error) {
			list, err := many[wire.Customer](ctx, r, wire.EndpointCustomersByIDs, wire.CustomersByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			out := make(map[string]wire.Customer, len(list))
			for _, c := range list {
				out[c.ID] = c
			}
			return out, err
		}),
	}
	return context.WithValue(ctx, loadersKey{}, l)
}

func many[T any](ctx context.Context, r *Resolver, endpoint string, req any) ([]T, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	return rpc.Call[[]T](ctx, r.NC, r.NS.Subject(endpoint), req)
}

// load returns the item of key from the request's loader, or null.
func load[V any](ctx context.Context, pick func(*loaders) *loader[string, V], key string) (*V, error) {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok {
		return nil, errNoLoaders
	}
	v, found, err := pick(l).Load(ctx, key)
	if err != nil || !found {
		return nil, err
	}
	return &v, nil
}

var errNoLoaders = errors.New("graph: the request has no loaders (use Resolver.WithLoaders)")
