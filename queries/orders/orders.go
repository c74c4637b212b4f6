// Package orders is the order query service: order by id and filtered, cursor-paginated lists,
// over the orders read model's own database, served on NATS micro.
package orders

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Service answers order queries.
type Service struct {
	Pool *pgxpool.Pool
	progress.ReadModel
}

// Register serves s as the order-queries NATS micro service in namespace ns until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, s Service) (micro.Service, error) {
	srv := rpc.NewServer(ctx, nc, log.With("service", wire.ServiceOrderQueries), rpc.QueryLimits, pgerr.Classify(nil))
	return rpc.Serve(ctx, srv, micro.Config{Name: wire.ServiceOrderQueries, Version: "0.1.0", Description: "reads orders"},
		rpc.Endpoint{Name: "get", Subject: ns.Subject(wire.EndpointOrderByID), Handler: rpc.Handle(srv, "get", s.OrderByID)},
		rpc.Endpoint{Name: "get_many", Subject: ns.Subject(wire.EndpointOrdersByIDs), Handler: rpc.Handle(srv, "get_many", s.OrdersByIDs)},
		rpc.Endpoint{Name: "list", Subject: ns.Subject(wire.EndpointListOrders), Handler: rpc.Handle(srv, "list", s.List)},
	)
}
