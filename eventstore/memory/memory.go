// Package memory is the in-process event store adapter, for unit tests and examples. It keeps
// everything in one slice guarded by a mutex; positions are the 1-based index in that slice.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
)

// Store is an eventstore.Store held in memory. The zero value is not usable: call New.
type Store struct {
	mu      sync.RWMutex
	log     []eventstore.RecordedEvent
	streams map[string][]int             // stream -> indexes into log
	ids     map[string]map[uuid.UUID]int // stream -> event id -> index into log
	wake    eventstore.Signal
	now     func() time.Time
	snaps   map[string]eventstore.Snapshot
}

var (
	_ eventstore.Store     = (*Store)(nil)
	_ eventstore.Snapshots = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{streams: map[string][]int{}, ids: map[string]map[uuid.UUID]int{}, now: time.Now, snaps: map[string]eventstore.Snapshot{}}
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.streams[stream]
	actual := int64(len(idx)) - 1
	if res, ok, err := s.retried(stream, expected, events); ok || err != nil {
		return res, err
	}
	if !expected.Check(actual) {
		return eventstore.AppendResult{}, &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: actual}
	}
	now := s.now().UTC()
	for i, e := range events {
		seq := uint64(len(s.log) + 1)
		s.log = append(s.log, eventstore.RecordedEvent{
			ID: e.ID, Stream: stream, Revision: actual + 1 + int64(i), Type: e.Type,
			Data: slices.Clone(e.Data), Metadata: e.Metadata,
			Position: eventstore.Position{Commit: seq, Prepare: seq}, RecordedAt: now,
		})
		if s.ids[stream] == nil {
			s.ids[stream] = map[uuid.UUID]int{}
		}
		s.ids[stream][e.ID] = len(s.log) - 1
		idx = append(idx, len(s.log)-1)
	}
	s.streams[stream] = idx
	s.wake.NotifyAppend(stream, events)
	last := s.log[len(s.log)-1]
	return eventstore.AppendResult{NextRevision: last.Revision, Position: last.Position}, nil
}

// retried recognises a retry of an append that already happened: every id stored in this stream,
// in order, at the revisions the expectation implies.
func (s *Store) retried(stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, bool, error) {
	found := 0
	var first, last eventstore.RecordedEvent
	for i, e := range events {
		at, ok := s.ids[stream][e.ID]
		if !ok {
			continue
		}
		rec := s.log[at]
		if i == 0 {
			first = rec
		}
		last = rec
		found++
	}
	switch {
	case found == 0:
		return eventstore.AppendResult{}, false, nil
	case found != len(events) || last.Revision-first.Revision != int64(len(events)-1):
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: some event ids are stored already: %w", stream, eventstore.ErrDuplicateEvent)
	}
	if rev, exact := expected.Revision(); exact && first.Revision != rev+1 {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: events stored at revision %d, not after %s: %w", stream, first.Revision, expected, eventstore.ErrDuplicateEvent)
	}
	return eventstore.AppendResult{NextRevision: last.Revision, Position: last.Position}, true, nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx := s.streams[stream]
	if len(idx) == 0 {
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrStreamNotFound)
	}
	var out []eventstore.RecordedEvent
	add := func(i int) bool {
		out = append(out, s.log[idx[i]])
		return opts.Limit == 0 || len(out) < opts.Limit
	}
	if opts.Direction == eventstore.Backwards {
		from := int(opts.From)
		if from < 0 || from >= len(idx) {
			from = len(idx) - 1
		}
		for i := from; i >= 0 && add(i); i-- {
		}
		return out, nil
	}
	for i := max(int(opts.From), 0); i < len(idx) && add(i); i++ {
	}
	return out, nil
}

// ByCorrelation implements eventstore.Correlations.
func (s *Store) ByCorrelation(ctx context.Context, id string, limit int) ([]eventstore.RecordedEvent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []eventstore.RecordedEvent
	for _, e := range s.log {
		if e.Metadata.CorrelationID == id && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, opts eventstore.ReadAllOptions) (eventstore.Page, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Page{}, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	page := eventstore.Page{Position: from}
	start := int(min(from.Commit, uint64(len(s.log))))
	for i := start; i < len(s.log); i++ {
		e := s.log[i]
		page.Position = e.Position
		if !opts.Filter.Match(e.Stream, e.Type) {
			continue
		}
		page.Events = append(page.Events, e)
		if len(page.Events) == limit {
			page.AtEnd = i == len(s.log)-1
			return page, nil
		}
	}
	page.AtEnd = true
	return page, nil
}

// SubscribeAll implements eventstore.Store.
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	return eventstore.NewPollingSubscription(s.ReadAll, from, opts, &s.wake, time.Second), nil
}

// SaveSnapshot implements eventstore.Snapshots.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.snaps[stream]; !ok || old.Revision <= snap.Revision {
		snap.Data = slices.Clone(snap.Data)
		s.snaps[stream] = snap
	}
	return nil
}

// LoadSnapshot implements eventstore.Snapshots.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap, ok := s.snaps[stream]
	if !ok {
		return eventstore.Snapshot{}, fmt.Errorf("%s: %w", stream, eventstore.ErrSnapshotNotFound)
	}
	snap.Data = slices.Clone(snap.Data)
	return snap, nil
}
