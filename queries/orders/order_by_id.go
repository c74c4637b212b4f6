package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

const orderColumns = `order_id, customer_id, status, total_cents, lines, placed_at, updated_at, cancelled_at, cancel_reason`

// OrderByID returns one order; not_found if the read model has no such order.
func (s Service) OrderByID(ctx context.Context, req wire.OrderByID) (wire.Order, error) {
	if req.ID == "" {
		return wire.Order{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "id", Message: "is required"}
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.Order{}, err
	}
	var o wire.Order
	err := s.Pool.QueryRow(ctx, selectOrders+`where o.order_id = $1`, req.ID).Scan(scanTargets(&o)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.Order{}, rpc.Errorf(rpc.CodeNotFound, "order %s not found", req.ID)
	}
	if err != nil {
		return wire.Order{}, fmt.Errorf("order %s: %w", req.ID, err)
	}
	if scope := auth.CustomerScope(ctx); scope != "" && o.CustomerID != scope {
		return wire.Order{}, rpc.Errorf(rpc.CodeNotFound, "order %s not found", req.ID) // another customer's
	}
	return o, nil
}

// selectOrders reads orders with their history, in one round trip: the gateway's most frequent
// read. Add the where clause.
const selectOrders = `select ` + orderColumns + `,
  (select coalesce(json_agg(json_build_object('status', h.status, 'at', h.at) order by h.revision), '[]')
     from order_history h where h.order_id = o.order_id)
  from orders o `

func scanTargets(o *wire.Order) []any {
	return []any{&o.ID, &o.CustomerID, &o.Status, &o.TotalCents, &o.Lines, &o.PlacedAt, &o.UpdatedAt, &o.CancelledAt, &o.CancelReason, &o.History}
}

// withHistory fills the status history of orders, in one query.
func (s Service) withHistory(ctx context.Context, orders []wire.Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	at := make(map[string]int, len(orders))
	for i, o := range orders {
		ids[i], at[o.ID] = o.ID, i
		orders[i].History = []wire.StatusChange{}
	}
	rows, err := s.Pool.Query(ctx, `select order_id, status, at from order_history where order_id = any($1) order by order_id, revision`, ids)
	if err != nil {
		return fmt.Errorf("order history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var c wire.StatusChange
		if err := rows.Scan(&id, &c.Status, &c.At); err != nil {
			return fmt.Errorf("order history: %w", err)
		}
		orders[at[id]].History = append(orders[at[id]].History, c)
	}
	return rows.Err()
}

func scanOrder(row pgx.Row) (wire.Order, error) {
	var o wire.Order
	err := row.Scan(&o.ID, &o.CustomerID, &o.Status, &o.TotalCents, &o.Lines, &o.PlacedAt, &o.UpdatedAt, &o.CancelledAt, &o.CancelReason)
	return o, err
}
