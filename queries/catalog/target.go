package catalog

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	catalogrm "github.com/orderflow/orderflow/projections/catalog"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/wire"
)

// Target is the catalog-queries target: the catalog query service over the catalog read model,
// with a cache of the products the gateway asks for most.
var Target = projections.QueryTarget("catalog-queries", catalogrm.Name, func(ctx context.Context, d target.Deps, pool *pgxpool.Pool, rm progress.ReadModel) error {
	_, err := Register(ctx, d.NC, d.Namespace, d.Log, Service{Pool: pool, ReadModel: rm, Cache: progress.NewCache[string, wire.Product](rm.Waiter, cacheSize)})
	return err
})

// cacheSize is how many products the cache keeps: the hot part of a catalog.
const cacheSize = 10_000
