package orders

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

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
	// A customer reads its own orders only: another's are not found.
	rows, err := s.Pool.Query(ctx, selectOrders+`where o.order_id = any($1) and ($2 = '' or o.customer_id = $2)`, req.IDs, auth.CustomerScope(ctx))
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
