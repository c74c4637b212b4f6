package orders

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/projections/activity"
	orderrm "github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/target"
)

// Target is the order-queries target: the order query service over the orders read model, the
// orders' timelines, read from the event store, and what each actor did (the activity read model).
var Target = func() target.Target {
	t := projections.QueryTarget("order-queries", orderrm.Name, func(ctx context.Context, d target.Deps, pool *pgxpool.Pool, rm progress.ReadModel) error {
		apool := d.ReadPool(activity.Name)
		w, err := projections.Follow(d.NC, d.Namespace, apool, activity.Name)
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, w.Close)
		act := &Activity{Pool: apool, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: d.ConsistencyTimeout}}
		_, err = Register(ctx, d.NC, d.Namespace, d.Log, Service{Pool: pool, ReadModel: rm, Store: d.Store, Activity: act})
		return err
	})
	t.EventStoreConns = 2
	t.Databases = append(t.Databases, target.Database{Schema: activity.Name, Conns: 2, Reads: true})
	return t
}()
