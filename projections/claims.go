package projections

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
)

// A read model's log is split into partitions: an event belongs to one by its key (Partitioned;
// the stream by default; eventstore.PartitionOf), so that each key's events are applied in log order by one worker. Each
// partition has its own checkpoint row (projection_checkpoints, one row per partition), committed
// with its rows; the read model is as far as its slowest partition.
//
// Workers share the partitions through claims in the read model's own database, beside the
// checkpoints: a worker renews its claims every Heartbeat, and a claim not renewed for ClaimTTL
// may be taken by another worker. Workers say they are alive in projection_workers; partition p
// belongs to the live worker at p mod the number of live workers (sorted by id), so that shares
// are fair and every worker computes the same assignment. A worker that has too many releases
// them once its work on them stopped; one that has too few takes free or expired ones.
//
// Fencing: taking a partition increments the epoch in its checkpoint row, in the same transaction
// that takes the claim (which waits for a commit of the old owner in flight), and every commit
// locks its partitions' checkpoint rows and checks their epochs. A worker that was paused past its
// claim (GC, SIGSTOP, a VM stall) finds another epoch there and commits nothing.

// Partitioned is a Projection that says which key its events are partitioned by (e.g. the order
// they are about); others are partitioned by stream. Every event of one key is applied by one
// worker, in log order.
type Partitioned interface {
	PartitionBy() eventstore.PartitionKey
}

// DefaultPartitions is Options.Partitions by default.
const DefaultPartitions = 16

// claimsDDL: the claims and the workers beside the checkpoints (see checkpointDDL).
const claimsDDL = `create table if not exists projection_claims (
  name text not null,
  part int not null,
  owner text not null default '',
  expires_at timestamptz not null default 'epoch',
  primary key (name, part));
create table if not exists projection_workers (
  name text not null,
  worker text not null,
  expires_at timestamptz not null,
  primary key (name, worker))`

// newWorkerID names this worker: host, process and a random part (two projectors of one read
// model in one process are two workers).
func newWorkerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

// partition is a claimed partition as a worker holds it: the epoch it claimed it at and the
// position its checkpoint row had then (kept up to date by the worker's commits).
type partition struct {
	epoch int64
	pos   eventstore.Position
}

// claims is one worker's side of a read model's claims table.
type claims struct {
	pool   *pgxpool.Pool
	name   string
	worker string
	n      int
	ttl    time.Duration
}

// preparePartitions creates the n partitions' checkpoint and claim rows of a read model if
// missing. A read model that had one checkpoint (before partitions, or with one) is spread over
// n: each partition starts where it was. Another number than n is refused: the partitions of a
// read model are fixed until it is rebuilt.
func preparePartitions(ctx context.Context, tx pgx.Tx, name string, n int) error {
	var have int
	if err := tx.QueryRow(ctx, `select count(*) from projection_checkpoints where name = $1`, name).Scan(&have); err != nil {
		return err
	}
	if have != 0 && have != 1 && have != n {
		return fmt.Errorf("read model %s has %d partitions, configured %d: rebuild it to change their number", name, have, n)
	}
	if have == 1 && n > 1 {
		var part int
		if err := tx.QueryRow(ctx, `select part from projection_checkpoints where name = $1`, name).Scan(&part); err != nil {
			return err
		}
		if part != 0 {
			return fmt.Errorf("read model %s has 1 partition (%d), configured %d: rebuild it to change their number", name, part, n)
		}
	}
	if _, err := tx.Exec(ctx, `insert into projection_checkpoints (name, part, commit_position, prepare_position)
select $1, g, coalesce(c.commit_position, 0), coalesce(c.prepare_position, 0)
from generate_series(0, $2 - 1) g left join projection_checkpoints c on c.name = $1 and c.part = 0
on conflict (name, part) do nothing`, name, n); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `insert into projection_claims (name, part) select $1, g from generate_series(0, $2 - 1) g on conflict do nothing`, name, n)
	return err
}

// beat says this worker is alive and answers the live workers, sorted, this one included. The
// rows of workers gone for a minute go (a worker's id is new with each process).
func (c *claims) beat(ctx context.Context) ([]string, error) {
	ttl := c.ttl.Seconds()
	rows, err := c.pool.Query(ctx, `with gone as (delete from projection_workers where name = $1 and expires_at < now() - interval '1 minute'),
me as (insert into projection_workers (name, worker, expires_at) values ($1, $2, now() + make_interval(secs => $3))
  on conflict (name, worker) do update set expires_at = excluded.expires_at returning worker)
select worker from projection_workers where name = $1 and expires_at > now() and worker <> $2 union select worker from me order by 1`, c.name, c.worker, ttl)
	if err != nil {
		return nil, fmt.Errorf("workers of %s: %w", c.name, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// assigned is the partitions this worker should hold among live workers.
func (c *claims) assigned(live []string) []int {
	i := slices.Index(live, c.worker)
	if i < 0 {
		return nil
	}
	var out []int
	for p := i; p < c.n; p += len(live) {
		out = append(out, p)
	}
	return out
}

// renew extends this worker's claims and answers those it still has (a claim taken by another
// worker after it expired is gone).
func (c *claims) renew(ctx context.Context) ([]int, error) {
	rows, err := c.pool.Query(ctx, `update projection_claims set expires_at = now() + make_interval(secs => $3)
where name = $1 and owner = $2 returning part`, c.name, c.worker, c.ttl.Seconds())
	if err != nil {
		return nil, fmt.Errorf("renew claims on %s: %w", c.name, err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int])
	slices.Sort(held)
	return held, err
}

// release gives parts up (this worker stopped working on them), and with leave, its place among
// the workers.
func (c *claims) release(ctx context.Context, parts []int, leave bool) error {
	_, err := c.pool.Exec(ctx, `update projection_claims set owner = '', expires_at = 'epoch' where name = $1 and owner = $2 and part = any($3)`, c.name, c.worker, parts)
	if err == nil && leave {
		_, err = c.pool.Exec(ctx, `delete from projection_workers where name = $1 and worker = $2`, c.name, c.worker)
	}
	return err
}

// claim takes those of parts that are free, expired or already this worker's, each at a new
// epoch, and answers them with their checkpoints. The epoch moves in the checkpoint row, which
// waits for a commit of the old owner in flight (at most lock_timeout: then the partition is left
// for the next try).
func (c *claims) claim(ctx context.Context, parts []int) (map[int]partition, error) {
	if len(parts) == 0 {
		return map[int]partition{}, nil
	}
	var got map[int]partition
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local lock_timeout = '1s'`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `with taken as (
  update projection_claims set owner = $2, expires_at = now() + make_interval(secs => $4)
  where name = $1 and part = any($3) and (owner = '' or owner = $2 or expires_at < now()) returning part)
update projection_checkpoints c set epoch = c.epoch + 1 from taken where c.name = $1 and c.part = taken.part
returning c.part, c.epoch, c.commit_position, c.prepare_position`, c.name, c.worker, parts, c.ttl.Seconds())
		got, err = scanPartitions(rows, err)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim partitions of %s: %w", c.name, err)
	}
	return got, nil
}

// scanPartitions reads rows of (part, epoch, commit_position, prepare_position), of a query that
// failed with err or not.
func scanPartitions(rows pgx.Rows, err error) (map[int]partition, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]partition{}
	for rows.Next() {
		var part int
		var pt partition
		var c, pr int64
		if err := rows.Scan(&part, &pt.epoch, &c, &pr); err != nil {
			return nil, err
		}
		pt.pos = eventstore.Position{Commit: uint64(c), Prepare: uint64(pr)}
		out[part] = pt
	}
	return out, rows.Err()
}

// PartitionStatus is one partition of a read model as its tables say: where it is, who holds it
// and until when.
type PartitionStatus struct {
	Part      int
	Position  eventstore.Position
	Epoch     int64
	Owner     string
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// ReadPartitions reads the partitions of read model name in its database.
func ReadPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, name string) ([]PartitionStatus, error) {
	rows, err := q.Query(ctx, `select c.part, c.commit_position, c.prepare_position, c.epoch,
  case when l.expires_at > now() then l.owner else '' end, coalesce(l.expires_at, 'epoch'), c.updated_at
from projection_checkpoints c left join projection_claims l on l.name = c.name and l.part = c.part
where c.name = $1 order by c.part`, name)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", name, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PartitionStatus, error) {
		var s PartitionStatus
		var cp, pp int64
		err := r.Scan(&s.Part, &cp, &pp, &s.Epoch, &s.Owner, &s.ExpiresAt, &s.UpdatedAt)
		s.Position = eventstore.Position{Commit: uint64(cp), Prepare: uint64(pp)}
		return s, err
	})
}

// partsString formats partition numbers for logs.
func partsString(parts []int) string {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = strconv.Itoa(p)
	}
	return fmt.Sprint(s)
}
