package progress

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
)

// TestWaitersWaitForAnnouncementsFirst: a query that comes before its position is announced waits
// for the announcement without reading the checkpoint; the checkpoint is read when announcements
// are late, when none came yet, and when there are none to follow.
func TestWaitersWaitForAnnouncementsFirst(t *testing.T) {
	t.Parallel()
	var reads atomic.Int64
	var at atomic.Uint64
	w := &Waiter{name: "test", poll: 50 * time.Millisecond, sub: &nats.Subscription{}, checkpoint: func(context.Context) (eventstore.Position, error) {
		reads.Add(1)
		return pos(at.Load()), nil
	}}
	ctx := t.Context()
	at.Store(1)
	if err := w.Wait(ctx, pos(1)); err != nil || reads.Load() != 1 {
		t.Fatalf("nothing announced yet: %v after %d checkpoint reads, want the checkpoint read once", err, reads.Load())
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		w.advance(pos(3), true)
	}()
	if err := w.Wait(ctx, pos(3)); err != nil || reads.Load() != 1 {
		t.Fatalf("announced a moment later: %v after %d checkpoint reads, want none more", err, reads.Load())
	}
	at.Store(5) // the read model moves on, and its announcements are lost
	start := time.Now()
	if err := w.Wait(ctx, pos(5)); err != nil || reads.Load() != 2 {
		t.Fatalf("announcements late: %v after %d checkpoint reads, want one more", err, reads.Load())
	}
	if waited := time.Since(start); waited < w.poll {
		t.Errorf("read the checkpoint after %v, want after the poll interval %v", waited, w.poll)
	}
	w.sub = nil // no announcements to follow
	at.Store(6)
	if err := w.Wait(ctx, pos(6)); err != nil || reads.Load() != 3 {
		t.Fatalf("no announcements: %v after %d checkpoint reads, want one more at once", err, reads.Load())
	}
}

// TestPartitionedReadModelIsAsFarAsItsSlowestPartition: the workers of a partitioned read model
// announce their partitions apart; a wait for a position ends once every partition reached it,
// and a change in any partition empties the caches at once.
func TestPartitionedReadModelIsAsFarAsItsSlowestPartition(t *testing.T) {
	t.Parallel()
	w := &Waiter{name: "test", poll: time.Hour, sub: &nats.Subscription{}, checkpoint: func(context.Context) (eventstore.Position, error) {
		return pos(1), nil
	}}
	if err := w.Wait(t.Context(), pos(1)); err != nil {
		t.Fatal(err)
	}
	cache := NewCache[string, int](w, 10)
	cache.Put(pos(1), map[string]int{"a": 1})
	w.advanceParts(pos(5), []int{0, 2}, 4, false) // one worker, half the partitions
	if got := w.current(); got != pos(1) {
		t.Fatalf("half the partitions at 5: the read model at %v, want 1", got)
	}
	if found, _ := cache.Get([]string{"a"}); len(found) != 1 {
		t.Fatal("an unchanged announcement emptied the cache")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		done <- w.Wait(ctx, pos(4))
	}()
	w.advanceParts(pos(4), []int{1}, 4, true) // the other worker: partition 3 still behind
	if found, _ := cache.Get([]string{"a"}); len(found) != 0 {
		t.Fatal("a change in one partition kept the cache")
	}
	select {
	case err := <-done:
		t.Fatalf("the wait ended (%v) with partition 3 at 1", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.advanceParts(pos(6), []int{3}, 4, false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := w.current(); got != pos(4) {
		t.Errorf("partitions at 5, 4, 5, 6: the read model at %v, want 4 (the slowest)", got)
	}
}
