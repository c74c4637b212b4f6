package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/wire"
)

// ReadCheckpoint reads the position projection name has committed in its read model's database
// (table projection_checkpoints, kept by the projector in the same transaction as its rows): its
// slowest partition's. A projection that has committed nothing is at eventstore.Start.
func ReadCheckpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (eventstore.Position, error) {
	var c, p int64
	err := q.QueryRow(ctx, `select commit_position, prepare_position from projection_checkpoints where name = $1`+slowest, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	return eventstore.Position{Commit: uint64(c), Prepare: uint64(p)}, nil
}

// slowest picks, of a read model's partitions' checkpoints, the one furthest behind: the read
// model's position.
const slowest = ` order by commit_position, prepare_position limit 1`

// Follow returns a Waiter that follows projection name's progress in its read model's database
// (pool): the checkpoint at first and when its NATS progress notes are late, the notes of the
// projector on the namespace's progress subject of name otherwise. Close it when done.
func Follow(nc *nats.Conn, ns wire.Namespace, pool *pgxpool.Pool, name string) (*progress.Waiter, error) {
	return progress.NewWaiter(nc, ns.Progress(name), name, func(ctx context.Context) (eventstore.Position, error) {
		return ReadCheckpoint(ctx, pool, name)
	})
}

// QueryService is query service name in namespace ns, answering from PostgreSQL: reads run within
// rpc.QueryLimits, and an unreachable database is answered as unavailable, retry.
func QueryService(name, description string, ns wire.Namespace) rpc.Service {
	return rpc.Service{Name: name, Description: description, Namespace: ns, Limits: rpc.QueryLimits, Classify: pgerr.Classify(nil)}
}

// QueryTarget is the target of a read model's query service: the pool of the read model's
// database, a Waiter on its projector's progress for read-your-writes, and serve, which registers
// the service.
func QueryTarget(name, readModel string, serve func(ctx context.Context, d target.Deps, pool *pgxpool.Pool, rm progress.ReadModel) error) target.Target {
	return target.Target{Name: name, Databases: []target.Database{{Schema: readModel, Conns: 6, Reads: true}},
		Start: func(ctx context.Context, d target.Deps, p *target.Process) error {
			pool := d.ReadPool(readModel)
			w, err := Follow(d.NC, d.Namespace, pool, readModel)
			if err != nil {
				return err
			}
			p.OnStop(w.Close)
			return serve(ctx, d, pool, progress.ReadModel{Waiter: w, ConsistencyTimeout: d.ConsistencyTimeout})
		}}
}
