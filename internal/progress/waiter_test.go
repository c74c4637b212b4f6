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
