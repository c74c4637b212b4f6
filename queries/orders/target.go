package orders

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	orderrm "github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/target"
)

// Target is the order-queries target: the order query service over the orders read model, and
// the orders' timelines, read from the event store.
var Target = func() target.Target {
	t := projections.QueryTarget("order-queries", orderrm.Name, func(ctx context.Context, d target.Deps, pool *pgxpool.Pool, rm progress.ReadModel) error {
		_, err := Register(ctx, d.NC, d.Namespace, d.Log, Service{Pool: pool, ReadModel: rm, Store: d.Store})
		return err
	})
	t.EventStoreConns = 2
	return t
}()
