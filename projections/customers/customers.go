// Package customers is the customers read model: profiles from customer events, and each
// customer's number of orders and lifetime spend from order events (a projection may read the
// events of several contexts; it never reads another service's tables).
package customers

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	customer "github.com/orderflow/orderflow/domain/customer"
	order "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/projections"
)

// Name of the read model.
const Name = "customers"

// Projection builds the customers and customer_orders tables.
type Projection struct{}

// Name implements projections.Projection.
func (Projection) Name() string { return Name }

// Filter implements projections.Projection: customer streams and order events.
func (Projection) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{customer.Stream(""), order.StreamPrefix}}
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

// redactedAddress is an erased customer's shipping address, as their events read.
var redactedAddress, _ = json.Marshal(personal.Redact[customer.Address]())

// WritesOnly implements projections.WriteOnly: Queue reads nothing.
func (Projection) WritesOnly() {}

// Queue implements projections.Pipelined.
func (Projection) Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, batch *pgx.Batch) error {
	var placed struct {
		orders, customers []string
		totals            []int64
		at                []time.Time
	}
	var cancelled []string
	for _, r := range events {
		switch {
		case strings.HasPrefix(r.Type, customer.TypePrefix):
			e, err := customer.Codec.Decode(r.Type, r.Data)
			if err != nil {
				return fmt.Errorf("event %s at %s: %w", r.ID, r.Position, err)
			}
			switch e := e.(type) {
			case customer.Registered:
				addr, _ := json.Marshal(e.Address)
				batch.Queue(`insert into customers (customer_id, name, email, shipping_address, registered_at, updated_at) values ($1, $2, $3, $4, $5, $5)
on conflict (customer_id) do nothing`, e.CustomerID, e.Name, e.Email, addr, e.At)
			case customer.AddressChanged:
				addr, _ := json.Marshal(e.Address)
				batch.Queue(`update customers set shipping_address = $2, updated_at = $3 where customer_id = $1`, e.CustomerID, addr, e.At)
			case customer.Deactivated:
				batch.Queue(`update customers set active = false, updated_at = $2 where customer_id = $1`, e.CustomerID, e.At)
			case customer.Erased:
				// The copies of the customer's personal data go; the events read redacted from now on.
				batch.Queue(`update customers set name = $2, email = $2, shipping_address = $3, active = false, erased = true, updated_at = $4
where customer_id = $1`, e.CustomerID, personal.Redacted, redactedAddress, e.At)
			}
		default:
			e, err := order.Codec.Decode(r.Type, r.Data)
			if err != nil {
				return fmt.Errorf("event %s at %s: %w", r.ID, r.Position, err)
			}
			switch e := e.(type) {
			case order.Placed:
				placed.orders, placed.customers = append(placed.orders, e.OrderID), append(placed.customers, e.CustomerID)
				placed.totals, placed.at = append(placed.totals, e.TotalCents), append(placed.at, e.At)
			case order.Cancelled:
				cancelled = append(cancelled, e.OrderID)
			}
		}
	}
	// The batch's orders in two statements, placements before cancellations (an order placed and
	// cancelled in one batch is both).
	if len(placed.orders) > 0 {
		batch.Queue(`insert into customer_orders (order_id, customer_id, total_cents, placed_at)
select * from unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) on conflict (order_id) do nothing`,
			placed.orders, placed.customers, placed.totals, placed.at)
	}
	if len(cancelled) > 0 {
		batch.Queue(`update customer_orders set cancelled = true where order_id = any($1)`, cancelled)
	}
	return nil
}

// Apply implements projections.Projection: Queue's statements, sent.
func (p Projection) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return projections.Send(ctx, tx, events, p.Queue)
}
