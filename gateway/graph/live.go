package graph

import (
	"context"
	"encoding/json"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
)

// refreshEvery is how often a subscription reads again without a notification: a safety net
// for a notification lost with a reconnecting NATS connection.
const refreshEvery = 5 * time.Second

// progress follows the orders read model's progress notifications (what the projector
// announces after each commit) and calls changed with each new position, coalescing bursts, and
// with "" every refreshEvery; it stops with ctx. changed returning false stops it too.
func (r *Resolver) progress(ctx context.Context, changed func(position string) bool) error {
	notes := make(chan string, 1)
	sub, err := r.NC.Subscribe(r.NS.Progress("orders"), func(m *nats.Msg) {
		var p wire.Progress
		if json.Unmarshal(m.Data, &p) != nil {
			return
		}
		select { // keep only the latest
		case <-notes:
		default:
		}
		notes <- p.Position
	})
	if err != nil {
		return err
	}
	go func() {
		defer sub.Unsubscribe() //nolint:errcheck
		tick := time.NewTicker(refreshEvery)
		defer tick.Stop()
		if !changed("") {
			return
		}
		for {
			var pos string
			select {
			case <-ctx.Done():
				return
			case pos = <-notes:
			case <-tick.C:
			}
			if !changed(pos) {
				return
			}
		}
	}()
	return nil
}

// same reports whether two states of an order look alike to a subscriber.
func same(a, b *wire.Order) bool {
	return a != nil && b != nil && a.Status == b.Status && a.UpdatedAt.Equal(b.UpdatedAt)
}

func final(o *wire.Order) bool { return o.Status == "DELIVERED" || o.Status == "CANCELLED" }

// orderChanged sends the order's state now (once it exists) and after each change, and closes
// after a final status. Another customer's order ends the subscription with FORBIDDEN.
func (r *Resolver) orderChanged(ctx context.Context, id string) (<-chan *wire.Order, error) {
	p := caller(ctx)
	// An order that exists already and is another customer's is refused at once.
	if o, err := one[wire.Order](ctx, r, wire.EndpointOrderByID, wire.OrderByID{ID: id}); err == nil && o != nil && !p.Owns(o.CustomerID) {
		return nil, forbidden("this order is not yours")
	}
	out := make(chan *wire.Order, 1)
	var last *wire.Order
	err := r.progress(ctx, func(pos string) bool {
		o, err := one[wire.Order](ctx, r, wire.EndpointOrderByID, wire.OrderByID{ID: id, MinPosition: pos})
		if err != nil || o == nil || same(o, last) {
			return ctx.Err() == nil // not there yet, or a read to retry at the next notification
		}
		if !p.Owns(o.CustomerID) {
			graphql.AddError(ctx, forbidden("this order is not yours"))
			close(out)
			return false
		}
		select {
		case out <- o:
		case <-ctx.Done():
			return false
		}
		last = o
		if final(o) {
			close(out)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// myOrdersChanged sends the caller's 50 newest orders as they are now, then each again when it
// changes (or a new one appears): a client that reconnects misses no final state.
func (r *Resolver) myOrdersChanged(ctx context.Context) (<-chan *wire.Order, error) {
	p := caller(ctx)
	out := make(chan *wire.Order, 8)
	seen := map[string]*wire.Order{}
	err := r.progress(ctx, func(pos string) bool {
		cctx, cancel := r.callCtx(ctx)
		page, err := rpc.Call[wire.OrderPage](cctx, r.NC, r.NS.Subject(wire.EndpointListOrders), wire.ListOrders{CustomerID: p.Subject, First: 50, MinPosition: pos})
		cancel()
		if err != nil {
			return ctx.Err() == nil
		}
		for i := range page.Orders {
			o := &page.Orders[i]
			if same(o, seen[o.ID]) {
				continue
			}
			seen[o.ID] = o
			select {
			case out <- o:
			case <-ctx.Done():
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
