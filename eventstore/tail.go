package eventstore

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Tail is one reader of the end of $all that a process's subscriptions share. Followed on their
// own, every subscription of a process (each read model's projector, the saga) reads the log after
// every append that concerns it, and again while the append is not yet readable: a dozen reads
// of the same few events for each one appended. The Tail reads them once and keeps the latest
// events in memory; a subscription near the end takes its batches from there, filtered in memory,
// and waits for the Tail to move. One further behind (a rebuild, a projector that was paused, one
// the Tail's memory no longer reaches) reads the store itself, page by page, until it reaches the
// end, then joins the Tail.
//
// Nothing is skipped: the Tail holds every event of the log after its start, in order, as one
// gap-free reader read them; a subscription at position p has seen every event at or before p; so
// the Tail's events after p are exactly what it has not seen, whichever reader brought it to p.
type Tail struct {
	read     ReadAllFunc
	wake     *Signal
	interval time.Duration
	keep     int

	mu     sync.Mutex
	subs   int      // subscriptions open
	ready  bool     // start, end and events describe the log; false while nobody follows it
	start  Position // the events kept are every event after start, up to end
	end    Position //
	events []RecordedEvent
	err    error         // the last read's, until one succeeds
	moved  chan struct{} // closed when end moves or a read fails
	stop   chan struct{} // closed when the last subscription closes: the reader stops
}

// NewTail shares reads of $all by read among subscriptions: it reads again after appends that wake
// announces (may be nil) or after interval, and keeps the latest keep events.
func NewTail(read ReadAllFunc, wake *Signal, interval time.Duration, keep int) *Tail {
	if wake == nil {
		wake = &Signal{}
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	return &Tail{read: read, wake: wake, interval: interval, keep: max(keep, 1), moved: make(chan struct{})}
}

// tailPage is how many events the Tail reads at a time.
const tailPage = 1000

// Subscribe follows $all after from: see Tail.
func (t *Tail) Subscribe(from Position, opts SubscribeOptions) Subscription {
	t.mu.Lock()
	t.subs++
	t.mu.Unlock()
	limit := opts.BatchSize
	if limit <= 0 {
		limit = tailPage
	}
	return &tailSubscription{t: t, from: from, opts: opts, limit: limit, closed: make(chan struct{}),
		own: NewPollingSubscription(t.read, from, opts, t.wake, t.interval)}
}

// join makes the Tail follow the log from pos if nobody follows it yet, and reports whether a
// subscription that has read up to pos can take its batches from the Tail.
func (t *Tail) join(pos Position) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready {
		t.ready, t.start, t.end, t.events, t.err = true, pos, pos, nil, nil
		t.stop = make(chan struct{})
		go t.follow(t.stop)
	}
	return t.start.Compare(pos) <= 0
}

// leave is a subscription closing: the last one stops the reader and drops what it kept.
func (t *Tail) leave() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs--; t.subs == 0 && t.ready {
		close(t.stop)
		t.ready, t.events = false, nil
	}
}

// take returns the events after from that pass filter (at most limit) and the position they
// reach, and the channel closed when the Tail moves next; ok is false when the Tail does not reach
// back to from (or has stopped, or its reads fail): the subscription reads the store itself.
func (t *Tail) take(from Position, filter Filter, limit int) (b Batch, moved <-chan struct{}, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready || t.err != nil || from.Compare(t.start) < 0 {
		return Batch{}, nil, false
	}
	b.Position = from
	if from.Compare(t.end) >= 0 {
		return b, t.moved, true
	}
	i := sort.Search(len(t.events), func(i int) bool { return t.events[i].Position.Compare(from) > 0 })
	b.Position, b.CaughtUp = t.end, true
	for ; i < len(t.events); i++ {
		e := t.events[i]
		if !filter.Match(e.Stream, e.Type) {
			continue
		}
		if len(b.Events) == limit {
			b.Position, b.CaughtUp = b.Events[limit-1].Position, false
			break
		}
		b.Events = append(b.Events, e)
	}
	return b, t.moved, true
}

// follow reads the log after end until stop is closed.
func (t *Tail) follow(stop chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	c := newChase(t.interval)
	defer c.stop()
	for ctx.Err() == nil {
		woken := t.wake.C()
		t.mu.Lock()
		from := t.end
		t.mu.Unlock()
		page, err := t.read(ctx, from, ReadAllOptions{Limit: tailPage})
		t.mu.Lock()
		if ctx.Err() != nil || t.stop != stop { // stopped: a later reader may follow the log already
			t.mu.Unlock()
			return
		}
		moved := err == nil && (len(page.Events) > 0 || page.Position.Compare(from) > 0)
		switch {
		case err != nil:
			t.err = err // its subscriptions read on their own, and meet the error themselves
			t.signal()
		case moved:
			t.err = nil
			t.events = append(t.events, page.Events...)
			t.end = page.Position
			if len(t.events) > 2*t.keep { // forget the oldest: copy keep of them, once in keep appends
				drop := len(t.events) - t.keep
				t.start = t.events[drop-1].Position
				t.events = append([]RecordedEvent(nil), t.events[drop:]...)
			}
			t.signal()
		default:
			t.err = nil
		}
		t.mu.Unlock()
		if moved {
			c.found()
			if !page.AtEnd {
				continue // a full page: read on
			}
			// At the end: wait. An append since the read began has closed woken already.
		}
		_ = c.wait(ctx, woken, nil, err == nil) // ends the loop when ctx does
	}
}

// signal wakes the subscriptions waiting for the Tail to move (t.mu held).
func (t *Tail) signal() {
	close(t.moved)
	t.moved = make(chan struct{})
}

// tailSubscription is a subscription of a Tail: it reads the store itself (own) until it reaches
// the end of the log, then takes its batches from the Tail while the Tail reaches back to it.
type tailSubscription struct {
	t      *Tail
	from   Position
	opts   SubscribeOptions
	limit  int
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex           // own, against Close
	own  *PollingSubscription // while it reads the store itself; nil while it follows the Tail
	done bool                 // closed
}

// reading returns the subscription's own reader (nil: it follows the Tail); with start, it first
// makes one if there is none. It is nil once the subscription is closed.
func (s *tailSubscription) reading(start bool) *PollingSubscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start && s.own == nil && !s.done {
		s.own = NewPollingSubscription(s.t.read, s.from, s.opts, s.t.wake, s.t.interval)
	}
	return s.own
}

// following drops the subscription's own reader: it follows the Tail from now on.
func (s *tailSubscription) following() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.own != nil {
		s.own.Close()
		s.own = nil
	}
}

// Next implements Subscription.
func (s *tailSubscription) Next(ctx context.Context) (Batch, error) {
	for {
		if own := s.reading(false); own != nil {
			b, err := own.Next(ctx)
			if err != nil {
				return b, err
			}
			s.from = b.Position
			if b.CaughtUp && s.t.join(b.Position) {
				s.following()
			}
			return b, nil
		}
		b, moved, ok := s.t.take(s.from, s.opts.Filter, s.limit)
		if !ok {
			if s.reading(true) == nil {
				return Batch{}, context.Canceled // closed
			}
			continue
		}
		if len(b.Events) > 0 {
			b = s.linger(ctx, b, moved)
		}
		if len(b.Events) > 0 || b.Position.Compare(s.from) > 0 {
			s.from = b.Position
			return b, nil
		}
		select {
		case <-ctx.Done():
			return Batch{}, ctx.Err()
		case <-s.closed:
			return Batch{}, context.Canceled
		case <-moved:
		}
	}
}

// linger adds to b what the Tail takes in while b waits, up to the subscription's Linger and
// batch size.
func (s *tailSubscription) linger(ctx context.Context, b Batch, moved <-chan struct{}) Batch {
	if s.opts.Linger <= 0 || len(b.Events) >= s.limit || !b.CaughtUp {
		return b
	}
	timer := time.NewTimer(s.opts.Linger)
	defer timer.Stop()
	for len(b.Events) < s.limit {
		select {
		case <-ctx.Done():
			return b
		case <-s.closed:
			return b
		case <-timer.C:
			return b
		case <-moved:
		}
		more, next, ok := s.t.take(b.Position, s.opts.Filter, s.limit-len(b.Events))
		if !ok {
			return b
		}
		b.Events = append(b.Events, more.Events...)
		b.Position, b.CaughtUp, moved = more.Position, more.CaughtUp, next
	}
	return b
}

// Close implements Subscription.
func (s *tailSubscription) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.mu.Lock()
		s.done = true
		if s.own != nil {
			s.own.Close()
		}
		s.mu.Unlock()
		s.t.leave()
	})
}
