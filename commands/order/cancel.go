package order

import (
	"context"

	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
)

// Cancel cancels a placed order. Safe to retry by command id. An unknown order is
// model.ErrNotFound; a cancelled one model.ErrAlreadyCancelled.
func (h Handlers) Cancel(ctx context.Context, req wire.CancelOrder) (wire.CommandReply, error) {
	if domain.IsBlank(req.OrderID) {
		return wire.CommandReply{}, domain.Rule("orderId", "is required")
	}
	by := req.ByCustomer
	if scope := auth.CustomerScope(ctx); scope != "" {
		by = scope // the verified caller, whatever the request says: another's order is not found
	}
	return aggregate.Answer(ctx, h.Writer, req.OrderID, req.Meta, model.Cancel{OrderID: req.OrderID, Reason: req.Reason, ByCustomer: by}, h.Now)
}
