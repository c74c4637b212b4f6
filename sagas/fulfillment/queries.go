package fulfillment

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"log/slog"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/wire"
)

func view(st State) wire.Fulfillment {
	return wire.Fulfillment{OrderID: st.OrderID, Step: string(st.Step), Outcome: string(st.Outcome), Attempts: st.Attempts, Deadline: st.Deadline,
		LastError: st.LastError, Retries: st.Retries, Awaiting: st.Awaiting, Stuck: st.Stuck, StockHeld: st.StockHeld, PaymentAuthorized: st.PaymentAuthorized, StartedAt: st.StartedAt, UpdatedAt: st.UpdatedAt,
		Decisions: st.Decisions, CorrelationID: st.Flow.CorrelationID, TraceParent: st.Flow.TraceParent, StartedBy: st.Flow.Actor, Actor: Actor}
}

// Queries answers questions about sagas from the saga's own tables.
type Queries struct {
	Saga *Saga
	progress.ReadModel
}

// ByOrder returns an order's saga; not_found if the saga never saw the order.
func (q Queries) ByOrder(ctx context.Context, req wire.FulfillmentByOrder) (wire.Fulfillment, error) {
	if req.OrderID == "" {
		return wire.Fulfillment{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "orderId", Message: "is required"}
	}
	if err := q.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.Fulfillment{}, err
	}
	var st State
	err := q.Saga.Pool.QueryRow(ctx, `select state from fulfillment where order_id = $1`, req.OrderID).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.Fulfillment{}, rpc.Errorf(rpc.CodeNotFound, "no fulfillment for order %s", req.OrderID)
	}
	if err != nil {
		return wire.Fulfillment{}, fmt.Errorf("fulfillment %s: %w", req.OrderID, err)
	}
	if auth.Act(ctx, st.CustomerID) != nil {
		return wire.Fulfillment{}, rpc.Errorf(rpc.CodeNotFound, "no fulfillment for order %s", req.OrderID) // another customer's
	}
	return view(st), nil
}

// ByOrders returns the sagas of many orders (at most 500), in one query: the GraphQL gateway's
// batched `fulfillment` field.
func (q Queries) ByOrders(ctx context.Context, req wire.FulfillmentsByOrders) ([]wire.Fulfillment, error) {
	if len(req.OrderIDs) > 500 {
		return nil, &rpc.Error{Code: rpc.CodeInvalid, Field: "orderIds", Message: "at most 500"}
	}
	if err := q.WaitFor(ctx, req.MinPosition); err != nil {
		return nil, err
	}
	// A customer reads its own orders' sagas only.
	return q.views(ctx, `select state from fulfillment where order_id = any($1) and ($2 = '' or state->>'customerId' = $2)`, req.OrderIDs, auth.CustomerScope(ctx))
}

// List returns the most recently changed sagas, optionally of one step.
func (q Queries) List(ctx context.Context, req wire.ListFulfillments) ([]wire.Fulfillment, error) {
	first := req.First
	if first <= 0 || first > 500 {
		first = 50
	}
	return q.views(ctx, `select state from fulfillment where ($1 = '' or step = $1) and (not $3 or stuck) order by updated_at desc limit $2`, req.Step, first, req.Stuck)
}

// views runs a query of saga states and answers their views.
func (q Queries) views(ctx context.Context, query string, args ...any) ([]wire.Fulfillment, error) {
	rows, err := q.Saga.Pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("fulfillments: %w", err)
	}
	defer rows.Close()
	out := []wire.Fulfillment{}
	for rows.Next() {
		var st State
		if err := rows.Scan(&st); err != nil {
			return nil, err
		}
		out = append(out, view(st))
	}
	return out, rows.Err()
}

// Counts returns the saga's figures, without reading every saga: the finished ones are counted by
// the transactions that finish them (fulfillment_outcomes); those in flight (fulfillment_by_step)
// and the stuck (fulfillment_stuck) are few.
func (q Queries) Counts(ctx context.Context, _ struct{}) (wire.FulfillmentCounts, error) {
	var c wire.FulfillmentCounts
	err := q.Saga.Pool.QueryRow(ctx, `select
  (select count(*) from fulfillment where step = any($1::text[])),
  coalesce((select sum(sagas) from fulfillment_outcomes where outcome = $2), 0)::bigint,
  coalesce((select sum(sagas) from fulfillment_outcomes where outcome = $3), 0)::bigint,
  coalesce((select sum(sagas) from fulfillment_outcomes where outcome = $4), 0)::bigint,
  (select count(*) from fulfillment where stuck),
  (select count(*) from fulfillment_outbox)`,
		inFlight, string(OutcomeConfirmed), string(OutcomeCompensated), string(OutcomeTimedOut),
	).Scan(&c.InFlight, &c.Confirmed, &c.Compensated, &c.TimedOut, &c.Stuck, &c.Outbox)
	return c, err
}

// Register serves q as the sagas NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, q Queries) (micro.Service, error) {
	return projections.QueryService(wire.ServiceSagas, "process managers: order fulfillment", ns).Serve(ctx, nc, log,
		rpc.On("fulfillment", wire.EndpointFulfillment, q.ByOrder),
		rpc.On("fulfillments_by_orders", wire.EndpointFulfillmentsByIDs, q.ByOrders),
		rpc.Staff(rpc.On("fulfillments", wire.EndpointFulfillments, q.List)),
		rpc.Staff(rpc.On("counts", wire.EndpointFulfillmentCounts, q.Counts)),
	)
}
