// Package catalog is the catalog read model: products with price, stock on hand, reserved and
// available, searchable by name or sku prefix, with a low-stock listing.
package catalog

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	model "github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// Name of the read model.
const Name = "catalog"

// Projection builds the products table.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return Name }

// Filter implements projections.Projection: product streams only (not the sku claims).
func (Projection) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{model.Stream("")}}
}

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

// Queue implements projections.Pipelined. Stock events carry their quantities, so counters
// move without reading rows: the batch's stock changes are summed per product and written in one
// statement, after the catalog's own changes (adds, prices, discontinuations), in order; a
// product's updated_at is its last event's time, as if each event were written in turn.
func (Projection) Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, batch *pgx.Batch) error {
	type delta struct {
		onHand, reserved int64
		at               time.Time
	}
	stock := map[string]*delta{}
	var order []string
	move := func(product string, onHand, reserved int64, at time.Time) {
		d := stock[product]
		if d == nil {
			d = &delta{}
			stock[product] = d
			order = append(order, product)
		}
		d.onHand, d.reserved, d.at = d.onHand+onHand, d.reserved+reserved, at // updated as of the product's last event
	}
	for _, r := range events {
		e, err := model.Codec.Decode(r.Type, r.Data)
		if err != nil {
			return fmt.Errorf("event %s at %s: %w", r.ID, r.Position, err)
		}
		switch e := e.(type) {
		case model.Added:
			batch.Queue(`insert into products (product_id, sku, name, price_cents, added_at, updated_at) values ($1, $2, $3, $4, $5, $5)
on conflict (product_id) do nothing`, e.ProductID, e.SKU, e.Name, e.PriceCents, e.At)
		case model.PriceChanged:
			batch.Queue(`update products set price_cents = $2, updated_at = $3 where product_id = $1`, e.ProductID, e.PriceCents, e.At)
			if d := stock[e.ProductID]; d != nil {
				d.at = e.At // the stock statement comes last: it writes the product's last time
			}
		case model.Discontinued:
			batch.Queue(`update products set discontinued = true, updated_at = $2 where product_id = $1`, e.ProductID, e.At)
			if d := stock[e.ProductID]; d != nil {
				d.at = e.At
			}
		case model.Restocked:
			move(e.ProductID, e.Quantity, 0, e.At)
		case model.Reserved:
			move(e.ProductID, 0, e.Quantity, e.At)
		case model.Released:
			move(e.ProductID, 0, -e.Quantity, e.At)
		case model.Committed:
			move(e.ProductID, -e.Quantity, -e.Quantity, e.At)
		}
	}
	if len(order) > 0 {
		ids, onHand, reserved, at := make([]string, len(order)), make([]int64, len(order)), make([]int64, len(order)), make([]time.Time, len(order))
		for i, p := range order {
			ids[i], onHand[i], reserved[i], at[i] = p, stock[p].onHand, stock[p].reserved, stock[p].at
		}
		// Planned for the table's size now, as orders' updates (see QueuePlannedNow).
		projections.QueuePlannedNow(batch, `update products p set on_hand = p.on_hand + d.on_hand, reserved = p.reserved + d.reserved, updated_at = d.at
  from unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[]) d(product_id, on_hand, reserved, at)
 where p.product_id = d.product_id`, ids, onHand, reserved, at)
	}
	return nil
}

// Apply implements projections.Projection: Queue's statements, sent.
func (p Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return projections.Send(ctx, tx, events, p.Queue)
}
