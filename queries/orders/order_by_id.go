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
	if err := s.waitFor(ctx, req.MinPosition); err != nil {
		return wire.Order{}, err
	}
	o, err := scanOrder(s.Pool.QueryRow(ctx, `select `+orderColumns+` from orders where order_id = $1`, req.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.Order{}, rpc.Errorf(rpc.CodeNotFound, "order %s not found", req.ID)
	}
	if err != nil {
		return wire.Order{}, fmt.Errorf("order %s: %w", req.ID, err)
	}
	return o, nil
}

func scanOrder(row pgx.Row) (wire.Order, error) {
	var o wire.Order
	err := row.Scan(&o.ID, &o.CustomerID, &o.Status, &o.TotalCents, &o.Lines, &o.PlacedAt, &o.UpdatedAt, &o.CancelledAt, &o.CancelReason)
	return o, err
}
