package projections

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
)

// The statements QueuePlannedNow queues around its own.
const (
	PlanNow    = planNow
	PlanCached = planCached
)

// Finishing is finishing, for its test.
var Finishing = finishing

// The errors a batch's move of its checkpoints refuses with, for their test.
var (
	ErrFenced          = errFenced
	ErrCheckpointMoved = errCheckpointMoved
)

// Advance moves read model name's checkpoints of parts, each from epoch and position from to
// position to, as a batch does (advanceSQL), in a transaction of its own.
func Advance(ctx context.Context, pool *pgxpool.Pool, name string, parts []int, epochs []int64, from, to []uint64) error {
	m := moves{name: name, parts: parts, expected: map[int]partition{}, to: map[int]partition{}}
	for i, part := range parts {
		m.expected[part] = partition{epoch: epochs[i], pos: eventstore.Position{Commit: from[i], Prepare: from[i]}}
		m.to[part] = partition{epoch: epochs[i], pos: eventstore.Position{Commit: to[i], Prepare: to[i]}}
	}
	_, err := pool.Exec(ctx, advanceSQL, m.advanceArgs()...)
	return checkpointError(err)
}
