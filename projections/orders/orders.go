// Package orders is the orders read model: one row per order with its lines, total, status and
// timestamps, built from order events.
package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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

// Apply implements projections.Projection: every event becomes statements, all sent in one
// round trip. Statements are idempotent, so a replay over existing rows changes nothing.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	batch := &pgx.Batch{}
	for _, r := range events {
		e, err := model.Decode(r.Type, r.Data)
		if err != nil {
			return fmt.Errorf("event %s at %s: %w", r.ID, r.Position, err)
		}
		var status model.Status
		var at time.Time
		switch e := e.(type) {
		case model.Placed:
			lines, err := json.Marshal(e.Lines)
			if err != nil {
				return err
			}
			batch.Queue(`insert into orders (order_id, customer_id, status, total_cents, lines, placed_at, updated_at)
values ($1, $2, $3, $4, $5, $6, $6) on conflict (order_id) do nothing`,
				e.OrderID, e.CustomerID, string(model.StatusPlaced), e.TotalCents, lines, e.At)
			status, at = model.StatusPlaced, e.At
		case model.Cancelled:
			batch.Queue(`update orders set status = $2, cancelled_at = $3, cancel_reason = $4, updated_at = $3 where order_id = $1`,
				e.OrderID, string(model.StatusCancelled), e.At, e.Reason)
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
		if status != model.StatusPlaced && status != model.StatusCancelled {
			batch.Queue(`update orders set status = $2, updated_at = $3 where order_id = $1`, orderID(e), string(status), at)
		}
		batch.Queue(`insert into order_history (order_id, revision, status, at) values ($1, $2, $3, $4) on conflict do nothing`,
			orderID(e), r.Revision, string(status), at)
	}
	if batch.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, batch).Close()
}

func orderID(e model.Event) string {
	switch e := e.(type) {
	case model.Placed:
		return e.OrderID
	case model.Cancelled:
		return e.OrderID
	case model.Confirmed:
		return e.OrderID
	case model.Paid:
		return e.OrderID
	case model.Shipped:
		return e.OrderID
	case model.Delivered:
		return e.OrderID
	}
	return ""
}
