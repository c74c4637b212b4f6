package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
)

// tailed is a memory store followed by a Tail that keeps few events, with its reads counted.
type tailed struct {
	store *memory.Store
	wake  eventstore.Signal
	reads atomic.Int64
	tail  *eventstore.Tail
}

func newTailed(keep int) *tailed {
	s := &tailed{store: memory.New()}
	s.tail = eventstore.NewTail(func(ctx context.Context, from eventstore.Position, opts eventstore.ReadAllOptions) (eventstore.Page, error) {
		s.reads.Add(1)
		return s.store.ReadAll(ctx, from, opts)
	}, &s.wake, 20*time.Millisecond, keep)
	return s
}

// append appends n events to stream and announces them, as a store does.
func (s *tailed) append(t *testing.T, stream string, n int) {
	t.Helper()
	events := make([]eventstore.EventData, n)
	for i := range events {
		events[i] = eventstore.EventData{ID: uuid.New(), Type: "t.v1", Data: []byte(`{}`)}
	}
	if _, err := s.store.Append(context.Background(), stream, eventstore.Any(), events); err != nil {
		t.Fatal(err)
	}
	s.wake.NotifyAppend(stream, events)
}

// follow collects the events sub delivers until it has want of them, checking each batch's
// position; slow makes it take its time over each batch.
func follow(ctx context.Context, sub eventstore.Subscription, want int, slow time.Duration) ([]eventstore.RecordedEvent, error) {
	var got []eventstore.RecordedEvent
	var pos eventstore.Position
	for len(got) < want {
		b, err := sub.Next(ctx)
		if err != nil {
			return got, fmt.Errorf("after %d events: %w", len(got), err)
		}
		if b.Position.Compare(pos) < 0 {
			return got, fmt.Errorf("batch at %s after %s", b.Position, pos)
		}
		if n := len(b.Events); n > 0 && b.Events[n-1].Position.Compare(b.Position) > 0 {
			return got, fmt.Errorf("batch at %s holds an event at %s", b.Position, b.Events[n-1].Position)
		}
		pos = b.Position
		got = append(got, b.Events...)
		time.Sleep(slow)
	}
	return got, nil
}

// TestTailDeliversWhatReadingAloneWould: subscriptions of a Tail, from the start and from the end,
// filtered or not, quick or so slow that the Tail forgets events before they take them, each get
// exactly the events of the log after their position that their filter passes, in order, while
// appends go on.
func TestTailDeliversWhatReadingAloneWould(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := newTailed(50)
	for i := range 100 {
		s.append(t, fmt.Sprintf("order-%d", i%7), 1+i%3)
	}
	mid, err := s.store.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	products := eventstore.Filter{StreamPrefixes: []string{"product-"}}
	subs := map[string]struct {
		from   eventstore.Position
		filter eventstore.Filter
		batch  int
		slow   time.Duration
	}{
		"all from the start":      {eventstore.Start, eventstore.Filter{}, 7, 0},
		"products from the start": {eventstore.Start, products, 3, 0},
		"all from the end":        {mid.Position, eventstore.Filter{}, 0, 0},
		"a slow one":              {eventstore.Start, eventstore.Filter{}, 5, time.Millisecond},
	}
	const more = 600
	expected := func(from eventstore.Position, f eventstore.Filter) []eventstore.RecordedEvent {
		// Once the writer below is done: the log as one reader reads it alone.
		page, err := s.store.ReadAll(ctx, from, eventstore.ReadAllOptions{Filter: f, Limit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return page.Events
	}
	// How many each will get: the events after its position that its filter passes, counted on
	// what the writer will append (a product stream in every third append).
	counts := map[string]int{}
	for name, c := range subs {
		counts[name] = len(expected(c.from, c.filter))
		for i := range more {
			if c.filter.Match(streamOf(i), "t.v1") {
				counts[name] += 1 + i%2
			}
		}
	}
	var wg sync.WaitGroup
	got := map[string][]eventstore.RecordedEvent{}
	var mu sync.Mutex
	for name, c := range subs {
		sub := s.tail.Subscribe(c.from, eventstore.SubscribeOptions{Filter: c.filter, BatchSize: c.batch})
		defer sub.Close()
		wg.Go(func() {
			events, err := follow(ctx, sub, counts[name], c.slow)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			mu.Lock()
			got[name] = events
			mu.Unlock()
		})
	}
	for i := range more {
		s.append(t, streamOf(i), 1+i%2)
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // let the quick ones catch up and follow the Tail
		}
	}
	wg.Wait()
	for name, c := range subs {
		want := expected(c.from, c.filter)
		if len(got[name]) != len(want) {
			t.Errorf("%s: %d events, want %d", name, len(got[name]), len(want))
			continue
		}
		for i := range want {
			if got[name][i].ID != want[i].ID {
				t.Errorf("%s: event %d is %s at %s, want %s at %s", name, i, got[name][i].ID, got[name][i].Position, want[i].ID, want[i].Position)
				break
			}
		}
	}
}

func streamOf(i int) string {
	if i%3 == 0 {
		return fmt.Sprintf("product-%d", i%5)
	}
	return fmt.Sprintf("order-%d", i%11)
}

// TestTailReadsOnceForAllItsSubscriptions: with several subscriptions following the end of the
// log, an append costs a read or two of the store, not a few per subscription; and once the last
// subscription closes, nothing reads any more.
func TestTailReadsOnceForAllItsSubscriptions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := newTailed(1000)
	const subscribers, appends = 6, 40
	var subs []eventstore.Subscription
	for range subscribers {
		subs = append(subs, s.tail.Subscribe(eventstore.Start, eventstore.SubscribeOptions{}))
	}
	// Each one's first batch: the end of the (empty) log, where it joins the Tail.
	next := func(sub eventstore.Subscription) eventstore.Batch {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s.append(t, "order-0", 1)
	for _, sub := range subs {
		for len(next(sub).Events) == 0 {
		}
	}
	before := s.reads.Load()
	for i := range appends {
		s.append(t, fmt.Sprintf("order-%d", i), 1)
		for _, sub := range subs {
			if b := next(sub); len(b.Events) != 1 {
				t.Fatalf("append %d: a batch of %d events, want the one appended", i, len(b.Events))
			}
		}
	}
	reads := s.reads.Load() - before
	if reads > 3*appends {
		t.Errorf("%d reads for %d appends followed by %d subscriptions, want at most %d", reads, appends, subscribers, 3*appends)
	}
	t.Logf("%d reads for %d appends followed by %d subscriptions", reads, appends, subscribers)
	for _, sub := range subs {
		sub.Close()
	}
	time.Sleep(50 * time.Millisecond) // a read under way ends
	idle := s.reads.Load()
	s.append(t, "order-x", 1)
	time.Sleep(100 * time.Millisecond) // five poll intervals
	if n := s.reads.Load() - idle; n != 0 {
		t.Errorf("%d reads after the last subscription closed, want none", n)
	}
}
