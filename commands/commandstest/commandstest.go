// Package commandstest helps the tests of command services and of what they feed.
package commandstest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/commands/inventory"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/wire"
)

// Must fails the test if the command it is given failed, and answers its reply:
// Must(t)(h.Restock(ctx, req)).
func Must(t testing.TB) func(wire.CommandReply, error) wire.CommandReply {
	return func(r wire.CommandReply, err error) wire.CommandReply {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// Meta is the metadata of a command with id.
func Meta(id string) wire.CommandMeta { return wire.CommandMeta{CommandID: id} }

// Shop is what the order service asks as it places an order (its Catalog and Customers), fixed
// for a test: the catalog knows Catalog's products at their prices; every customer is registered and active but those in
// Closed ("deactivated" or "erased") and Unknown.
type Shop struct {
	Catalog map[string]int64
	Closed  map[string]string
	Unknown map[string]bool
}

// Prices answers the prices of the products the shop knows, as proven (no basis: the shop is
// fixed, nothing to condition an order on).
func (s Shop) Prices(_ context.Context, ids []string, _ bool) (map[string]int64, []wire.StreamAt, error) {
	out := map[string]int64{}
	for _, id := range ids {
		if p, ok := s.Catalog[id]; ok {
			out[id] = p
		}
	}
	return out, nil, nil
}

// Standing answers a customer's standing in the shop (no basis, as Prices).
func (s Shop) Standing(_ context.Context, id string, _ bool) (wire.CustomerStanding, error) {
	switch {
	case s.Unknown[id]:
		return wire.CustomerStanding{CustomerID: id}, nil
	case s.Closed[id] != "":
		return wire.CustomerStanding{CustomerID: id, Registered: true, Closed: s.Closed[id]}, nil
	}
	return wire.CustomerStanding{CustomerID: id, Registered: true, Active: true}, nil
}

// Quoting is the catalog as the order service asks it (order.Catalog), over an inventory
// instance's handlers, in the test's process.
type Quoting struct{ inventory.Handlers }

// Prices implements order.Catalog with the handlers' Quote.
func (q Quoting) Prices(ctx context.Context, ids []string, proven bool) (map[string]int64, []wire.StreamAt, error) {
	quote, err := q.Quote(ctx, wire.QuoteProducts{ProductIDs: ids, Proven: proven})
	prices := map[string]int64{}
	for _, p := range quote.Products {
		prices[p.ProductID] = p.PriceCents
	}
	return prices, quote.Basis, err
}

// Price is a price to ask in an order's line.
func Price(cents int64) *int64 { return &cents }

// Writer is a fresh Writer over store, as a process's command services share one.
func Writer(store eventstore.Store) *commands.Writer {
	return commands.NewWriter(store, commands.WriterOptions{})
}

// Fold reads stream from store and folds it with agg into its state, as a fresh Writer would;
// it answers the events read too (none: a stream not written yet).
func Fold[S, E any](ctx context.Context, store eventstore.Store, agg commands.Aggregate[S, E], stream string) (S, []eventstore.RecordedEvent, error) {
	var state S
	recorded, err := store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		return state, nil, fmt.Errorf("load %s: %w", stream, err)
	}
	for _, r := range recorded {
		e, err := agg.Decode(r.Type, r.Data)
		if err != nil {
			return state, nil, fmt.Errorf("load %s at revision %d: %w", stream, r.Revision, err)
		}
		state = agg.Evolve(state, e)
	}
	return state, recorded, nil
}
