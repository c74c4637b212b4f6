package order

import (
	"context"

	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/wire"
)

// Confirm confirms a placed order. Safe to retry by command id.
func (h Handlers) Confirm(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.transition(ctx, req, model.Confirm{OrderID: req.ID})
}

// MarkPaid records the capture of a confirmed order's payment.
func (h Handlers) MarkPaid(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.transition(ctx, req, model.MarkPaid{OrderID: req.ID})
}

// Ship records that an order left the warehouse.
func (h Handlers) Ship(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.transition(ctx, req, model.Ship{OrderID: req.ID})
}

// Deliver records that a shipped order arrived.
func (h Handlers) Deliver(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.transition(ctx, req, model.Deliver{OrderID: req.ID})
}

func (h Handlers) transition(ctx context.Context, req wire.IDCommand, c model.Command) (wire.CommandReply, error) {
	return aggregate.Answer(ctx, h.Writer, req.ID, req.Meta, c, h.Now)
}
