package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
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
	return o, nil
}

// MaxIDs is the most ids of one OrdersByIDs.
const MaxIDs = 500

// OrdersByIDs returns the orders of ids that exist, in one query: for batched readers.
func (s Service) OrdersByIDs(ctx context.Context, req wire.OrdersByIDs) ([]wire.Order, error) {
	if len(req.IDs) > MaxIDs {
		return nil, &rpc.Error{Code: rpc.CodeInvalid, Field: "ids", Message: fmt.Sprintf("at most %d ids", MaxIDs)}
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return nil, err
	}
	rows, err := s.Pool.Query(ctx, selectOrders+`where o.order_id = any($1)`, req.IDs)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	out := []wire.Order{}
	var o wire.Order
	_, err = pgx.ForEachRow(rows, scanTargets(&o), func() error {
		out = append(out, o)
		o = wire.Order{} // the next row's lines and history decode into new slices
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	return out, nil
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
