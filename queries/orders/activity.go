package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// MaxActivity is the most events one page of an actor's activity holds.
const MaxActivity = 500

// Activity is the activity read model, as a query service reads it.
type Activity struct {
	Pool *pgxpool.Pool
	progress.ReadModel
}

// ActorActivity answers what req.Actor did, newest first, from the activity read model.
func (s Service) ActorActivity(ctx context.Context, req wire.ActorActivity) (wire.ActivityPage, error) {
	var bad *domain.RuleError
	if errors.As(domain.CheckText("actor", req.Actor, 300, true), &bad) {
		return wire.ActivityPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: bad.Field, Message: bad.Reason}
	}
	first := req.First
	switch {
	case first == 0:
		first = 50
	case first < 0 || first > MaxActivity:
		return wire.ActivityPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "first", Message: fmt.Sprintf("must be between 1 and %d", MaxActivity)}
	}
	before := eventstore.Position{Commit: 1<<63 - 1, Prepare: 1<<63 - 1}
	if req.Before != "" {
		p, err := eventstore.ParsePosition(req.Before)
		if err != nil {
			return wire.ActivityPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "before", Message: "not a cursor from this API"}
		}
		before = p
	}
	if s.Activity == nil {
		return wire.ActivityPage{}, rpc.Errorf(rpc.CodeUnavailable, "this order-queries instance keeps no activity read model")
	}
	if err := s.Activity.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.ActivityPage{}, err
	}
	rows, err := s.Activity.Pool.Query(ctx, `select commit_position, prepare_position, stream, type, correlation_id, recorded_at from activity
where actor = $1 and (commit_position, prepare_position) < ($2, $3) order by commit_position desc, prepare_position desc limit $4`,
		req.Actor, int64(before.Commit), int64(before.Prepare), first+1)
	if err != nil {
		return wire.ActivityPage{}, fmt.Errorf("activity: %w", err)
	}
	page := wire.ActivityPage{Entries: []wire.ActivityEntry{}}
	var e wire.ActivityEntry
	var commit, prepare int64
	_, err = pgx.ForEachRow(rows, []any{&commit, &prepare, &e.Stream, &e.Type, &e.CorrelationID, &e.At}, func() error {
		e.Position = eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}.String()
		page.Entries = append(page.Entries, e)
		return nil
	})
	if err != nil {
		return wire.ActivityPage{}, fmt.Errorf("activity: %w", err)
	}
	if len(page.Entries) > first {
		page.Entries = page.Entries[:first]
		page.EndCursor = &page.Entries[first-1].Position
	}
	return page, nil
}
