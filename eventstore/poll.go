package eventstore

import (
	"context"
	"sync"
	"time"
)

// Signal is a broadcast wake-up: C returns a channel that the next Notify closes. Adapters use it
// to wake their own subscribers after an append, so no append transaction ever needs NOTIFY.
// Subscribers with a filter Watch it instead, and NotifyAppend wakes only those whose filter an
// appended event passes: every append wakes every subscription of a process otherwise, and each
// woken one reads $all.
type Signal struct {
	mu       sync.Mutex
	ch       chan struct{}
	watchers map[*Watcher]struct{}
}

// Watcher is a filtered wake-up of a Signal, until Unwatch.
type Watcher struct {
	filter Filter
	ch     chan struct{} // guarded by the Signal's mu
}

// C returns the channel the next Notify closes. Take it before checking for work, then wait on it.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Watch registers a wake-up for appends that pass f.
func (s *Signal) Watch(f Filter) *Watcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchers == nil {
		s.watchers = map[*Watcher]struct{}{}
	}
	w := &Watcher{filter: f, ch: make(chan struct{})}
	s.watchers[w] = struct{}{}
	return w
}

// Unwatch ends w.
func (s *Signal) Unwatch(w *Watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers, w)
}

// WatchC returns the channel that the next notification w's filter passes closes. Take it before
// checking for work, then wait on it.
func (s *Signal) WatchC(w *Watcher) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return w.ch
}

// Notify wakes every waiter and every watcher.
func (s *Signal) Notify() { s.notify(func(*Watcher) bool { return true }) }

// NotifyAppend wakes every waiter, and the watchers whose filter one of events (appended to
// stream) passes.
func (s *Signal) NotifyAppend(stream string, events []EventData) {
	s.notify(func(w *Watcher) bool {
		for _, e := range events {
			if w.filter.Match(stream, e.Type) {
				return true
			}
		}
		return false
	})
}

func (s *Signal) notify(wake func(*Watcher) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	for w := range s.watchers {
		if wake(w) {
			close(w.ch)
			w.ch = make(chan struct{})
		}
	}
}

// ReadAllFunc reads one page of $all, as Store.ReadAll does.
type ReadAllFunc func(ctx context.Context, from Position, opts ReadAllOptions) (Page, error)

// PollingSubscription turns a ReadAll into a Subscription: it reads pages until it reaches the
// end of the log, then waits for wake (appends made through this process that its filter passes)
// or, at the latest, for interval (appends made elsewhere, transactions committing out of order).
//
// While it is behind (a page came back full: more follows at once), it reads the next page while
// its reader handles the one it has: a projector catching up applies and commits one page while
// the store reads the next, instead of the two in turn. At the end of the log it reads only when
// asked (or woken): nothing to read ahead.
type PollingSubscription struct {
	read     ReadAllFunc
	from     Position
	opts     ReadAllOptions
	wake     *Signal
	watcher  *Watcher
	interval time.Duration
	closed   chan struct{}
	once     sync.Once

	mu      sync.Mutex     // ahead, against Close
	ahead   *readAhead     // the page after from, being read since the last Next; nil: none
	reading sync.WaitGroup // reads ahead running
}

// readAhead is a page read in the background.
type readAhead struct {
	cancel context.CancelFunc // ends the read (Close)
	done   chan struct{}      // closed when page and err are set
	page   Page
	err    error
}

// NewPollingSubscription follows $all after from with read. wake may be nil.
func NewPollingSubscription(read ReadAllFunc, from Position, opts SubscribeOptions, wake *Signal, interval time.Duration) *PollingSubscription {
	if wake == nil {
		wake = &Signal{}
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	return &PollingSubscription{
		read: read, from: from, wake: wake, watcher: wake.Watch(opts.Filter), interval: interval, closed: make(chan struct{}),
		opts: ReadAllOptions{Filter: opts.Filter, Limit: opts.BatchSize},
	}
}

// Next implements Subscription.
//
// A wake-up that finds nothing new usually means the append is committed but not yet readable
// (the postgres store waits for older transactions still running): the subscription then looks
// again after 2 ms, 4 ms, … up to the poll interval, rather than sleeping a whole interval.
func (s *PollingSubscription) Next(ctx context.Context) (Batch, error) {
	c := newChase(s.interval)
	defer c.stop()
	for {
		woken := s.wake.WatchC(s.watcher) // appends its filter passes, not every append
		page, err := s.readPage(ctx)
		if err != nil {
			return Batch{}, err
		}
		if len(page.Events) > 0 || page.Position.Compare(s.from) > 0 {
			s.from = page.Position
			if !page.AtEnd {
				s.readAhead(ctx)
			}
			return Batch{Events: page.Events, Position: page.Position, CaughtUp: page.AtEnd}, nil
		}
		if err := c.wait(ctx, woken, s.closed, true); err != nil {
			return Batch{}, err
		}
	}
}

// chase is how a follower of the log waits between reads that found nothing: the poll interval,
// or, while chasing a wake-up that found nothing yet (an append committed, not yet readable), 2 ms,
// 4 ms, … up to the interval.
type chase struct {
	interval, retry time.Duration // retry > 0 while chasing a wake-up
	timer           *time.Timer
}

func newChase(interval time.Duration) *chase {
	return &chase{interval: interval, timer: time.NewTimer(interval)}
}

func (c *chase) stop() { c.timer.Stop() }

// found says the last read found something: the next wait is a whole interval, unless woken.
func (c *chase) found() { c.retry = 0 }

// wait waits for woken, the next poll, ctx or closed (nil: never), shorter while chasing a wake-up
// (unless backOff is false: the last read failed). It answers ctx's error, context.Canceled once
// closed, else nil.
func (c *chase) wait(ctx context.Context, woken, closed <-chan struct{}, backOff bool) error {
	wait := c.interval
	if backOff && c.retry > 0 {
		wait = c.retry
		if c.retry *= 2; c.retry >= c.interval {
			c.retry = 0
		}
	}
	c.timer.Reset(wait)
	defer func() {
		if !c.timer.Stop() {
			select {
			case <-c.timer.C:
			default:
			}
		}
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-closed:
		return context.Canceled
	case <-woken:
		c.retry = 2 * time.Millisecond
	case <-c.timer.C:
	}
	return nil
}

// readPage reads the page after s.from: the one read ahead if there is one (started from s.from,
// which only Next moves, before it starts the next one), else now. A read ahead that ctx ends
// the wait for stays for the next call.
func (s *PollingSubscription) readPage(ctx context.Context) (Page, error) {
	s.mu.Lock()
	a := s.ahead
	s.mu.Unlock()
	if a == nil {
		return s.read(ctx, s.from, s.opts)
	}
	select {
	case <-a.done:
		s.mu.Lock()
		s.ahead = nil
		s.mu.Unlock()
		return a.page, a.err
	case <-ctx.Done():
		return Page{}, ctx.Err()
	case <-s.closed:
		return Page{}, context.Canceled
	}
}

// readAhead starts reading the page after s.from in the background, for the next Next (not once
// the subscription is closed), with ctx's values (the caller's trace) but not its end: Close ends it.
func (s *PollingSubscription) readAhead(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed: // Close cancels only what it finds
		return
	default:
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &readAhead{cancel: cancel, done: make(chan struct{})}
	s.ahead = a
	s.reading.Add(1)
	from := s.from
	go func() {
		defer s.reading.Done()
		defer cancel()
		defer close(a.done)
		a.page, a.err = s.read(rctx, from, s.opts)
	}()
}

// Close implements Subscription. It returns once a read ahead has ended (Close cancels it), so
// that nothing reads the store for a closed subscription.
func (s *PollingSubscription) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.wake.Unwatch(s.watcher)
		s.mu.Lock() // after close(s.closed): no read ahead starts past this point
		if s.ahead != nil {
			s.ahead.cancel()
			s.ahead = nil
		}
		s.mu.Unlock()
		s.reading.Wait()
	})
}
