package esdb

import (
	"context"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/orderflow/orderflow/eventstore"
)

// SubscribeAll implements eventstore.Store.
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	sub := &subscription{
		store: s, filter: opts.Filter, batch: opts.BatchSize, pos: from,
		items: make(chan item, 1024), cancel: cancel,
	}
	if sub.batch <= 0 {
		sub.batch = 500
	}
	// The first subscription is made here so that a server that refuses it fails the call.
	first, err := s.subscribe(ctx, from, opts.Filter)
	if err != nil {
		cancel()
		return nil, err
	}
	go sub.pump(ctx, first)
	return sub, nil
}

func (s *Store) subscribe(ctx context.Context, from eventstore.Position, f eventstore.Filter) (*esdb.Subscription, error) {
	start := esdb.AllPosition(esdb.Start{})
	if !from.IsZero() {
		start = esdb.Position{Commit: from.Commit, Prepare: from.Prepare}
	}
	sub, err := s.client.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{From: start, Filter: serverFilter(f)})
	if err != nil {
		return nil, translate(ctx, "subscribe to $all", err, "$all", eventstore.Any())
	}
	return sub, nil
}

// item is one thing the server said: an event, a checkpoint, caught up, or a fatal error.
type item struct {
	event    *eventstore.RecordedEvent
	pos      eventstore.Position
	caughtUp bool
	err      error
}

type subscription struct {
	store  *Store
	filter eventstore.Filter
	batch  int
	items  chan item
	cancel context.CancelFunc
	once   sync.Once

	pos eventstore.Position // owned by Next
}

// pump receives from the server into items until ctx ends, re-subscribing after a drop from the
// last position it handed on.
func (s *subscription) pump(ctx context.Context, sub *esdb.Subscription) {
	defer close(s.items)
	last := s.pos
	backoff := 100 * time.Millisecond
	for {
		for sub != nil {
			ev := sub.Recv()
			var it item
			switch {
			case ev.SubscriptionDropped != nil:
				_ = sub.Close()
				sub = nil
				if ctx.Err() != nil {
					return
				}
				s.store.opts.Log.Warn("eventstoredb subscription dropped; re-subscribing", "position", last.String(), "err", ev.SubscriptionDropped.Error)
				continue
			case ev.EventAppeared != nil:
				rec, err := recorded(ev.EventAppeared.Event)
				if err != nil {
					it.err = err
					break
				}
				it.pos = rec.Position
				if s.filter.Match(rec.Stream, rec.Type) {
					it.event = &rec
				}
			case ev.CheckPointReached != nil:
				it.pos = eventstore.Position{Commit: ev.CheckPointReached.Commit, Prepare: ev.CheckPointReached.Prepare}
			case ev.CaughtUp != nil:
				it.pos, it.caughtUp = last, true
			default:
				continue
			}
			select {
			case s.items <- it:
			case <-ctx.Done():
				_ = sub.Close()
				return
			}
			if it.err != nil {
				_ = sub.Close()
				return
			}
			if it.pos.Compare(last) > 0 {
				last = it.pos
			}
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.store.opts.MaxBackoff)
		var err error
		if sub, err = s.store.subscribe(ctx, last, s.filter); err != nil {
			s.store.opts.Log.Warn("eventstoredb re-subscribe failed", "position", last.String(), "err", err, "retry_in", backoff)
		} else {
			s.store.opts.Log.Info("eventstoredb subscription re-established", "position", last.String())
		}
	}
}

// Next implements eventstore.Subscription.
func (s *subscription) Next(ctx context.Context) (eventstore.Batch, error) {
	var b eventstore.Batch
	take := func(it item) error {
		if it.err != nil {
			return it.err
		}
		if it.event != nil {
			b.Events = append(b.Events, *it.event)
		}
		if it.pos.Compare(s.pos) > 0 {
			s.pos = it.pos
		}
		b.CaughtUp = b.CaughtUp || it.caughtUp
		return nil
	}
	start := s.pos
	for {
		select {
		case <-ctx.Done():
			return eventstore.Batch{}, ctx.Err()
		case it, ok := <-s.items:
			if !ok {
				return eventstore.Batch{}, context.Canceled
			}
			if err := take(it); err != nil {
				return eventstore.Batch{}, err
			}
		}
		// Take what is already here, up to a batch.
	drain:
		for len(b.Events) < s.batch {
			select {
			case it, ok := <-s.items:
				if !ok {
					break drain
				}
				if err := take(it); err != nil {
					return eventstore.Batch{}, err
				}
			default:
				break drain
			}
		}
		// A caught-up signal is news even where the position did not move (a subscription that
		// starts at the head).
		if len(b.Events) > 0 || s.pos.Compare(start) > 0 || b.CaughtUp {
			b.Position = s.pos
			return b, nil
		}
	}
}

// Close implements eventstore.Subscription.
func (s *subscription) Close() { s.once.Do(s.cancel) }
