// Package customers is the customer query service: a customer's profile with their number of
// orders and lifetime spend, over the customers read model.
package customers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/wire"
)

// Service answers customer queries.
type Service struct {
	Pool *pgxpool.Pool
	progress.ReadModel
	// Cache, if set, keeps customers between get_many calls (see progress.Cache).
	Cache *progress.Cache[string, wire.Customer]
}

// CustomerByID returns a customer; not_found if none is registered under id. The lifetime spend
// counts every order not cancelled.
func (s Service) CustomerByID(ctx context.Context, req wire.CustomerByID) (wire.Customer, error) {
	if req.ID == "" {
		return wire.Customer{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "id", Message: "is required"}
	}
	if auth.Act(ctx, req.ID) != nil {
		return wire.Customer{}, rpc.Errorf(rpc.CodeNotFound, "customer %s not found", req.ID) // another customer
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.Customer{}, err
	}
	list, err := s.list(ctx, []string{req.ID})
	if err != nil {
		return wire.Customer{}, fmt.Errorf("customer %s: %w", req.ID, err)
	}
	if len(list) == 0 {
		return wire.Customer{}, rpc.Errorf(rpc.CodeNotFound, "customer %s not found", req.ID)
	}
	return list[0], nil
}

// CustomersByIDs returns the customers of ids that exist, in one query: for batched readers.
func (s Service) CustomersByIDs(ctx context.Context, req wire.CustomersByIDs) ([]wire.Customer, error) {
	if len(req.IDs) > 500 {
		return nil, &rpc.Error{Code: rpc.CodeInvalid, Field: "ids", Message: "at most 500 ids"}
	}
	if scope := auth.CustomerScope(ctx); scope != "" { // a customer reads its own profile only
		req.IDs = slices.DeleteFunc(slices.Clone(req.IDs), func(id string) bool { return id != scope })
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return nil, err
	}
	cached, missing := s.Cache.Get(req.IDs)
	if len(missing) == 0 && cached != nil {
		return cached, nil
	}
	read, at, err := s.listAt(ctx, missing)
	if err != nil {
		return nil, err
	}
	if !at.IsZero() {
		rows := make(map[string]wire.Customer, len(read))
		for _, c := range read {
			rows[c.ID] = c
		}
		s.Cache.Put(at, rows)
	}
	return append(cached, read...), nil
}

func (s Service) list(ctx context.Context, ids []string) ([]wire.Customer, error) {
	out, _, err := s.listAt(ctx, ids)
	return out, err
}

// listAt reads customers and the checkpoint they reflect, in one snapshot.
func (s Service) listAt(ctx context.Context, ids []string) ([]wire.Customer, eventstore.Position, error) {
	var at eventstore.Position
	rows, err := s.Pool.Query(ctx, `select c.customer_id, c.name, c.email, c.shipping_address, c.active, c.erased, c.registered_at,
       coalesce(o.n, 0), coalesce(o.spend, 0), cp.commit_position, cp.prepare_position
  from customers c
  left join lateral (select commit_position, prepare_position from projection_checkpoints where name = 'customers'
    order by commit_position, prepare_position limit 1) cp on true
  left join (select customer_id, count(*) n, sum(total_cents) filter (where not cancelled) spend
               from customer_orders where customer_id = any($1) group by customer_id) o using (customer_id)
 where c.customer_id = any($1)`, ids)
	if err != nil {
		return nil, at, err
	}
	defer rows.Close()
	out := []wire.Customer{}
	for rows.Next() {
		var c wire.Customer
		var cc, cp *int64
		if err := rows.Scan(&c.ID, &c.Name, &c.Email, &c.Address, &c.Active, &c.Erased, &c.RegisteredAt, &c.OrderCount, &c.LifetimeSpendCents, &cc, &cp); err != nil {
			return nil, at, err
		}
		if cc != nil && cp != nil {
			at = eventstore.Position{Commit: uint64(*cc), Prepare: uint64(*cp)}
		}
		out = append(out, c)
	}
	return out, at, rows.Err()
}

// Register serves s as the customer-queries NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, s Service) (micro.Service, error) {
	return projections.QueryService(wire.ServiceCustomerQueries, "reads customers", ns).Serve(ctx, nc, log,
		rpc.On("get", wire.EndpointCustomerByID, s.CustomerByID),
		rpc.On("get_many", wire.EndpointCustomersByIDs, s.CustomersByIDs),
	)
}
