// Package activity is the activity read model: every event that records its actor (issue 14's
// metadata), by actor, newest first, so that an admin can list what a given customer, admin or
// service did across the whole log, on either event store (EventStoreDB has no index by
// metadata). It is rebuilt from the log like any read model.
package activity

import (
	"context"
	_ "embed"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// Name is the read model's name and schema.
const Name = "activity"

// Projection keeps the activity table.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return Name }

// Filter implements projections.Projection: every event (those without an actor are skipped).
func (Projection) Filter() eventstore.Filter { return eventstore.Filter{} }

// schema is the read model's tables and indexes, created if missing.
//
//go:embed schema.sql
var schema string

// Migrate implements projections.Projection: schema.sql.
func (Projection) Migrate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, schema)
	return err
}

// WritesOnly implements projections.WriteOnly: Queue reads nothing.
func (Projection) WritesOnly() {}

// Queue implements projections.Pipelined: one row per event with an actor, in one statement.
func (Projection) Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, batch *pgx.Batch) error {
	var commits, prepares, revisions []int64
	var streams, actors, types, correlations []string
	var at []time.Time
	for _, e := range events {
		if e.Metadata.Actor == "" {
			continue
		}
		commits, prepares = append(commits, int64(e.Position.Commit)), append(prepares, int64(e.Position.Prepare))
		streams, revisions = append(streams, e.Stream), append(revisions, e.Revision)
		actors, types, correlations = append(actors, e.Metadata.Actor), append(types, e.Type), append(correlations, e.Metadata.CorrelationID)
		at = append(at, e.RecordedAt)
	}
	if len(actors) == 0 {
		return nil
	}
	batch.Queue(`insert into activity (commit_position, prepare_position, stream, revision, actor, type, correlation_id, recorded_at)
select * from unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
on conflict (stream, revision) do nothing`, commits, prepares, streams, revisions, actors, types, correlations, at)
	return nil
}

// Apply implements projections.Projection: Queue's statements, sent.
func (p Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return projections.Send(ctx, tx, events, p.Queue)
}
