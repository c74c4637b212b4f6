// Package orders is the orders read model: one row per order with its lines, total, status and
// timestamps, built from order events.
package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
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

// Migrate implements projections.Projection.
func (Projection) Migrate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
create table if not exists orders (
  order_id text primary key,
  customer_id text not null,
  status text not null,
  total_cents bigint not null,
  lines jsonb not null,
  placed_at timestamptz not null,
  updated_at timestamptz not null,
  cancelled_at timestamptz,
  cancel_reason text not null default '');
create index if not exists orders_by_customer on orders (customer_id, placed_at desc, order_id desc);
create index if not exists orders_by_status on orders (status, placed_at desc, order_id desc);
create index if not exists orders_by_time on orders (placed_at desc, order_id desc);
create table if not exists order_history (
  order_id text not null,
  revision bigint not null,
  status text not null,
  at timestamptz not null,
  primary key (order_id, revision));`)
	return err
}

// Apply implements projections.Projection. A batch is folded in memory first (an order placed
// and moved on in the same batch is written once, in its last state) and then written with three
// statements whatever its size: new orders, changes to orders of earlier batches, history rows.
// Every statement is idempotent (on conflict do nothing, updates to a final value).
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	type row struct {
		id, customer, status, reason string
		total                        int64
		lines                        []byte
		placedAt, updatedAt          time.Time
		cancelledAt                  pgtype.Timestamptz
		isNew, cancelled             bool
	}
	rows := map[string]*row{}
	var ids []string
	get := func(id string) *row {
		r, ok := rows[id]
		if !ok {
			r = &row{id: id}
			rows[id] = r
			ids = append(ids, id)
		}
		return r
	}
	var hOrder, hStatus []string
	var hRevision []int64
	var hAt []time.Time
	for _, rec := range events {
		e, err := model.Decode(rec.Type, rec.Data)
		if err != nil {
			return fmt.Errorf("event %s at %s: %w", rec.ID, rec.Position, err)
		}
		var status model.Status
		var at time.Time
		switch e := e.(type) {
		case model.Placed:
			lines, err := json.Marshal(e.Lines)
			if err != nil {
				return err
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
		id := model.IDOf(e)
		r := get(id)
		r.status, r.updatedAt = string(status), at
		hOrder, hRevision, hStatus, hAt = append(hOrder, id), append(hRevision, rec.Revision), append(hStatus, string(status)), append(hAt, at)
	}
	var (
		nID, nCustomer, nStatus, nLines, nReason []string
		nTotal                                   []int64
		nPlaced, nUpdated                        []time.Time
		nCancelled                               []pgtype.Timestamptz
		uID, uStatus, uReason                    []string
		uUpdated                                 []time.Time
		uCancelled                               []pgtype.Timestamptz
		uIsCancel                                []bool
	)
	for _, id := range ids {
		r := rows[id]
		if r.isNew {
			nID, nCustomer, nStatus, nLines, nReason = append(nID, id), append(nCustomer, r.customer), append(nStatus, r.status), append(nLines, string(r.lines)), append(nReason, r.reason)
			nTotal, nPlaced, nUpdated, nCancelled = append(nTotal, r.total), append(nPlaced, r.placedAt), append(nUpdated, r.updatedAt), append(nCancelled, r.cancelledAt)
			continue
		}
		if r.status == "" {
			continue
		}
		uID, uStatus, uReason = append(uID, id), append(uStatus, r.status), append(uReason, r.reason)
		uUpdated, uCancelled, uIsCancel = append(uUpdated, r.updatedAt), append(uCancelled, r.cancelledAt), append(uIsCancel, r.cancelled)
	}
	batch := &pgx.Batch{}
	if len(nID) > 0 {
		batch.Queue(`insert into orders (order_id, customer_id, status, total_cents, lines, placed_at, updated_at, cancelled_at, cancel_reason)
select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::text[])
on conflict (order_id) do nothing`, nID, nCustomer, nStatus, nTotal, nLines, nPlaced, nUpdated, nCancelled, nReason)
	}
	if len(uID) > 0 {
		batch.Queue(`update orders o set status = v.status, updated_at = v.updated_at,
  cancelled_at = case when v.cancel then v.cancelled_at else o.cancelled_at end,
  cancel_reason = case when v.cancel then v.reason else o.cancel_reason end
from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::bool[]) v(id, status, updated_at, cancelled_at, reason, cancel)
where o.order_id = v.id`, uID, uStatus, uUpdated, uCancelled, uReason, uIsCancel)
	}
	if len(hOrder) > 0 {
		batch.Queue(`insert into order_history (order_id, revision, status, at)
select * from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) on conflict do nothing`, hOrder, hRevision, hStatus, hAt)
	}
	if batch.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, batch).Close()
}
