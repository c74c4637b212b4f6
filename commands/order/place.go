package order

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Catalog answers the catalog's current price of products, as the order service places an order,
// and the basis of its answer (the products' streams at their revisions). Products it does not
// know are left out. Proven asks for prices checked current against the event store.
type Catalog interface {
	Prices(ctx context.Context, productIDs []string, proven bool) (map[string]int64, []wire.StreamAt, error)
}

// Customers answers what the customer service knows of a customer's account now, with its basis
// (CustomerStanding.Basis). Proven asks for a standing checked current against the event store.
type Customers interface {
	Standing(ctx context.Context, customerID string, proven bool) (wire.CustomerStanding, error)
}

// Place places an order at the catalog's prices, for a customer who may order (see
// model.Place). Safe to retry: a repeated command id appends nothing twice and answers with the
// position of the first attempt. A customer who chooses the order's id chooses a UUID: an id they
// could guess would tell them, by its refusal, that someone's order holds it.
//
// The catalog and the customer service answer from what they hold, with the revisions of the
// streams they answered from; the order's events are appended only while those streams are still
// there (eventstore.AppendIf), so that a price changed or an account closed meanwhile, by any
// instance, is never ordered at or for. When that check fails, or the order is refused on what
// they said (what they hold may be behind another instance's change), they are asked again for
// answers checked current, and the order decided again on those.
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
	for proven := false; ; proven = true {
		basis, err := h.ask(ctx, &c, ids, proven)
		if err != nil {
			return wire.CommandReply{}, fmt.Errorf("place order %s: %w", req.OrderID, err)
		}
		reply, err := aggregate.AnswerIf(ctx, h.Writer, req.OrderID, req.Meta, c, h.Now, basis)
		if err == nil || proven || !decidedOnWhatTheySaid(err) {
			return reply, err
		}
	}
}

// ask asks the catalog's prices and the customer's standing at once into c, and answers the
// streams at the revisions they were answered from.
func (h Handlers) ask(ctx context.Context, c *model.Place, ids []string, proven bool) ([]eventstore.Condition, error) {
	var standing wire.CustomerStanding
	asked := make(chan error, 1)
	go func() {
		var err error
		standing, err = h.Customers.Standing(ctx, c.CustomerID, proven)
		asked <- err
	}()
	prices, quoted, err := h.Catalog.Prices(ctx, ids, proven)
	if err = errors.Join(<-asked, err); err != nil {
		return nil, err
	}
	c.Catalog, c.Account = prices, account(ctx, standing)
	basis := make([]eventstore.Condition, 0, len(quoted)+len(standing.Basis))
	for _, b := range append(quoted, standing.Basis...) {
		basis = append(basis, eventstore.Condition{Stream: b.Stream, Revision: b.Revision, Types: b.Types})
	}
	return basis, nil
}

// decidedOnWhatTheySaid reports whether err is the order's refusal, or its condition failing:
// an answer that the catalog's and the customer service's answers decided, which answers checked
// current may change.
func decidedOnWhatTheySaid(err error) bool {
	var rule *domain.RuleError
	return errors.Is(err, eventstore.ErrConditionFailed) || errors.As(err, &rule) ||
		errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound)
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
func (s Services) Prices(ctx context.Context, productIDs []string, proven bool) (map[string]int64, []wire.StreamAt, error) {
	q, err := rpc.Ask(ctx, s.NC, s.Namespace, wire.EndpointQuoteProducts, wire.QuoteProducts{ProductIDs: productIDs, Proven: proven})
	if err != nil {
		return nil, nil, fmt.Errorf("ask the catalog's prices: %w", unavailable(err))
	}
	prices := make(map[string]int64, len(q.Products))
	for _, p := range q.Products {
		prices[p.ProductID] = p.PriceCents
	}
	return prices, q.Basis, nil
}

// Standing implements Customers (wire.EndpointCustomerStanding).
func (s Services) Standing(ctx context.Context, customerID string, proven bool) (wire.CustomerStanding, error) {
	st, err := rpc.Ask(ctx, s.NC, s.Namespace, wire.EndpointCustomerStanding, wire.StandingOf{ID: customerID, Proven: proven})
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
