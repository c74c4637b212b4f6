package order

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Catalog answers the catalog's current price of products, as the order service places an order.
// Products it does not know are left out.
type Catalog interface {
	Prices(ctx context.Context, productIDs []string) (map[string]int64, error)
}

// Customers answers what the customer service knows of a customer's account now.
type Customers interface {
	Standing(ctx context.Context, customerID string) (wire.CustomerStanding, error)
}

// Place places an order at the catalog's prices, for a customer who may order (see
// model.Place). Safe to retry: a repeated command id appends nothing twice and answers with the
// position of the first attempt. A customer who chooses the order's id chooses a UUID: an id they
// could guess would tell them, by its refusal, that someone's order holds it.
func (h Handlers) Place(ctx context.Context, req wire.PlaceOrder) (wire.CommandReply, error) {
	if err := auth.Act(ctx, req.CustomerID); err != nil {
		return wire.CommandReply{}, err
	}
	c := model.Place{OrderID: req.OrderID, CustomerID: req.CustomerID, Lines: make([]model.PlaceLine, len(req.Lines))}
	ids := make([]string, len(req.Lines))
	for i, l := range req.Lines {
		c.Lines[i] = model.PlaceLine{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
		ids[i] = l.ProductID
	}
	if err := model.Validate(c); err != nil { // before anyone is asked anything
		return wire.CommandReply{}, err
	}
	if auth.CustomerScope(ctx) != "" && uuid.Validate(req.OrderID) != nil {
		return wire.CommandReply{}, domain.Rule("orderId", "a customer's order id is a UUID (or none: one is made)")
	}
	if h.Catalog == nil || h.Customers == nil {
		return wire.CommandReply{}, errors.New("place order: the order service has no catalog or customers to ask")
	}
	var standing wire.CustomerStanding
	asked := make(chan error, 1)
	go func() {
		var err error
		standing, err = h.Customers.Standing(ctx, req.CustomerID)
		asked <- err
	}()
	prices, err := h.Catalog.Prices(ctx, ids)
	if err = errors.Join(<-asked, err); err != nil {
		return wire.CommandReply{}, fmt.Errorf("place order %s: %w", req.OrderID, err)
	}
	c.Catalog, c.Account = prices, account(ctx, standing)
	return aggregate.Answer(ctx, h.Writer, req.OrderID, req.Meta, c, h.Now)
}

// account is what the order's rules know of a customer's standing: a customer without an account
// is a guest when staff orders for them, and nobody when they order themselves.
func account(ctx context.Context, s wire.CustomerStanding) model.Account {
	switch {
	case s.Active:
		return model.AccountActive
	case s.Closed == "erased":
		return model.AccountErased
	case s.Registered:
		return model.AccountDeactivated
	case auth.CustomerScope(ctx) != "":
		return model.AccountNone
	}
	return model.AccountGuest
}

// Services asks the inventory and customer services over NATS: the Catalog and Customers of the
// order-commands target.
type Services struct {
	NC        *nats.Conn
	Namespace wire.Namespace
}

// Prices implements Catalog (wire.EndpointQuoteProducts).
func (s Services) Prices(ctx context.Context, productIDs []string) (map[string]int64, error) {
	q, err := rpc.Ask(ctx, s.NC, s.Namespace, wire.EndpointQuoteProducts, wire.QuoteProducts{ProductIDs: productIDs})
	if err != nil {
		return nil, fmt.Errorf("ask the catalog's prices: %w", unavailable(err))
	}
	prices := make(map[string]int64, len(q.Products))
	for _, p := range q.Products {
		prices[p.ProductID] = p.PriceCents
	}
	return prices, nil
}

// Standing implements Customers (wire.EndpointCustomerStanding).
func (s Services) Standing(ctx context.Context, customerID string) (wire.CustomerStanding, error) {
	st, err := rpc.Ask(ctx, s.NC, s.Namespace, wire.EndpointCustomerStanding, wire.CustomerByID{ID: customerID})
	if err != nil {
		return st, fmt.Errorf("ask the customer's standing: %w", unavailable(err))
	}
	return st, nil
}

// unavailable is how another service's failure reaches this one's caller: a fault of ours to
// retry (the caller's input was checked before we asked), never the other service's verdict.
func unavailable(err error) error {
	var rerr *rpc.Error
	if errors.As(err, &rerr) && rerr.Code != rpc.CodeUnavailable {
		return &rpc.Error{Code: rpc.CodeUnavailable, Message: rerr.Message}
	}
	return err
}
