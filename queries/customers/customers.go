// Package customers is the customer query service: a customer's profile with their number of
// orders and lifetime spend, over the customers read model.
package customers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
)

// Service answers customer queries.
type Service struct {
	Pool *pgxpool.Pool
	progress.ReadModel
}

// CustomerByID returns a customer; not_found if none is registered under id. The lifetime spend
// counts every order not cancelled.
func (s Service) CustomerByID(ctx context.Context, req wire.CustomerByID) (wire.Customer, error) {
	if req.ID == "" {
		return wire.Customer{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "id", Message: "is required"}
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.Customer{}, err
	}
	var c wire.Customer
	err := s.Pool.QueryRow(ctx, `select c.customer_id, c.name, c.email, c.shipping_address, c.active, c.registered_at,
       coalesce(o.n, 0), coalesce(o.spend, 0)
  from customers c
  left join (select customer_id, count(*) n, sum(total_cents) filter (where not cancelled) spend
               from customer_orders where customer_id = $1 group by customer_id) o using (customer_id)
 where c.customer_id = $1`, req.ID).Scan(&c.ID, &c.Name, &c.Email, &c.Address, &c.Active, &c.RegisteredAt, &c.OrderCount, &c.LifetimeSpendCents)
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.Customer{}, rpc.Errorf(rpc.CodeNotFound, "customer %s not found", req.ID)
	}
	if err != nil {
		return wire.Customer{}, fmt.Errorf("customer %s: %w", req.ID, err)
	}
	return c, nil
}

// Register serves s as the customer-queries NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, s Service) (micro.Service, error) {
	srv := rpc.NewServer(ctx, nc, log.With("service", wire.ServiceCustomerQueries), 128, 10*time.Second, nil)
	return rpc.Serve(ctx, srv, micro.Config{Name: wire.ServiceCustomerQueries, Version: "0.1.0", Description: "reads customers"},
		rpc.Endpoint{Name: "get", Subject: ns.Subject(wire.EndpointCustomerByID), Handler: rpc.Handle(srv, "get", s.CustomerByID)},
	)
}
