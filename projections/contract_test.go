package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/projections/activity"
	"github.com/orderflow/orderflow/projections/catalog"
	"github.com/orderflow/orderflow/projections/customers"
	"github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// The read models' contracts with the event log are recorded here: each read model applies a
// log holding every event type of the domain (scenario), and what it reads of an event is found by
// taking it away: an event type is consumed when the read model's rows change without the event,
// a payload field is read when they change without the field.

// codecs are the domain's codecs, by event type prefix.
var codecs = map[string]domain.Events{
	customer.TypePrefix: customer.Codec.Events(), inventory.TypePrefix: inventory.Codec.Events(), order.TypePrefix: order.Codec.Events(), payment.TypePrefix: payment.Codec.Events(),
}

// step is one event of the scenario: its type, and the fields that differ from the example's.
type step struct {
	typ string
	set map[string]any
}

// scenario is a log a shop could hold: one customer, one product, an order that goes all the way
// and one that is cancelled, their stock and payments.
var scenario = []step{
	{customer.TypeEmailClaimed, nil}, {customer.TypeRegistered, nil}, {customer.TypeAddressChanged, map[string]any{"shippingAddress": map[string]any{"line1": "2 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}}},
	{inventory.TypeSKUClaimed, nil}, {inventory.TypeAdded, nil}, {inventory.TypePriceChanged, map[string]any{"priceCents": 275}}, {inventory.TypeRestocked, map[string]any{"quantity": 10}},
	{order.TypePlaced, nil}, {inventory.TypeReserved, nil}, {inventory.TypeOrderReserved, nil},
	{payment.TypeAuthorized, nil}, {order.TypeConfirmed, nil}, {payment.TypeCaptured, nil}, {inventory.TypeCommitted, nil},
	{order.TypePaid, nil}, {order.TypeShipped, nil}, {order.TypeDelivered, nil}, {payment.TypeRefunded, map[string]any{"amountCents": 1}},
	{order.TypePlaced, map[string]any{"orderId": "o-2"}}, {inventory.TypeReserved, map[string]any{"orderId": "o-2"}},
	{inventory.TypeOrderRejected, map[string]any{"orderId": "o-2"}}, {inventory.TypeReleased, map[string]any{"orderId": "o-2"}},
	{inventory.TypeOrderReleased, map[string]any{"orderId": "o-2"}}, {payment.TypeDeclined, map[string]any{"paymentId": "pay-2", "orderId": "o-2"}},
	{payment.TypeAuthorized, map[string]any{"paymentId": "pay-3", "orderId": "o-2"}}, {payment.TypeVoided, map[string]any{"paymentId": "pay-3", "orderId": "o-2"}},
	{order.TypeCancelled, map[string]any{"orderId": "o-2"}},
	{inventory.TypeDiscontinued, nil}, {customer.TypeDeactivated, nil}, {customer.TypeErased, nil},
}

// exampleFields are the scenario's values of fields by name.
var exampleFields = map[string]string{"customerId": "c-1", "productId": "p-1", "orderId": "o-1", "paymentId": "pay-1",
	"email": "ada@example.com", "sku": "SKU-1", "name": "Ada", "reason": "test"}

// typeOf is the Go type of event type typ and its codec.
func typeOf(t *testing.T, typ string) (reflect.Type, domain.Events) {
	prefix, _, _ := strings.Cut(typ, ".")
	codec := codecs[prefix+"."]
	e, err := codec.Decode(typ, []byte(`{}`))
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return reflect.TypeOf(e), codec
}

// streamOf is the stream an event of typ with payload fields belongs to.
func streamOf(typ string, f map[string]any) string {
	s := func(k string) string { v, _ := f[k].(string); return v }
	switch {
	case typ == customer.TypeEmailClaimed:
		return customer.EmailStream(s("email"))
	case strings.HasPrefix(typ, customer.TypePrefix):
		return customer.Stream(s("customerId"))
	case typ == inventory.TypeSKUClaimed:
		return inventory.SKUStream(s("sku"))
	case strings.HasPrefix(typ, inventory.TypePrefix+"order_"):
		return inventory.ReservationStream(s("orderId"))
	case strings.HasPrefix(typ, inventory.TypePrefix):
		return inventory.Stream(s("productId"))
	case strings.HasPrefix(typ, order.TypePrefix):
		return order.Stream(s("orderId"))
	}
	return payment.Stream(s("paymentId"))
}

// log is the scenario as recorded events, and every event type of the domain's codecs must be
// in it.
func log(t *testing.T) []eventstore.RecordedEvent {
	t.Helper()
	seen := map[string]bool{}
	revisions := map[string]int64{}
	var out []eventstore.RecordedEvent
	for i, s := range scenario {
		typ, _ := typeOf(t, s.typ)
		v := contracts.Example(typ, func(_, t reflect.Type, name string) (reflect.Value, bool) {
			if v, ok := exampleFields[name]; ok && t.Kind() == reflect.String {
				return reflect.ValueOf(v).Convert(t), true
			}
			return reflect.Value{}, false
		})
		b, _ := json.Marshal(v.Interface())
		var fields map[string]any
		_ = json.Unmarshal(b, &fields)
		for k, x := range s.set {
			fields[k] = x
		}
		data, _ := json.Marshal(fields)
		pos := eventstore.Position{Commit: uint64(i + 1), Prepare: uint64(i + 1)}
		stream := streamOf(s.typ, fields)
		revision := revisions[stream]
		revisions[stream]++
		out = append(out, eventstore.RecordedEvent{ID: eventstore.DeriveID("scenario", i), Stream: stream, Revision: revision, Type: s.typ, Data: data,
			Metadata: eventstore.Metadata{Actor: "customer:c-1", CorrelationID: "o-1"}, Position: pos, RecordedAt: contracts.ExampleTime})
		seen[s.typ] = true
	}
	for _, c := range codecs {
		for _, typ := range c.Types() {
			if !seen[typ] {
				t.Errorf("the scenario has no %s: add it, so that the read models' contracts say whether they read it", typ)
			}
		}
	}
	return out
}

// rows are what proj makes of events: every row of every table of its schema after each event
// it applies (a later event may overwrite what an earlier one wrote), as text, with the values the
// database makes up (the transaction's time, sequences) masked.
func rows(ctx context.Context, pool *pgxpool.Pool, proj projections.Projection, events []eventstore.RecordedEvent) (string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := proj.Migrate(ctx, tx); err != nil {
		return "", err
	}
	var out strings.Builder
	for _, e := range events {
		if !proj.Filter().Match(e.Stream, e.Type) {
			continue
		}
		if err := proj.Apply(ctx, tx, []eventstore.RecordedEvent{e}); err != nil {
			return out.String() + "apply: " + err.Error(), nil
		}
		if err := dump(ctx, tx, &out); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

// dump writes every row of every table of tx's schema to out.
func dump(ctx context.Context, tx pgx.Tx, out *strings.Builder) error {
	cols, err := tx.Query(ctx, `select table_name, string_agg(case
  when data_type like 'timestamp%' then format('case when %I = now() then ''now'' else %I::text end', column_name, column_name)
  when column_default like 'nextval%' or is_identity = 'YES' then '''seq'''
  else format('%I::text', column_name) end, ', ' order by ordinal_position)
from information_schema.columns where table_schema = current_schema() group by table_name order by table_name`)
	if err != nil {
		return err
	}
	selects, err := pgx.CollectRows(cols, pgx.RowToStructByPos[struct {
		Table, Columns string
	}])
	if err != nil {
		return err
	}
	for _, s := range selects {
		var rows string
		q := fmt.Sprintf(`select coalesce(string_agg(r::text, E'\n' order by r::text), '') from (select %s from %s) r`, s.Columns, pgx.Identifier{s.Table}.Sanitize())
		if err := tx.QueryRow(ctx, q).Scan(&rows); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s:\n%s\n", s.Table, rows)
	}
	return nil
}

// TestReadModelEventContracts records each read model's contract with the event log:
// contracts/<read model>-read-model-events.json.
func TestReadModelEventContracts(t *testing.T) {
	eachReadModel(t, func(t *testing.T, proj projections.Projection, pool *pgxpool.Pool, events []eventstore.RecordedEvent) {
		ctx := t.Context()
		run := func(events []eventstore.RecordedEvent) string {
			out, err := rows(ctx, pool, proj, events)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		baseline := run(events)
		if baseline != run(events) {
			t.Fatal("the read model's rows differ between two runs of one log: the test cannot tell what it reads")
		}
		consumed := map[string]contracts.Consumed{}
		for i, e := range events {
			if run(slices.Delete(slices.Clone(events), i, i+1)) == baseline {
				continue // the read model makes nothing of this one
			}
			c := consumed[e.Type]
			typ, _ := typeOf(t, e.Type)
			c.Payload, c.Optional = e.Data, contracts.Optional(typ)
			payload, _ := contracts.Decode(e.Data)
			for _, leaf := range contracts.Leaves(payload) {
				changed := slices.Clone(events)
				changed[i].Data, _ = json.Marshal(contracts.Without(payload, leaf))
				if run(changed) != baseline && !slices.Contains(c.Reads, leaf) {
					c.Reads = append(c.Reads, leaf)
				}
			}
			consumed[e.Type] = c
		}
		if len(consumed) == 0 {
			t.Fatal("the read model consumes nothing of the scenario")
		}
		contracts.Check(t, proj.Name()+"-read-model-events.json", contracts.Events(proj.Name()+"-read-model", consumed))
	})
}

// TestReadModelWritesKeepToTheirIndexes: every statement a read model writes a batch with finds
// its rows through an index in the plan PostgreSQL caches for it, even when that plan is made while
// the read model is empty (as after a fresh start or a rebuild), or is planned anew at each run
// (projections.QueuePlannedNow). A cached plan that scanned a table there went on scanning it for
// every batch as the table grew, until autovacuum's next analyze.
func TestReadModelWritesKeepToTheirIndexes(t *testing.T) {
	eachReadModel(t, func(t *testing.T, proj projections.Projection, pool *pgxpool.Pool, events []eventstore.RecordedEvent) {
		ctx := t.Context()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return proj.Migrate(ctx, tx) }); err != nil {
			t.Fatal(err)
		}
		queue, ok := proj.(projections.Pipelined)
		if !ok {
			t.Fatalf("%s is not Pipelined: this test reads the statements it queues", proj.Name())
		}
		// Two halves, so that the second half's events change rows of the first (updates).
		var statements []string
		for _, half := range [][]eventstore.RecordedEvent{events[:len(events)/2], events[len(events)/2:]} {
			var b pgx.Batch
			if err := queue.Queue(ctx, nil, filtered(proj, half), &b); err != nil {
				t.Fatal(err)
			}
			for _, q := range b.QueuedQueries {
				statements = append(statements, q.SQL)
			}
		}
		if len(statements) == 0 {
			t.Fatal("the read model wrote nothing of the scenario")
		}
		custom := false
		for _, sql := range statements {
			switch sql {
			case projections.PlanNow:
				custom = true
				continue
			case projections.PlanCached:
				custom = false
				continue
			}
			if custom {
				continue
			}
			plan, err := pgtest.GenericPlan(ctx, pool, sql)
			if err != nil {
				t.Fatalf("%v\n%s", err, sql)
			}
			if strings.Contains(plan, "Seq Scan") {
				t.Errorf("a write scans a table in its cached plan:\n%s\n%s", sql, plan)
			}
		}
	})
}

// eachReadModel runs test on each read model, in a schema of its own of one fresh database, with
// the scenario's log.
func eachReadModel(t *testing.T, test func(t *testing.T, proj projections.Projection, pool *pgxpool.Pool, events []eventstore.RecordedEvent)) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	events := log(t)
	for _, proj := range []projections.Projection{orders.Projection{}, customers.Projection{}, catalog.Projection{}, activity.Projection{}} {
		t.Run(proj.Name(), func(t *testing.T) {
			pool, err := pgschema.Open(t.Context(), url, proj.Name(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			test(t, proj, pool, events)
		})
	}
}

// filtered are the events of events that proj reads.
func filtered(proj projections.Projection, events []eventstore.RecordedEvent) []eventstore.RecordedEvent {
	var out []eventstore.RecordedEvent
	for _, e := range events {
		if proj.Filter().Match(e.Stream, e.Type) {
			out = append(out, e)
		}
	}
	return out
}
