package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
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

// maxMergedKeys bounds what a subscriber that does not read holds: past it, its pending
// announcement says "anything changed" instead of naming keys.
const maxMergedKeys = 1000

// merge is a then b, for a subscriber that has not read a yet.
func merge(a, b *note) *note {
	m := &note{position: b.position, unchanged: a.unchanged && b.unchanged}
	if a.changed != nil && b.changed != nil && len(a.changed)+len(b.changed) <= maxMergedKeys {
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

// DefaultMaxLive is the default bound of live subscriptions per gateway.
const DefaultMaxLive = 5000

// join returns a channel of announcements (coalesced while the subscriber reads: it holds at most
// one, the merge of those it missed) and the function that leaves. Past MaxLive subscribers it
// refuses with UNAVAILABLE.
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
	limit := r.MaxLive
	if limit <= 0 {
		limit = DefaultMaxLive
	}
	out := make(chan *note, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.outs) >= limit {
		return nil, nil, &rpc.Error{Code: rpc.CodeUnavailable, Message: fmt.Sprintf("this gateway serves its limit of %d live subscriptions: retry later", limit)}
	}
	h.outs[out] = true
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
// after a final status. Another customer's order reads as one that does not exist (as `order`
// answers null): the subscription ends with NOT_FOUND, which an unknown order's does not until
// it exists, so a customer learns nothing of orders that are not theirs.
func (r *Resolver) orderChanged(ctx context.Context, id string) (<-chan *wire.Order, error) {
	p := caller(ctx)
	notYours := func() error { return &rpc.Error{Code: rpc.CodeNotFound, Message: "no order " + id} }
	if o, err := one(ctx, r, wire.EndpointOrderByID, wire.OrderByID{ID: id}); err == nil && o != nil && !p.Owns(o.CustomerID) {
		return nil, notYours()
	}
	out := make(chan *wire.Order, 1)
	var last *wire.Order
	key := wire.OrderKey(id)
	err := r.progress(ctx, func(n *note) bool {
		if !n.changes(key) {
			return true // another order moved: nothing to read
		}
		o, err := one(ctx, r, wire.EndpointOrderByID, wire.OrderByID{ID: id, MinPosition: n.pos()})
		if err != nil || o == nil || same(o, last) {
			return ctx.Err() == nil // not there yet, or a read to retry at the next notification
		}
		if !p.Owns(o.CustomerID) {
			graphql.AddError(ctx, notYours())
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

// maxHeld is how many orders myOrdersChanged follows: the caller's newest.
const maxHeld = 50

// mark is what a live query keeps of an order it sent: enough to tell a change.
type mark struct {
	status    string
	updatedAt time.Time
}

func markOf(o *wire.Order) mark { return mark{o.Status, o.UpdatedAt} }

// myOrdersChanged sends the caller's 50 newest orders as they are now, then each again when it
// changes (or a new one appears): a client that reconnects misses no final state. A change to
// orders it holds reads those orders; a new order of the caller reads the newest 50 again, and
// the query then follows those 50 only. It keeps a mark per followed order, never the orders.
func (r *Resolver) myOrdersChanged(ctx context.Context) (<-chan *wire.Order, error) {
	p := caller(ctx)
	out := make(chan *wire.Order, 8)
	held := make(map[string]mark, maxHeld)    // the orders followed, as last sent
	mine := wire.CustomerOrdersKey(p.Subject) // a new order of the caller
	keys := []string{mine}                    // and a change to one it holds
	err := r.progress(ctx, func(n *note) bool {
		if !n.changes(keys...) {
			return true
		}
		var orders []wire.Order
		var err error
		list := n.changes(mine) // a new order, or not said: the newest 50 again
		if list {
			var page wire.OrderPage
			page, err = call(ctx, r, wire.EndpointListOrders, wire.ListOrders{CustomerID: p.Subject, First: maxHeld, MinPosition: n.pos()})
			orders = page.Orders
		} else { // only orders it holds: those
			var moved []string
			for id := range held {
				if n.changes(wire.OrderKey(id)) {
					moved = append(moved, id)
				}
			}
			orders, err = call(ctx, r, wire.EndpointOrdersByIDs, wire.OrdersByIDs{IDs: moved, MinPosition: n.pos()})
		}
		if err != nil {
			return ctx.Err() == nil
		}
		var send []*wire.Order
		for i := range orders {
			o := &orders[i]
			if m, ok := held[o.ID]; !ok || m != markOf(o) {
				send = append(send, o)
			}
		}
		if list { // follow exactly the newest page from now on
			clear(held)
		}
		for i := range orders {
			held[orders[i].ID] = markOf(&orders[i])
		}
		keys = keys[:1]
		for id := range held {
			keys = append(keys, wire.OrderKey(id))
		}
		for _, o := range send {
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
