package eventstore

import (
	"context"
	"errors"
	"fmt"
)

// Condition is a fact about another stream that an append may depend on: that stream is at
// Revision (NoRevision: it has no events). A command decided on what other aggregates said (an
// order placed at the catalog's prices, for a customer whose account is open) appends only while
// what it was told still holds.
type Condition struct {
	Stream   string
	Revision int64
}

// ErrConditionFailed: a stream an append was conditioned on has moved since (ConditionError).
// Nothing was appended: ask again what the condition stood for, and decide again.
var ErrConditionFailed = errors.New("condition of the append no longer holds")

// ConditionError says which condition failed. It matches ErrConditionFailed with errors.Is.
type ConditionError struct {
	Condition Condition
	// Actual is the stream's revision when the append was refused.
	Actual int64
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("%v: %s was expected at %d, is at %d", ErrConditionFailed, e.Condition.Stream, e.Condition.Revision, e.Actual)
}

// Is makes errors.Is(err, ErrConditionFailed) true.
func (e *ConditionError) Is(target error) bool { return target == ErrConditionFailed }

// ConditionalStore is kept by stores that check an append's conditions in the transaction of the
// append (PostgreSQL): atomically, as the expected revision is checked.
type ConditionalStore interface {
	// AppendIf is Append when every condition holds; else nothing is appended and the error is a
	// *ConditionError — unless the stream already holds these events (a retry of an append that
	// was made while they held), which answers as Append does.
	AppendIf(ctx context.Context, stream string, expected ExpectedRevision, events []EventData, conditions []Condition) (AppendResult, error)
}

// AppendIf appends events to stream when every condition holds (see ConditionalStore). On a
// store that cannot check them in its append (EventStoreDB), each condition's stream is read
// first, then the events are appended: the conditions held just before the append, not at it
// (and a failed one costs a read of the stream, to tell a retry).
func AppendIf(ctx context.Context, s Store, stream string, expected ExpectedRevision, events []EventData, conditions []Condition) (AppendResult, error) {
	if len(conditions) == 0 {
		return s.Append(ctx, stream, expected, events)
	}
	if cs, ok := s.(ConditionalStore); ok {
		return cs.AppendIf(ctx, stream, expected, events, conditions)
	}
	if err := CheckConditions(ctx, s, conditions); err != nil {
		if retry, rerr := holdsAny(ctx, s, stream, events); rerr != nil || !retry {
			return AppendResult{}, errors.Join(err, rerr)
		}
		// The stream holds them: a retry of an append made while the conditions held.
	}
	return s.Append(ctx, stream, expected, events)
}

// holdsAny reports whether stream holds any of events (by id).
func holdsAny(ctx context.Context, s Store, stream string, events []EventData) (bool, error) {
	held, err := s.ReadStream(ctx, stream, ReadStreamOptions{})
	if errors.Is(err, ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, h := range held {
		for _, e := range events {
			if h.ID == e.ID {
				return true, nil
			}
		}
	}
	return false, nil
}

// CheckConditions reads the head of each condition's stream: a *ConditionError for the first that
// does not hold.
func CheckConditions(ctx context.Context, s Store, conditions []Condition) error {
	for _, c := range conditions {
		actual, err := Head(ctx, s, c.Stream)
		if err != nil {
			return err
		}
		if actual != c.Revision {
			return &ConditionError{Condition: c, Actual: actual}
		}
	}
	return nil
}

// Head is stream's revision in s: that of its last event, NoRevision when it has none.
func Head(ctx context.Context, s Store, stream string) (int64, error) {
	last, err := s.ReadStream(ctx, stream, ReadStreamOptions{Direction: Backwards, From: -1, Limit: 1})
	switch {
	case errors.Is(err, ErrStreamNotFound):
		return NoRevision, nil
	case err != nil:
		return 0, fmt.Errorf("read the head of %s: %w", stream, err)
	case len(last) == 0:
		return NoRevision, nil
	}
	return last[0].Revision, nil
}
