package graph

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
)

// refreshEvery is how often a subscription reads again without a notification: a safety net
// (announcements missed over a NATS reconnection are covered at once: every live query reads
// again when the connection is back).
const refreshEvery = 30 * time.Second

// note is one progress announcement of the orders read model (or several, merged), decoded once
// for every subscription of this gateway. A nil note is a read with no announcement (the first
// one, and the safety refreshes).
type note struct {
	position  string
	unchanged bool            // no row changed
	changed   map[string]bool // what changed ("order:ID", "customer:ID"); nil: not said
}

// changes reports whether n may have changed any of keys.
func (n *note) changes(keys ...string) bool {
	switch {
	case n == nil:
		return true
	case n.unchanged:
		return false
	case n.changed == nil:
		return true
	}
	for _, k := range keys {
		if n.changed[k] {
			return true
		}
	}
	return false
}

func (n *note) pos() string {
	if n == nil {
		return ""
	}
	return n.position
}

// merge is a then b, for a subscriber that has not read a yet.
func merge(a, b *note) *note {
	m := &note{position: b.position, unchanged: a.unchanged && b.unchanged}
	if a.changed != nil && b.changed != nil {
		m.changed = make(map[string]bool, len(a.changed)+len(b.changed))
		maps.Copy(m.changed, a.changed)
		maps.Copy(m.changed, b.changed)
	}
	return m
}

// hub is the gateway's one subscription to the orders read model's announcements, fanned out
// to its live queries.
type hub struct {
	mu   sync.Mutex
	sub  *nats.Subscription
	outs map[chan *note]bool
}

// join returns a channel of announcements (coalesced while the subscriber reads: it holds at most
// one, the merge of those it missed) and the function that leaves.
func (r *Resolver) join() (<-chan *note, func(), error) {
	r.liveMu.Lock()
	defer r.liveMu.Unlock()
	if r.live == nil {
		h := &hub{outs: map[chan *note]bool{}}
		sub, err := r.NC.Subscribe(r.NS.Progress("orders"), func(m *nats.Msg) {
			var p wire.Progress
			if json.Unmarshal(m.Data, &p) != nil {
				return
			}
			n := &note{position: p.Position, unchanged: p.Unchanged}
			if p.Changed != nil {
				n.changed = make(map[string]bool, len(p.Changed))
				for _, k := range p.Changed {
					n.changed[k] = true
				}
			}
			h.publish(n)
		})
		if err != nil {
			return nil, nil, err
		}
		h.sub = sub
		r.live = h
		// Announcements may have been lost while reconnecting: everyone reads again.
		status := r.NC.StatusChanged(nats.CONNECTED, nats.CLOSED)
		go func() {
			defer r.NC.RemoveStatusListener(status)
			for s := range status {
				if s == nats.CLOSED {
					return
				}
				h.publish(&note{})
			}
		}()
	}
	h := r.live
	out := make(chan *note, 1)
	h.mu.Lock()
	h.outs[out] = true
	h.mu.Unlock()
	return out, func() {
		h.mu.Lock()
		delete(h.outs, out)
		h.mu.Unlock()
	}, nil
}

func (h *hub) publish(n *note) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for out := range h.outs {
		select {
		case out <- n:
		default: // unread: merge (this is the only sender, so there is room after the receive)
			m := n
			select {
			case old := <-out:
				m = merge(old, n)
			default:
			}
			out <- m
		}
	}
}

// progress calls changed at once with a nil note, then with each announcement of the orders read
// model and every refreshEvery with nil, until ctx ends or changed returns false.
func (r *Resolver) progress(ctx context.Context, changed func(*note) bool) error {
	notes, leave, err := r.join()
	if err != nil {
		return err
	}
	go func() {
		defer leave()
		tick := time.NewTicker(refreshEvery)
		defer tick.Stop()
		if !changed(nil) {
			return
		}
		for {
			var n *note
			select {
			case <-ctx.Done():
				return
			case n = <-notes:
			case <-tick.C:
			}
			if !changed(n) {
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
	key := "order:" + id
	err := r.progress(ctx, func(n *note) bool {
		if !n.changes(key) {
			return true // another order moved: nothing to read
		}
		o, err := one[wire.Order](ctx, r, wire.EndpointOrderByID, wire.OrderByID{ID: id, MinPosition: n.pos()})
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
// changes (or a new one appears): a client that reconnects misses no final state. A change to
// orders it holds reads those orders; a new order of the caller reads the newest 50 again.
func (r *Resolver) myOrdersChanged(ctx context.Context) (<-chan *wire.Order, error) {
	p := caller(ctx)
	out := make(chan *wire.Order, 8)
	seen := map[string]*wire.Order{}
	mine := "customer:" + p.Subject // a new order of the caller
	keys := []string{mine}          // and a change to one it holds
	err := r.progress(ctx, func(n *note) bool {
		if !n.changes(keys...) {
			return true
		}
		var orders []wire.Order
		var err error
		cctx, cancel := r.callCtx(ctx)
		if n.changes(mine) { // a new order, or not said: the newest 50 again
			var page wire.OrderPage
			page, err = rpc.Call[wire.OrderPage](cctx, r.NC, r.NS.Subject(wire.EndpointListOrders), wire.ListOrders{CustomerID: p.Subject, First: 50, MinPosition: n.pos()})
			orders = page.Orders
		} else { // only orders it holds: those
			var moved []string
			for id := range seen {
				if n.changes("order:" + id) {
					moved = append(moved, id)
				}
			}
			orders, err = rpc.Call[[]wire.Order](cctx, r.NC, r.NS.Subject(wire.EndpointOrdersByIDs), wire.OrdersByIDs{IDs: moved, MinPosition: n.pos()})
		}
		cancel()
		if err != nil {
			return ctx.Err() == nil
		}
		for i := range orders {
			o := &orders[i]
			if same(o, seen[o.ID]) {
				continue
			}
			if seen[o.ID] == nil {
				keys = append(keys, "order:"+o.ID)
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
