package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
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

// TestAPollingSubscriptionReadsTheNextPageWhileBehind: after a full page, the subscription reads
// the next one while its reader holds the one it has, and delivers it at the next Next without
// reading again; every event comes once, in order; at the end of the log nothing is read ahead
// (a read for every page, no more).
func TestAPollingSubscriptionReadsTheNextPageWhileBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memory.New()
	for i := range 25 {
		if _, err := store.Append(ctx, fmt.Sprintf("s-%d", i), eventstore.NoStream(), []eventstore.EventData{{ID: uuid.New(), Type: "t.v1", Data: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan eventstore.Position, 10)
	var reads atomic.Int64
	read := func(ctx context.Context, from eventstore.Position, opts eventstore.ReadAllOptions) (eventstore.Page, error) {
		reads.Add(1)
		started <- from
		return store.ReadAll(ctx, from, opts)
	}
	sub := eventstore.NewPollingSubscription(read, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 10}, nil, time.Hour)
	b, err := sub.Next(ctx)
	if err != nil || len(b.Events) != 10 || b.CaughtUp {
		t.Fatalf("first batch: %d events, caught up %v, %v; want 10, false", len(b.Events), b.CaughtUp, err)
	}
	<-started // the first page's read
	select {
	case from := <-started:
		if from != b.Position {
			t.Fatalf("read ahead from %s, want %s", from, b.Position)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no read of the next page began while the reader held the first")
	}
	got := b.Events
	for !b.CaughtUp {
		if b, err = sub.Next(ctx); err != nil {
			t.Fatal(err)
		}
		got = append(got, b.Events...)
	}
	sub.Close() // waits for any read still running
	if len(got) != 25 {
		t.Fatalf("%d events delivered, want 25", len(got))
	}
	for i, e := range got {
		if e.Stream != fmt.Sprintf("s-%d", i) {
			t.Fatalf("event %d is of %s, want s-%d", i, e.Stream, i)
		}
	}
	if n := reads.Load(); n != 3 {
		t.Errorf("%d reads for 3 pages (10, 10, 5 events), want 3: a page read twice, or one read ahead at the end", n)
	}
}

// TestClosingAPollingSubscriptionEndsItsReadAhead: a Next whose context ends while it waits for
// the page read ahead leaves that read for the next Next (no second read); Close cancels the page
// being read ahead and returns once that read has returned.
func TestClosingAPollingSubscriptionEndsItsReadAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// hanging reads a full page first, then pages that wait for release (or their context) and
	// bring the event at position 2, the end of the log.
	hanging := func() (eventstore.ReadAllFunc, *atomic.Int64, *atomic.Bool, chan struct{}) {
		var reads atomic.Int64
		var returned atomic.Bool
		release := make(chan struct{})
		return func(ctx context.Context, from eventstore.Position, opts eventstore.ReadAllOptions) (eventstore.Page, error) {
			if reads.Add(1) == 1 {
				return eventstore.Page{Events: []eventstore.RecordedEvent{{Stream: "s", Position: eventstore.Position{Commit: 1}}},
					Position: eventstore.Position{Commit: 1}}, nil // full: more follows
			}
			defer returned.Store(true)
			select {
			case <-ctx.Done():
				return eventstore.Page{}, ctx.Err()
			case <-release:
			}
			at := eventstore.Position{Commit: 2}
			return eventstore.Page{Events: []eventstore.RecordedEvent{{Stream: "s", Position: at}}, Position: at, AtEnd: true}, nil
		}, &reads, &returned, release
	}

	read, reads, _, release := hanging()
	sub := eventstore.NewPollingSubscription(read, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 1}, nil, time.Hour)
	defer sub.Close()
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next while the page read ahead hangs: %v, want the context's deadline", err)
	}
	close(release)
	b, err := sub.Next(ctx)
	if err != nil || len(b.Events) != 1 || b.Position.Commit != 2 || !b.CaughtUp {
		t.Fatalf("the page read ahead: %+v, %v; want the event at 2, caught up", b, err)
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2: the first page and the one read ahead, waited for twice, read once", n)
	}

	read, _, returned, _ := hanging()
	sub = eventstore.NewPollingSubscription(read, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 1}, nil, time.Hour)
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	sub.Close() // the page read ahead hangs until Close cancels it
	if !returned.Load() {
		t.Error("Close returned while the page read ahead was still being read")
	}
}
