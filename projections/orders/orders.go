// Package orders is the orders read model: one row per order with its lines, total, status and
// timestamps, built from order events.
package orders

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/wire"
)

// Name of the read model, its checkpoint and its progress subject.
const Name = "orders"

// Projection builds the orders table.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return Name }

// Filter implements projections.Projection.
func (Projection) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypePrefixes: []string{model.TypePrefix}}
}

// Tables are the read model's tables, for tools that copy them.
var Tables = []string{"orders", "order_history"}

// The read model's DDL in parts, so that a bulk load can build keys and indexes after loading the
// rows: tables, primary keys, secondary indexes, and the bulk load's staging table.
var (
	//go:embed schema.sql
	tables string
	// Keys are the tables' primary keys.
	//
	//go:embed keys.sql
	Keys string
	// Indexes are the read model's secondary indexes.
	//
	//go:embed indexes.sql
	Indexes string
	//go:embed changes.sql
	changes string
)

// Migrate implements projections.Projection.
func (Projection) Migrate(ctx context.Context, tx pgx.Tx) error {
	var exists bool
	if err := tx.QueryRow(ctx, `select to_regclass('orders') is not null`).Scan(&exists); err != nil {
		return err
	}
	if exists {
		_, err := tx.Exec(ctx, Indexes)
		return err
	}
	_, err := tx.Exec(ctx, tables+Keys+Indexes)
	return err
}

// WritesOnly implements projections.WriteOnly: Queue reads nothing.
func (Projection) WritesOnly() {}

// Queue implements projections.Pipelined. A batch is folded in memory first (an order placed
// and moved on in the same batch is written once, in its last state) and then written with three
// statements whatever its size: new orders, changes to orders of earlier batches, history rows.
// Every statement is idempotent (on conflict do nothing, updates to a final value).
func (Projection) Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, batch *pgx.Batch) error {
	f, err := foldBatch(events)
	if err != nil {
		return err
	}
	if len(f.newRows) > 0 {
		batch.Queue(`insert into orders (order_id, customer_id, status, total_cents, lines, placed_at, updated_at, cancelled_at, cancel_reason)
select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::text[])
on conflict (order_id) do nothing`, newColumns(f.newRows)...)
	}
	f.queueUpdates(batch)
	if len(f.history) > 0 {
		batch.Queue(`insert into order_history (order_id, revision, status, at)
select * from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) on conflict do nothing`, historyColumns(f.history)...)
	}
	return nil
}

// Apply implements projections.Projection: Queue's statements, sent.
func (p Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return projections.Send(ctx, tx, events, p.Queue)
}

// Keys implements projections.Keyed: "order:ID" for each order the events change and
// "customer:ID" for each customer with a new order among them. Only placed orders are decoded
// (an order's id is its stream's name).
func (Projection) Keys(events []eventstore.RecordedEvent) []string {
	seen := make(map[string]bool, len(events))
	keys := make([]string, 0, len(events))
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, e := range events {
		id, ok := strings.CutPrefix(e.Stream, model.StreamPrefix)
		if !ok {
			return nil // not an order stream: cannot say
		}
		add(wire.OrderKey(id))
		if e.Type == model.TypePlaced {
			placed, err := domain.DecodeAs[model.Placed](e.Type, e.Data)
			if err != nil {
				return nil
			}
			add(wire.CustomerOrdersKey(placed.CustomerID))
		}
	}
	return keys
}

// BulkMigrate implements projections.BulkLoader: the tables with no key or index at all, and
// order_changes, where each batch leaves the changes to orders placed in earlier batches, applied
// once at the end with one join instead of an indexed update per batch.
func (Projection) BulkMigrate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, tables+changes)
	return err
}

// BulkApply implements projections.BulkLoader: new orders, history rows and changes to earlier
// orders by binary COPY.
func (Projection) BulkApply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	f, err := foldBatch(events)
	if err != nil {
		return err
	}
	at := events[len(events)-1].Position
	copies := []struct {
		table string
		cols  []string
		n     int
		row   func(int) []any
	}{
		{"orders", []string{"order_id", "customer_id", "status", "total_cents", "lines", "placed_at", "updated_at", "cancelled_at", "cancel_reason"},
			len(f.newRows), func(i int) []any {
				r := f.newRows[i]
				return []any{r.id, r.customer, r.status, r.total, r.lines, r.placedAt, r.updatedAt, r.cancelledAt, r.reason}
			}},
		{"order_history", []string{"order_id", "revision", "status", "at"},
			len(f.history), func(i int) []any {
				h := f.history[i]
				return []any{h.order, h.revision, h.status, h.at}
			}},
		{"order_changes", []string{"commit_position", "prepare_position", "order_id", "status", "updated_at", "cancel", "cancelled_at", "cancel_reason"},
			len(f.changed), func(i int) []any {
				r := f.changed[i]
				return []any{int64(at.Commit), int64(at.Prepare), r.id, r.status, r.updatedAt, r.cancelled, r.cancelledAt, r.reason}
			}},
	}
	for _, c := range copies {
		if c.n == 0 {
			continue
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromSlice(c.n, func(i int) ([]any, error) { return c.row(i), nil })); err != nil {
			return fmt.Errorf("copy %s: %w", c.table, err)
		}
	}
	return nil
}

// BulkFinish implements projections.BulkLoader: the staged changes applied (the latest status
// of each order, and its latest cancellation), then keys and indexes built on two connections at
// once, the orders' beside the history's, in transactions of their own. Each step can run again.
func (Projection) BulkFinish(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var staged bool
		if err := tx.QueryRow(ctx, `select to_regclass('order_changes') is not null`).Scan(&staged); err != nil || !staged {
			return err
		}
		_, err := tx.Exec(ctx, `update orders o set status = l.status, updated_at = l.updated_at,
  cancelled_at = coalesce(c.cancelled_at, o.cancelled_at), cancel_reason = coalesce(c.cancel_reason, o.cancel_reason)
  from (select distinct on (order_id) order_id, status, updated_at from order_changes
         order by order_id, commit_position desc, prepare_position desc) l
  left join (select distinct on (order_id) order_id, cancelled_at, cancel_reason from order_changes where cancel
              order by order_id, commit_position desc, prepare_position desc) c using (order_id)
 where o.order_id = l.order_id;
drop table order_changes`)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply staged changes: %w", err)
	}
	build := func(ddl string) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `set local maintenance_work_mem = '256MB'; `+ddl)
			return err
		})
	}
	errs := make(chan error, 2)
	go func() {
		errs <- build(`create unique index if not exists order_history_pkey on order_history (order_id, revision)`)
	}()
	go func() {
		errs <- build(`create unique index if not exists orders_pkey on orders (order_id); ` + Indexes)
	}()
	if err := errors.Join(<-errs, <-errs); err != nil {
		return fmt.Errorf("build indexes: %w", err)
	}
	_, err = pool.Exec(ctx, `do $$ begin
  if not exists (select 1 from pg_constraint where conname = 'orders_pkey' and connamespace = current_schema()::regnamespace) then
    alter table orders add constraint orders_pkey primary key using index orders_pkey;
  end if;
  if not exists (select 1 from pg_constraint where conname = 'order_history_pkey' and connamespace = current_schema()::regnamespace) then
    alter table order_history add constraint order_history_pkey primary key using index order_history_pkey;
  end if;
end $$`)
	return err
}

// row is an order's row as a batch leaves it.
type row struct {
	id, customer, status, reason string
	total                        int64
	lines                        []byte
	placedAt, updatedAt          time.Time
	cancelledAt                  pgtype.Timestamptz
	isNew, cancelled             bool
}

type historyRow struct {
	order, status string
	revision      int64
	at            time.Time
}

// folded is a batch folded in memory: orders placed in it (newRows), changes to orders placed
// before it (changed), and a history row per status change.
type folded struct {
	newRows, changed []*row
	history          []historyRow
}

func foldBatch(events []eventstore.RecordedEvent) (folded, error) {
	rows := make(map[string]*row, len(events)/2)
	var order []*row
	get := func(id string) *row {
		r, ok := rows[id]
		if !ok {
			r = &row{id: id}
			rows[id] = r
			order = append(order, r)
		}
		return r
	}
	f := folded{history: make([]historyRow, 0, len(events))}
	for _, rec := range events {
		e, err := model.Codec.Decode(rec.Type, rec.Data)
		if err != nil {
			return f, fmt.Errorf("event %s at %s: %w", rec.ID, rec.Position, err)
		}
		var status model.Status
		var at time.Time
		switch e := e.(type) {
		case model.Placed:
			lines, err := json.Marshal(e.Lines)
			if err != nil {
				return f, err
			}
			r := get(e.OrderID)
			r.isNew, r.customer, r.total, r.lines, r.placedAt = true, e.CustomerID, e.TotalCents, lines, e.At
			status, at = model.StatusPlaced, e.At
		case model.Cancelled:
			r := get(e.OrderID)
			r.cancelled, r.reason, r.cancelledAt = true, e.Reason, pgtype.Timestamptz{Time: e.At, Valid: true}
			status, at = model.StatusCancelled, e.At
		case model.Confirmed:
			status, at = model.StatusConfirmed, e.At
		case model.Paid:
			status, at = model.StatusPaid, e.At
		case model.Shipped:
			status, at = model.StatusShipped, e.At
		case model.Delivered:
			status, at = model.StatusDelivered, e.At
		}
		if status == "" {
			continue
		}
		id := e.AboutOrder()
		r := get(id)
		r.status, r.updatedAt = string(status), at
		f.history = append(f.history, historyRow{order: id, revision: rec.Revision, status: string(status), at: at})
	}
	for _, r := range order {
		switch {
		case r.isNew:
			f.newRows = append(f.newRows, r)
		case r.status != "":
			f.changed = append(f.changed, r)
		}
	}
	return f, nil
}

// queueUpdates queues the changes to orders of earlier batches as one statement, planned for the
// table's size now (projections.QueuePlannedNow): it finds the orders by their key once the table
// has grown.
func (f folded) queueUpdates(batch *pgx.Batch) {
	if len(f.changed) == 0 {
		return
	}
	projections.QueuePlannedNow(batch, `update orders o set status = v.status, updated_at = v.updated_at,
  cancelled_at = case when v.cancel then v.cancelled_at else o.cancelled_at end,
  cancel_reason = case when v.cancel then v.reason else o.cancel_reason end
from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::bool[]) v(id, status, updated_at, cancelled_at, reason, cancel)
where o.order_id = v.id`, updateColumns(f.changed)...)
}

// newColumns are new orders as unnest arrays.
func newColumns(rows []*row) []any {
	var (
		id, customer, status, lines, reason []string
		total                               []int64
		placed, updated                     []time.Time
		cancelled                           []pgtype.Timestamptz
	)
	for _, r := range rows {
		id, customer, status, lines, reason = append(id, r.id), append(customer, r.customer), append(status, r.status), append(lines, string(r.lines)), append(reason, r.reason)
		total, placed, updated, cancelled = append(total, r.total), append(placed, r.placedAt), append(updated, r.updatedAt), append(cancelled, r.cancelledAt)
	}
	return []any{id, customer, status, total, lines, placed, updated, cancelled, reason}
}

// updateColumns are changes as unnest arrays.
func updateColumns(rows []*row) []any {
	var (
		id, status, reason []string
		updated            []time.Time
		cancelledAt        []pgtype.Timestamptz
		cancel             []bool
	)
	for _, r := range rows {
		id, status, reason = append(id, r.id), append(status, r.status), append(reason, r.reason)
		updated, cancelledAt, cancel = append(updated, r.updatedAt), append(cancelledAt, r.cancelledAt), append(cancel, r.cancelled)
	}
	return []any{id, status, updated, cancelledAt, reason, cancel}
}

// historyColumns are history rows as unnest arrays.
func historyColumns(rows []historyRow) []any {
	var (
		order, status []string
		revision      []int64
		at            []time.Time
	)
	for _, h := range rows {
		order, revision, status, at = append(order, h.order), append(revision, h.revision), append(status, h.status), append(at, h.at)
	}
	return []any{order, revision, status, at}
}
