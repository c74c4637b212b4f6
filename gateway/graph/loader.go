package graph

import (
	"context"
	"errors"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
)

type loadersKey struct{}

// loaders are one request's batching loaders.
type loaders struct {
	products     *dataloadgen.Loader[string, wire.Product]
	customers    *dataloadgen.Loader[string, wire.Customer]
	fulfillments *dataloadgen.Loader[string, wire.Fulfillment]
}

// batchWait is how long a loader waits for the other keys of a level before it fetches (gqlgen
// resolves the elements of a list concurrently); maxBatch is the most ids of one fetch, the query
// services' limit.
const (
	batchWait = 1 * time.Millisecond
	maxBatch  = 500
)

// WithLoaders returns ctx with fresh batching loaders for one request: products, customers and
// sagas are then fetched with one call per level of the query, whatever the number of orders and
// lines.
func (r *Resolver) WithLoaders(ctx context.Context) context.Context {
	l := &loaders{
		products: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []string) (map[string]wire.Product, error) {
			list, err := many[wire.Product](ctx, r, wire.EndpointProductsByIDs, wire.ProductsByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			out := make(map[string]wire.Product, len(list))
			for _, p := range list {
				out[p.ID] = p
			}
			return out, err
		}, dataloadgen.WithWait(batchWait), dataloadgen.WithBatchCapacity(maxBatch)),
		customers: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []string) (map[string]wire.Customer, error) {
			list, err := many[wire.Customer](ctx, r, wire.EndpointCustomersByIDs, wire.CustomersByIDs{IDs: ids, MinPosition: minPosition(ctx, nil)})
			out := make(map[string]wire.Customer, len(list))
			for _, c := range list {
				out[c.ID] = c
			}
			return out, err
		}, dataloadgen.WithWait(batchWait), dataloadgen.WithBatchCapacity(maxBatch)),
		fulfillments: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []string) (map[string]wire.Fulfillment, error) {
			list, err := many[wire.Fulfillment](ctx, r, wire.EndpointFulfillmentsByIDs, wire.FulfillmentsByOrders{OrderIDs: ids, MinPosition: minPosition(ctx, nil)})
			out := make(map[string]wire.Fulfillment, len(list))
			for _, f := range list {
				out[f.OrderID] = f
			}
			return out, err
		}, dataloadgen.WithWait(batchWait), dataloadgen.WithBatchCapacity(maxBatch)),
	}
	return context.WithValue(ctx, loadersKey{}, l)
}

func many[T any](ctx context.Context, r *Resolver, endpoint string, req any) ([]T, error) {
	ctx, cancel := r.callCtx(ctx)
	defer cancel()
	return rpc.Call[[]T](ctx, r.NC, r.NS.Subject(endpoint), req)
}

// load returns the item of key from the request's loader, or null.
func load[V any](ctx context.Context, pick func(*loaders) *dataloadgen.Loader[string, V], key string) (*V, error) {
	l, ok := ctx.Value(loadersKey{}).(*loaders)
	if !ok {
		return nil, errNoLoaders
	}
	v, err := pick(l).Load(ctx, key)
	if errors.Is(err, dataloadgen.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

var errNoLoaders = errors.New("graph: the request has no loaders (use Resolver.WithLoaders)")
