package eventstore

import "context"

// Correlations finds the events of one business flow: every event whose metadata carries a
// correlation id, across all streams, in log order. Every adapter answers it (PostgreSQL from an
// index on the correlation id, EventStoreDB from its $bc-<id> system stream); an order's timeline
// is built on it.
type Correlations interface {
	// ByCorrelation returns at most limit events (0: all) correlated to id, in log order; none is
	// an empty answer, not an error.
	ByCorrelation(ctx context.Context, id string, limit int) ([]RecordedEvent, error)
}

// MaxCorrelated bounds what a timeline reads of one flow.
const MaxCorrelated = 10_000
