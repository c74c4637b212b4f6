package customers

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	customersrm "github.com/orderflow/orderflow/projections/customers"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/wire"
)

// Target is the customer-queries target: the customer query service over the customers read
// model, with a cache of the customers the gateway asks for most.
var Target = projections.QueryTarget("customer-queries", customersrm.Name, func(ctx context.Context, d target.Deps, pool *pgxpool.Pool, rm progress.ReadModel) error {
	_, err := Register(ctx, d.NC, d.Namespace, d.Log, Service{Pool: pool, ReadModel: rm, Cache: progress.NewCache[string, wire.Customer](rm.Waiter, cacheSize)})
	return err
})

// cacheSize is how many customers the cache keeps.
const cacheSize = 10_000
