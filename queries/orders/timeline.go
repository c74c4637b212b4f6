package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// Timeline is order id's life as the event log tells it, across streams: the order's own events,
// its stock reservation's, its payment's, and the events of the flows that touched it (found by
// their correlation ids: the reservations on each product's stream), in log order. Of the
// correlated events only those about this order are kept (their stream is the order's, or their
// payload names it): a caller cannot pull another order's events in by reusing a correlation id.
// An unknown order has an empty timeline.
func Timeline(ctx context.Context, store eventstore.Store, id string) ([]wire.TimelineEntry, error) {
	var events []eventstore.RecordedEvent
	seen := map[uuid.UUID]bool{}
	add := func(es []eventstore.RecordedEvent, filter bool) {
		for _, e := range es {
			if !seen[e.ID] && (!filter || about(e, id)) {
				seen[e.ID] = true
				events = append(events, e)
			}
		}
	}
	own, err := readAll(ctx, store, order.Stream(id))
	if err != nil || len(own) == 0 {
		return nil, err
	}
	add(own, false)
	for _, stream := range []string{inventory.ReservationStream(id), payment.Stream(id)} {
		es, err := readAll(ctx, store, stream)
		if err != nil {
			return nil, err
		}
		add(es, false)
	}
	if c, ok := store.(eventstore.Correlations); ok {
		flows := []string{id} // sagas started before flows were kept correlate by order id
		for _, e := range own {
			if f := e.Metadata.CorrelationID; f != "" && !slices.Contains(flows, f) {
				flows = append(flows, f)
			}
		}
		for _, f := range flows {
			es, err := c.ByCorrelation(ctx, f, eventstore.MaxCorrelated)
			if err != nil {
				return nil, err
			}
			add(es, true)
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Position.Compare(events[j].Position) < 0 })
	out := make([]wire.TimelineEntry, len(events))
	for i, e := range events {
		out[i] = wire.TimelineEntry{At: e.RecordedAt.UTC(), Stream: e.Stream, Type: e.Type, Position: e.Position.String(),
			CorrelationID: e.Metadata.CorrelationID, CausationID: e.Metadata.CausationID, TraceID: telemetry.TraceID(e.Metadata.TraceParent),
			Actor: e.Metadata.Actor, Summary: summary(e.Type, e.Data)}
	}
	return out, nil
}

// OrderTimeline answers order req.ID's timeline (Timeline): every event of its life, whatever the
// read model holds; empty for an unknown order.
func (s Service) OrderTimeline(ctx context.Context, req wire.OrderByID) ([]wire.TimelineEntry, error) {
	var bad *domain.RuleError
	if errors.As(domain.CheckID("id", req.ID), &bad) {
		return nil, &rpc.Error{Code: rpc.CodeInvalid, Field: bad.Field, Message: bad.Reason}
	}
	if s.Store == nil {
		return nil, rpc.Errorf(rpc.CodeUnavailable, "this order-queries instance reads no event store")
	}
	if scope := auth.CustomerScope(ctx); scope != "" { // another customer's order has no timeline to it
		var mine bool
		err := s.Pool.QueryRow(ctx, `select exists (select from orders where order_id = $1 and customer_id = $2)`, req.ID, scope).Scan(&mine)
		if err != nil || !mine {
			return []wire.TimelineEntry{}, err
		}
	}
	return Timeline(ctx, s.Store, req.ID)
}

// readAll reads a whole stream; a stream that does not exist is empty.
func readAll(ctx context.Context, store eventstore.Store, stream string) ([]eventstore.RecordedEvent, error) {
	es, err := store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	return es, err
}

// about reports whether e concerns order id: its stream is one of the order's, or its payload
// names the order.
func about(e eventstore.RecordedEvent, id string) bool {
	if e.Stream == order.Stream(id) || e.Stream == inventory.ReservationStream(id) || e.Stream == payment.Stream(id) {
		return true
	}
	var p struct {
		OrderID string `json:"orderId"`
	}
	return json.Unmarshal(e.Data, &p) == nil && p.OrderID == id
}

// summary says in a few words what an event says: what happened (its type's name) and its
// payload's scalar fields but the time and the order id (every entry is about the order), and how
// many items its lists hold.
func summary(typ string, data []byte) string {
	what := typ
	if parts := strings.Split(typ, "."); len(parts) >= 2 {
		what = strings.ReplaceAll(parts[len(parts)-2], "_", " ")
	}
	var fields map[string]any
	if json.Unmarshal(data, &fields) != nil {
		return what
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "at" && k != "orderId" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		switch v := fields[k].(type) {
		case []any:
			parts = append(parts, fmt.Sprintf("%d %s", len(v), k))
		case map[string]any:
			parts = append(parts, k)
		case string:
			if v != "" {
				parts = append(parts, k+" "+v)
			}
		default:
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	if len(parts) > 0 {
		what += ": " + strings.Join(parts, ", ")
	}
	s := []rune(what)
	if len(s) > 200 {
		return string(s[:200]) + "…"
	}
	return string(s)
}
