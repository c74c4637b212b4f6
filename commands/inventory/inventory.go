// Package inventory is the inventory command service: the catalog (add, price, discontinue) and
// stock (restock, and reservations of orders: all lines or none). Served on NATS micro.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Handlers carries out inventory commands.
type Handlers struct {
	// Writer carries out the commands on products' streams.
	Writer *commands.Writer
	// Store is the event store itself, for an order's reservation stream (its outcomes, which no
	// aggregate decides: see ReserveStock).
	Store eventstore.Store
	Now   func() time.Time
	// Router, when set, sends each product's stock commands to the instance that owns the product
	// (one writer per product stream across instances); nil carries everything out here.
	Router *Router
}

// aggregate is a product's stream. Products are the long, hot streams (every reservation of every
// order): their state is snapshotted. Bump the version with any change of State or Evolve.
var aggregate = commands.NewDecider(model.Codec, model.Evolve, model.Stream, model.Validate, model.Decide).Snapshotted("inventory.product.v2")

// AddProduct adds a product. Its sku is claimed first: two products never share one.
func (h Handlers) AddProduct(ctx context.Context, req wire.AddProduct) (wire.CommandReply, error) {
	c := model.AddProduct{ProductID: req.ProductID, SKU: req.SKU, Name: req.Name, PriceCents: req.PriceCents}
	sku := model.NormalizeSKU(req.SKU)
	return aggregate.Create(ctx, h.Writer, req.ProductID, req.Meta, c, commands.Unique{Stream: model.SKUStream(sku),
		Claim: model.SKUClaimed{SKU: sku, ProductID: req.ProductID}, Taken: model.ErrSKUTaken}, h.Now)
}

// ChangePrice sets a product's price.
func (h Handlers) ChangePrice(ctx context.Context, req wire.ChangePrice) (wire.CommandReply, error) {
	return aggregate.Answer(ctx, h.Writer, req.ProductID, req.Meta, model.ChangePrice{ProductID: req.ProductID, PriceCents: req.PriceCents}, h.Now)
}

// Restock adds units.
func (h Handlers) Restock(ctx context.Context, req wire.Restock) (wire.CommandReply, error) {
	return aggregate.Answer(ctx, h.Writer, req.ProductID, req.Meta, model.Restock{ProductID: req.ProductID, Quantity: req.Quantity}, h.Now)
}

// Discontinue takes a product out of sale.
func (h Handlers) Discontinue(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return aggregate.Answer(ctx, h.Writer, req.ID, req.Meta, model.Discontinue{ProductID: req.ID}, h.Now)
}

// lineMeta derives a per-product command from an order-level one, so each product stream
// sees its own idempotent command id.
func lineMeta(m commands.Meta, step, product string) commands.Meta {
	m.CommandID = m.CommandID + ":" + step + ":" + product
	return m
}

// ReserveStock reserves every line of an order, all or none: products are reserved one stream at
// a time in product id order; if one cannot be, the order's rejection is recorded first and then
// the ones already reserved are released, and the error says which product failed. Each product
// stream's expected revision keeps its stock from going negative under any number of concurrent
// reservations. Safe to retry by command id: a retry after a recorded rejection only finishes the
// releases; recording the rejection before releasing is what keeps a retry from reserving the
// other lines anew once stock came back (it would find the released lines' reservations "done"
// and confirm an order that holds only part of its stock).
func (h Handlers) ReserveStock(ctx context.Context, req wire.ReserveStock) (wire.CommandReply, error) {
	if len(req.Lines) == 0 {
		return wire.CommandReply{}, domain.Rule("lines", "an order needs at least one line")
	}
	if err := domain.CheckID("orderId", req.OrderID); err != nil { // it names the reservation stream
		return wire.CommandReply{}, err
	}
	qty, price := map[string]int64{}, map[string]int64{}
	for i, l := range req.Lines {
		if p, seen := price[l.ProductID]; seen && p != l.UnitPriceCents {
			return wire.CommandReply{}, domain.Rule(fmt.Sprintf("lines[%d].unitPriceCents", i), "one product at two prices")
		}
		qty[l.ProductID] += l.Quantity
		price[l.ProductID] = l.UnitPriceCents
	}
	products := make([]string, 0, len(qty))
	for p := range qty {
		products = append(products, p)
	}
	slices.Sort(products)
	release := func(refusal error) (wire.CommandReply, error) {
		if _, rerr := h.eachProduct(ctx, wire.OrderStock{Meta: req.Meta, OrderID: req.OrderID, ProductIDs: products}, "release"); rerr != nil {
			// The refusal is final, but its compensation is not done: the error is the release's
			// (transient), so that the command is retried until every line is released. Wrapping
			// the refusal would make the whole command final and leave its reservations held.
			return wire.CommandReply{}, fmt.Errorf("reserve for order %s: refused (%v); releasing the lines: %w", req.OrderID, refusal, rerr)
		}
		return wire.CommandReply{}, refusal
	}
	// A command that already has an outcome (a redelivered job) answers with it: stock freed since
	// a rejection must not be taken by the retry of the rejected command, whose lines are released
	// (again: releasing what is not held is a no-op). A first delivery has none: its outcome
	// creates the order's reservation stream, not read first; should the stream exist after all,
	// that append fails, and the redelivery reads it.
	var (
		reply wire.CommandReply
		done  bool
		head  = eventstore.NoStream()
		err   error
	)
	if !jobs.FirstDelivery(ctx, req.Meta.CommandID) {
		reply, done, head, err = h.decided(ctx, req.OrderID, req.Meta)
	}
	if done {
		if err != nil {
			return release(err)
		}
		return reply, nil
	}
	for _, p := range products {
		_, err := h.stock(ctx, wire.ProductStock{Meta: lineMeta(req.Meta, "reserve", p), Kind: "reserve", ProductID: p, OrderID: req.OrderID, Quantity: qty[p], UnitPriceCents: price[p]})
		if err == nil {
			continue
		}
		if !final(err) {
			// Transient (a busy stream, a database hiccup): the whole command is retried, the
			// reservations made so far stand and are found again.
			return wire.CommandReply{}, fmt.Errorf("reserve %s for order %s: %w", p, req.OrderID, err)
		}
		if _, oerr := h.outcome(ctx, req.OrderID, req.Meta, head, model.OrderRejected{OrderID: req.OrderID, ProductID: p, Reason: err.Error(), At: commands.Now(h.Now)}); oerr != nil {
			return wire.CommandReply{}, oerr // nothing released yet: the retry decides again
		}
		return release(fmt.Errorf("reserve %s for order %s: %w", p, req.OrderID, err))
	}
	return h.outcome(ctx, req.OrderID, req.Meta, head, model.OrderReserved{OrderID: req.OrderID, ProductIDs: products, At: commands.Now(h.Now)})
}

// final reports whether a product's refusal of a reservation is the order's answer (unknown,
// out of stock, discontinued, or a quantity the product can never hold) rather than a fault
// that may pass.
func final(err error) bool {
	var rule *domain.RuleError
	var answer *rpc.Error // the owner's answer to a forwarded command
	return errors.Is(err, domain.ErrConflict) || errors.Is(err, domain.ErrNotFound) || errors.As(err, &rule) ||
		errors.As(err, &answer) && (answer.Code == rpc.CodeConflict || answer.Code == rpc.CodeNotFound || answer.Code == rpc.CodeInvalid)
}

// decided looks for this command's outcome on the order's reservation stream. When there is none
// it returns where the stream ends (eventstore.NoRevision: no stream), for the outcome's append to
// expect; an unreadable stream gives eventstore.Any() to expect instead (the append will tell).
func (h Handlers) decided(ctx context.Context, orderID string, meta commands.Meta) (wire.CommandReply, bool, eventstore.ExpectedRevision, error) {
	events, err := h.Store.ReadStream(ctx, model.ReservationStream(orderID), eventstore.ReadStreamOptions{})
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound):
		return wire.CommandReply{}, false, eventstore.NoStream(), nil
	case err != nil:
		return wire.CommandReply{}, false, eventstore.Any(), nil
	}
	ids := []uuid.UUID{outcomeID(meta, model.TypeOrderReserved), outcomeID(meta, model.TypeOrderRejected), outcomeID(meta, "")}
	for _, r := range events {
		if !slices.Contains(ids, r.ID) {
			continue
		}
		reply := wire.CommandReply{ID: orderID, Position: r.Position.String()}
		if r.Type == model.TypeOrderRejected {
			e, _ := model.Codec.Decode(r.Type, r.Data)
			rej, _ := e.(model.OrderRejected)
			return reply, true, eventstore.Any(), fmt.Errorf("order %s: %w (%s)", orderID, model.ErrInsufficientStock, rej.Reason)
		}
		return reply, true, eventstore.Any(), nil
	}
	// Expecting the revision read, the outcome joins the appends the store commits together
	// (Any appends alone); a stream that moved since makes the job run again, and decide anew.
	return wire.CommandReply{}, false, eventstore.Exact(events[len(events)-1].Revision), nil
}

// outcomeID is the id of the event that records a command's outcome on an order's reservation
// stream. A reservation's two outcomes have ids of their own: an outcome appended without reading
// the stream first (a first delivery) must fail on a stream that holds the other, where an append
// of the same id passes for its retry. A release keeps the id outcomes had before ("": any other).
func outcomeID(meta commands.Meta, typ string) uuid.UUID {
	switch typ {
	case model.TypeOrderReserved, model.TypeOrderRejected:
		return eventstore.DeriveID(meta.CommandID+":outcome:"+typ, 0)
	}
	return eventstore.DeriveID(meta.CommandID+":outcome", 0)
}

// outcome records what became of an order's reservation on its reservation stream, expecting it at
// expected. The event id derives from the command id (outcomeID): a retried command records it once.
func (h Handlers) outcome(ctx context.Context, orderID string, meta commands.Meta, expected eventstore.ExpectedRevision, e model.Event) (wire.CommandReply, error) {
	typ, data, err := model.Codec.Encode(e)
	if err != nil {
		return wire.CommandReply{}, err
	}
	res, err := h.Store.Append(ctx, model.ReservationStream(orderID), expected, []eventstore.EventData{{
		ID: outcomeID(meta, typ), Type: typ, Data: data,
		Metadata: commands.EventMetadata(ctx, meta),
	}})
	if err != nil {
		return wire.CommandReply{}, fmt.Errorf("record reservation outcome of order %s: %w", orderID, err)
	}
	return wire.CommandReply{ID: orderID, Position: res.Position.String()}, nil
}

// ReleaseStock gives an order's reservations on products back, and records it on the order's
// reservation stream. Releasing what is not reserved is a no-op.
func (h Handlers) ReleaseStock(ctx context.Context, req wire.OrderStock) (wire.CommandReply, error) {
	if err := domain.CheckID("orderId", req.OrderID); err != nil { // it names the reservation stream
		return wire.CommandReply{}, err
	}
	if _, err := h.eachProduct(ctx, req, "release"); err != nil {
		return wire.CommandReply{}, err
	}
	return h.outcome(ctx, req.OrderID, req.Meta, eventstore.Any(), model.OrderReleased{OrderID: req.OrderID, ProductIDs: req.ProductIDs, At: commands.Now(h.Now)})
}

// CommitStock turns an order's reservations into shipped units.
func (h Handlers) CommitStock(ctx context.Context, req wire.OrderStock) (wire.CommandReply, error) {
	return h.eachProduct(ctx, req, "commit")
}

func (h Handlers) eachProduct(ctx context.Context, req wire.OrderStock, step string) (wire.CommandReply, error) {
	last := wire.CommandReply{ID: req.OrderID}
	for _, p := range req.ProductIDs {
		reply, err := h.stock(ctx, wire.ProductStock{Meta: lineMeta(req.Meta, step, p), Kind: step, ProductID: p, OrderID: req.OrderID})
		if err != nil {
			return wire.CommandReply{}, fmt.Errorf("%s %s for order %s: %w", step, p, req.OrderID, err)
		}
		if reply.Position != "" {
			last.Position = reply.Position
		}
	}
	return last, nil
}

// stock carries out one product's part of an order's stock command, on the instance that owns the
// product when a Router says it is another (and here if that one cannot be reached: the expected
// revision of every append keeps two writers right).
func (h Handlers) stock(ctx context.Context, c wire.ProductStock) (wire.CommandReply, error) {
	if owner, other := h.Router.Owner(c.ProductID); other {
		reply, err := rpc.Call[wire.CommandReply](ctx, h.Router.nc, h.Router.subject(owner), c)
		var rerr *rpc.Error
		if err == nil || !errors.As(err, &rerr) || rerr.Code != rpc.CodeUnavailable {
			return reply, err
		}
	}
	return h.ownStock(ctx, c)
}

// ownStock carries out a product's stock command here: the forwarded ones, and the ones this
// instance owns.
func (h Handlers) ownStock(ctx context.Context, c wire.ProductStock) (wire.CommandReply, error) {
	var cmd model.Command
	switch c.Kind {
	case "reserve":
		cmd = model.Reserve{ProductID: c.ProductID, OrderID: c.OrderID, Quantity: c.Quantity, UnitPriceCents: c.UnitPriceCents}
	case "release":
		cmd = model.Release{ProductID: c.ProductID, OrderID: c.OrderID}
	case "commit":
		cmd = model.Commit{ProductID: c.ProductID, OrderID: c.OrderID}
	default:
		return wire.CommandReply{}, domain.Rule("kind", "must be reserve, release or commit")
	}
	return aggregate.Answer(ctx, h.Writer, c.ProductID, c.Meta, cmd, h.Now)
}

// Quote answers the catalog's price of each product now, for the order service as it places an
// order: from this instance's state of each product, at the revisions of their streams the
// answer's Basis names (the order's append holds only while they are there); Proven, or for a
// product another instance owns, once it has checked that no other instance changed them since
// (commands.Look). Unknown products are left out; at most order.MaxLines.
func (h Handlers) Quote(ctx context.Context, req wire.QuoteProducts) (wire.Quote, error) {
	if len(req.ProductIDs) > maxQuote {
		return wire.Quote{}, domain.Rule("productIds", fmt.Sprintf("at most %d products", maxQuote))
	}
	ids := slices.Clone(req.ProductIDs)
	slices.Sort(ids)
	quote := wire.Quote{Products: []wire.QuotedProduct{}}
	for _, id := range slices.Compact(ids) {
		if err := domain.CheckID("productIds", id); err != nil {
			return wire.Quote{}, err
		}
		// An instance that does not own the product (another one carries out its stock commands)
		// does not write its stream, and what it holds falls behind by every reservation: its
		// answer is proven, or the order's condition would look through them all.
		_, other := h.Router.Owner(id)
		var s model.State
		rev, err := aggregate.Look(ctx, h.Writer, id, req.Proven || other, func(st model.State) { s = st })
		if err != nil {
			return wire.Quote{}, fmt.Errorf("quote %s: %w", id, err)
		}
		quote.Basis = append(quote.Basis, wire.StreamAt{Stream: model.Stream(id), Revision: rev, Types: quoted})
		if s.Added {
			quote.Products = append(quote.Products, wire.QuotedProduct{ProductID: id, PriceCents: s.PriceCents, Discontinued: s.Discontinued})
		}
	}
	return quote, nil
}

// quoted are the events that change a quote of a product (not its stock's: reservations do not).
var quoted = []string{model.TypeAdded, model.TypePriceChanged, model.TypeDiscontinued}

// maxQuote bounds the products of one quote: the lines of an order.
const maxQuote = 100

// Register serves the handlers as the inventory-commands NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, h Handlers) (micro.Service, error) {
	svc := commands.Service(wire.ServiceInventoryCommands, "catalog and stock", ns)
	svc.Metadata = map[string]string{"namespace": string(ns)} // instances of other installations on the same NATS are not peers
	served, srv, err := svc.Start(ctx, nc, log,
		rpc.Staff(rpc.On("add", wire.EndpointAddProduct, h.AddProduct)),
		rpc.Staff(rpc.On("change_price", wire.EndpointChangePrice, h.ChangePrice)),
		rpc.Staff(rpc.On("restock", wire.EndpointRestock, h.Restock)),
		rpc.Staff(rpc.On("discontinue", wire.EndpointDiscontinueProduct, h.Discontinue)),
		rpc.Staff(rpc.On("reserve", wire.EndpointReserveStock, h.ReserveStock)),
		rpc.Staff(rpc.On("release", wire.EndpointReleaseStock, h.ReleaseStock)),
		rpc.Staff(rpc.On("commit", wire.EndpointCommitStock, h.CommitStock)),
		rpc.Internal(rpc.On("quote", wire.EndpointQuoteProducts, h.Quote)),
	)
	if err != nil || h.Router == nil {
		return served, err
	}
	// This instance takes the stock commands of the products it owns from the others.
	h.Router.mu.Lock()
	h.Router.self = served.Info().ID
	h.Router.mu.Unlock()
	if err := served.AddEndpoint("route", rpc.HandleInternal(srv, "route", h.ownStock), micro.WithEndpointSubject(h.Router.subject(served.Info().ID))); err != nil {
		return nil, fmt.Errorf("service %s endpoint route: %w", wire.ServiceInventoryCommands, err)
	}
	go h.Router.run(ctx)
	return served, nil
}

// Jobs are the inventory commands process managers queue (package jobs). A rejected reservation
// is final: its outcome is recorded on the order's reservation stream.
func (h Handlers) Jobs() map[string]jobs.Handler {
	return commands.Jobs(commands.Classify,
		commands.JobOn(wire.EndpointReserveStock, h.ReserveStock),
		commands.JobOn(wire.EndpointReleaseStock, h.ReleaseStock),
		commands.JobOn(wire.EndpointCommitStock, h.CommitStock),
	)
}
