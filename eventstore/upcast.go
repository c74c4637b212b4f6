package eventstore

import (
	"context"
	"fmt"
)

// Upcaster turns a stored event of an old shape into the next shape (usually its type's next
// version). Event type names are a stored contract: a changed payload gets a new type name and an
// upcaster from the old one, never an edit of stored events.
type Upcaster func(e RecordedEvent) (RecordedEvent, error)

// Upcasters maps an old event type to its upcaster. Upcasters chain: v1 → v2 → v3.
type Upcasters map[string]Upcaster

// MaxUpcasts bounds a chain, against a cycle in the map.
const MaxUpcasts = 16

// Upcast returns e in its current shape.
func (u Upcasters) Upcast(e RecordedEvent) (RecordedEvent, error) {
	for i := 0; i < MaxUpcasts; i++ {
		up, ok := u[e.Type]
		if !ok {
			return e, nil
		}
		next, err := up(e)
		if err != nil {
			return e, fmt.Errorf("upcast %s event %s: %w", e.Type, e.ID, err)
		}
		e = next
	}
	return e, fmt.Errorf("upcast event %s: more than %d steps (a cycle?)", e.ID, MaxUpcasts)
}

func (u Upcasters) all(events []RecordedEvent) ([]RecordedEvent, error) {
	for i, e := range events {
		up, err := u.Upcast(e)
		if err != nil {
			return nil, err
		}
		events[i] = up
	}
	return events, nil
}

// WithUpcasters returns store as its readers should see it: every event read, from a stream, from
// $all or from a subscription, in its current shape. Appends pass through unchanged. Filters see
// stored types, so an old type must keep its category prefix (order.placed.v1 → order.placed.v2).
func WithUpcasters(store Store, u Upcasters) Store {
	if len(u) == 0 {
		return store
	}
	return WithTransform(store, Transform{Read: func(_ context.Context, events []RecordedEvent) ([]RecordedEvent, error) { return u.all(events) }})
}

// Transform changes events on their way into a store (Write, given each append's stream and
// events) and out of it (Read, given every event read, from a stream, from $all, from a
// subscription or by correlation). Either may be nil.
type Transform struct {
	Write func(ctx context.Context, stream string, events []EventData) ([]EventData, error)
	Read  func(ctx context.Context, events []RecordedEvent) ([]RecordedEvent, error)
}

// WithTransform returns store with t applied to what is appended and read. Snapshots and
// correlation lookups pass through when store has them.
func WithTransform(store Store, t Transform) Store {
	if t.Write == nil {
		t.Write = func(_ context.Context, _ string, events []EventData) ([]EventData, error) { return events, nil }
	}
	if t.Read == nil {
		t.Read = func(_ context.Context, events []RecordedEvent) ([]RecordedEvent, error) { return events, nil }
	}
	return transformed{Store: store, t: t}
}

type transformed struct {
	Store
	t Transform
}

func (s transformed) Append(ctx context.Context, stream string, expected ExpectedRevision, events []EventData) (AppendResult, error) {
	events, err := s.t.Write(ctx, stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	return s.Store.Append(ctx, stream, expected, events)
}

// AppendIf implements ConditionalStore: the wrapped store's conditions (see AppendIf).
func (s transformed) AppendIf(ctx context.Context, stream string, expected ExpectedRevision, events []EventData, conditions []Condition) (AppendResult, error) {
	events, err := s.t.Write(ctx, stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	return AppendIf(ctx, s.Store, stream, expected, events, conditions)
}

func (s transformed) ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error) {
	events, err := s.Store.ReadStream(ctx, stream, opts)
	if err != nil {
		return nil, err
	}
	return s.t.Read(ctx, events)
}

func (s transformed) ReadAll(ctx context.Context, from Position, opts ReadAllOptions) (Page, error) {
	page, err := s.Store.ReadAll(ctx, from, opts)
	if err != nil {
		return page, err
	}
	page.Events, err = s.t.Read(ctx, page.Events)
	return page, err
}

func (s transformed) SubscribeAll(ctx context.Context, from Position, opts SubscribeOptions) (Subscription, error) {
	sub, err := s.Store.SubscribeAll(ctx, from, opts)
	if err != nil {
		return nil, err
	}
	return transformedSubscription{Subscription: sub, t: s.t}, nil
}

type transformedSubscription struct {
	Subscription
	t Transform
}

func (s transformedSubscription) Next(ctx context.Context) (Batch, error) {
	b, err := s.Subscription.Next(ctx)
	if err != nil {
		return b, err
	}
	b.Events, err = s.t.Read(ctx, b.Events)
	return b, err
}

// SaveSnapshot implements Snapshots when the wrapped store does (snapshots hold folded states,
// which a transform does not touch).
func (s transformed) SaveSnapshot(ctx context.Context, stream string, snap Snapshot) error {
	if ss, ok := s.Store.(Snapshots); ok {
		return ss.SaveSnapshot(ctx, stream, snap)
	}
	return nil
}

// LoadSnapshot implements Snapshots when the wrapped store does.
func (s transformed) LoadSnapshot(ctx context.Context, stream string) (Snapshot, error) {
	if ss, ok := s.Store.(Snapshots); ok {
		return ss.LoadSnapshot(ctx, stream)
	}
	return Snapshot{}, ErrSnapshotNotFound
}

// ByCorrelation implements Correlations when the wrapped store does, transforming what it finds.
func (s transformed) ByCorrelation(ctx context.Context, id string, limit int) ([]RecordedEvent, error) {
	c, ok := s.Store.(Correlations)
	if !ok {
		return nil, fmt.Errorf("%T cannot find events by correlation id", s.Store)
	}
	events, err := c.ByCorrelation(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	return s.t.Read(ctx, events)
}
