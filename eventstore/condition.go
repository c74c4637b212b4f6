package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Condition is a fact about another stream that an append may depend on: that stream has no
// event of Types after Revision (of any type, when Types is empty; NoRevision: none at all). A
// command decided on what other aggregates said (an order placed at the catalog's prices, for a
// customer whose account is open) appends only while what it was told still holds: Types are
// the events that would change it (a price change, not a reservation of the product's stock).
type Condition struct {
	Stream   string
	Revision int64
	Types    []string
}

// brokenBy reports whether event e of Condition c's stream breaks it.
func (c Condition) brokenBy(e RecordedEvent) bool {
	return e.Revision > c.Revision && (len(c.Types) == 0 || slices.Contains(c.Types, e.Type))
}

// ErrConditionFailed: a stream an append was conditioned on has moved since (ConditionError).
// Nothing was appended: ask again what the condition stood for, and decide again.
var ErrConditionFailed = errors.New("condition of the append no longer holds")

// ConditionError says which condition failed. It matches ErrConditionFailed with errors.Is.
type ConditionError struct {
	Condition Condition
	// Actual is the revision of the stream's event that broke it.
	Actual int64
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("%v: %s moved past %d (revision %d)", ErrConditionFailed, e.Condition.Stream, e.Condition.Revision, e.Actual)
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

// CheckConditions reads each condition's stream after its revision: a *ConditionError for the
// first that does not hold.
func CheckConditions(ctx context.Context, s Store, conditions []Condition) error {
	for _, c := range conditions {
		after, err := s.ReadStream(ctx, c.Stream, ReadStreamOptions{From: c.Revision + 1})
		if err != nil && !errors.Is(err, ErrStreamNotFound) {
			return fmt.Errorf("check %s after %d: %w", c.Stream, c.Revision, err)
		}
		for _, e := range after {
			if c.brokenBy(e) {
				return &ConditionError{Condition: c, Actual: e.Revision}
			}
		}
	}
	return nil
}
