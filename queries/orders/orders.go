// Package orders is the order query service: order by id and filtered, cursor-paginated lists,
// over the orders read model's own database, served on NATS micro.
package orders

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/wire"
)

// Service answers order queries.
type Service struct {
	Pool *pgxpool.Pool
	progress.ReadModel
	// Store is the event store the timelines are read from.
	Store eventstore.Store
	// Activity, if set, answers what an actor did (ActorActivity).
	Activity *Activity
}

// Register serves s as the order-queries NATS micro service in namespace ns until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, s Service) (micro.Service, error) {
	return projections.QueryService(wire.ServiceOrderQueries, "reads orders", ns).Serve(ctx, nc, log,
		rpc.On("get", wire.EndpointOrderByID, s.OrderByID),
		rpc.On("get_many", wire.EndpointOrdersByIDs, s.OrdersByIDs),
		rpc.On("list", wire.EndpointListOrders, s.List),
		rpc.On("timeline", wire.EndpointOrderTimeline, s.OrderTimeline),
		rpc.Staff(rpc.On("activity", wire.EndpointActorActivity, s.ActorActivity)),
	)
}
