package order

import (
	"context"

	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
)

// Place places an order. Safe to retry: a repeated command id appends nothing twice and answers
// with the position of the first attempt.
func (h Handlers) Place(ctx context.Context, req wire.PlaceOrder) (wire.CommandReply, error) {
	if err := auth.Act(ctx, req.CustomerID); err != nil {
		return wire.CommandReply{}, err
	}
	lines := make([]model.Line, len(req.Lines))
	for i, l := range req.Lines {
		lines[i] = model.Line(l)
	}
	return aggregate.Answer(ctx, h.Store, req.OrderID, req.Meta, model.Place{OrderID: req.OrderID, CustomerID: req.CustomerID, Lines: lines}, h.Now)
}
