// Package catalog is the catalog read model: products with price, stock on hand, reserved and
// available, searchable by name or sku prefix, with a low-stock listing.
package catalog

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	model "github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/eventstore"
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

// Apply implements projections.Projection. Stock events carry their quantities, so counters
// move without reading rows; every statement is keyed by product.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	batch := &pgx.Batch{}
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
		case model.Restocked:
			batch.Queue(`update products set on_hand = on_hand + $2, updated_at = $3 where product_id = $1`, e.ProductID, e.Quantity, e.At)
		case model.Discontinued:
			batch.Queue(`update products set discontinued = true, updated_at = $2 where product_id = $1`, e.ProductID, e.At)
		case model.Reserved:
			batch.Queue(`update products set reserved = reserved + $2, updated_at = $3 where product_id = $1`, e.ProductID, e.Quantity, e.At)
		case model.Released:
			batch.Queue(`update products set reserved = reserved - $2, updated_at = $3 where product_id = $1`, e.ProductID, e.Quantity, e.At)
		case model.Committed:
			batch.Queue(`update products set reserved = reserved - $2, on_hand = on_hand - $2, updated_at = $3 where product_id = $1`, e.ProductID, e.Quantity, e.At)
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, batch).Close()
}
