package eventstore_test

import (
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

// TestAppendsWakeOnlyWatchersTheyPass: an append wakes the watchers whose filter one of its events
// passes, not the others; Notify wakes every one.
func TestAppendsWakeOnlyWatchersTheyPass(t *testing.T) {
	t.Parallel()
	var s eventstore.Signal
	products := s.Watch(eventstore.Filter{StreamPrefixes: []string{"product-"}})
	orders := s.Watch(eventstore.Filter{EventTypePrefixes: []string{"order."}})
	everything := s.Watch(eventstore.Filter{})
	woken := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	cp, co, ce := s.WatchC(products), s.WatchC(orders), s.WatchC(everything)
	s.NotifyAppend("order-1", []eventstore.EventData{{Type: "order.placed.v1"}})
	if woken(cp) || !woken(co) || !woken(ce) {
		t.Errorf("an order's append woke products %v, orders %v, everything %v; want false, true, true", woken(cp), woken(co), woken(ce))
	}
	cp, co = s.WatchC(products), s.WatchC(orders)
	s.NotifyAppend("product-1", []eventstore.EventData{{Type: "inventory.stock_reserved.v1"}, {Type: "order.oops"}})
	if !woken(cp) || !woken(co) {
		t.Error("an append wakes a watcher that any of its events passes")
	}
	s.Unwatch(orders)
	cp, co = s.WatchC(products), s.WatchC(orders)
	s.Notify()
	if !woken(cp) || woken(co) {
		t.Errorf("Notify woke products %v (want true) and the unwatched orders %v (want false)", woken(cp), woken(co))
	}
}
