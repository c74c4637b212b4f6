package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/esdb"
	"github.com/orderflow/orderflow/eventstore/esdb/esdbtest"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/testkit/logbuf"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// grace's personal data: each string is searched for everywhere after her erasure.
var graceSecrets = []string{"Hopperova", "grace.erasure", "Erasure Lane", "Shredderville", "ER4SE", "Forgotten Road"}

// TestErasureLeavesNoTrace: a customer registers (with an Idempotency-Key), changes address,
// places two orders that the saga confirms; an admin erases her. Then, after every read model is
// rebuilt, her name, e-mail and addresses are nowhere: not in the event store, any table of any
// schema, any NATS stream or key-value bucket of the platform, nor its logs (at debug level). Her
// orders keep their lines, totals and statuses; the receipt answers again later.
func TestErasureLeavesNoTrace(t *testing.T) {
	t.Parallel()
	erasureLeavesNoTrace(t, nil)
}

// TestErasureLeavesNoTraceOnEventStoreDB is the same with the events in EventStoreDB (the
// protocol double, through the real client): its events are read back raw and searched too.
func TestErasureLeavesNoTraceOnEventStoreDB(t *testing.T) {
	t.Parallel()
	srv := esdbtest.New(t)
	erasureLeavesNoTrace(t, srv)
}

func erasureLeavesNoTrace(t *testing.T, esdbSrv *esdbtest.Server) {
	ns := natstest.Namespace(t)
	logs := &logbuf.Buffer{}
	extra := []string{"targets", "all", "ORDERFLOW_NATS_PREFIX", string(ns), "ORDERFLOW_LOG_LEVEL", "debug"}
	if esdbSrv != nil {
		extra = append(extra, "EVENTSTORE_URL", esdbSrv.URL())
	}
	base, db := startPlatformLogging(t, logs, extra...)
	post := func(path, body string, header map[string]string) []byte {
		t.Helper()
		status, _, b := call(t, "POST", base+path, body, header)
		if status >= 300 {
			t.Fatalf("POST %s: %d %s", path, status, b)
		}
		return b
	}
	post("/api/v1/products", `{"productId":"p-erase","sku":"ERASE-1","name":"Lamp","priceCents":1500}`, nil)
	post("/api/v1/products/p-erase/restock", `{"quantity":10}`, nil)
	post("/api/v1/customers", `{"customerId":"c-grace","name":"Grace Hopperova","email":"Grace.Erasure@example.com",
		"shippingAddress":{"line1":"1 Erasure Lane","city":"Shredderville","postalCode":"ER4SE","country":"GB"}}`, map[string]string{"Idempotency-Key": "register-grace"})
	grace := map[string]string{"Authorization": tokenFor(t, "c-grace", auth.Customer)}
	post("/api/v1/customers/c-grace/address", `{"shippingAddress":{"line1":"2 Forgotten Road","city":"Shredderville","postalCode":"ER4SE","country":"GB"}}`, grace)
	var positions []string
	for i, qty := range []int{1, 2} {
		b := post("/api/v1/orders", fmt.Sprintf(`{"orderId":%q,"customerId":"c-grace","lines":[{"productId":"p-erase","quantity":%d,"unitPriceCents":1500}]}`, orderID(fmt.Sprint("o-grace-", i)), qty),
			map[string]string{"Authorization": grace["Authorization"], "Idempotency-Key": fmt.Sprintf("order-grace-%d", i)})
		var placed struct{ Position string }
		_ = json.Unmarshal(b, &placed)
		positions = append(positions, placed.Position)
	}
	for i := range positions {
		waitForStatus(t, base, orderID(fmt.Sprint("o-grace-", i)), "CONFIRMED")
	}
	before := ordersOf(t, base)
	a := graphQL(t, base, `{ customer(id: "c-grace") { name email shippingAddress { line1 } } }`, nil, nil)
	if !strings.Contains(string(a.Data["customer"]), "Hopperova") {
		t.Fatalf("before the erasure the customer reads %s %+v", a.Data["customer"], a.Errors)
	}
	// The search finds her where she is before the erasure (her read model row), and only in the
	// clear there: the log holds her data encrypted.
	if found := strings.Join(searchEverything(t, db, ns, esdbSrv, logs.String()), "\n"); !strings.Contains(found, `"customers"."customers"`) ||
		strings.Contains(found, "event") {
		t.Fatalf("before the erasure, the search finds:\n%s", found)
	}

	// A customer may not erase herself; an admin may, and gets the receipt.
	if status, _, b := call(t, "POST", base+"/api/v1/customers/c-grace/erase", "", grace); status != http.StatusForbidden {
		t.Fatalf("a customer's erase: %d %s", status, b)
	}
	var receipt struct {
		CustomerID, ErasedBy, Position string
		ErasedAt, KeyDestroyedAt       time.Time
		Fields, Streams, ReadModels    []string
	}
	b := post("/api/v1/customers/c-grace/erase", "", nil)
	if err := json.Unmarshal(b, &receipt); err != nil || receipt.CustomerID != "c-grace" || receipt.ErasedBy != "admin:test-admin" || receipt.Position == "" ||
		receipt.ErasedAt.IsZero() || receipt.KeyDestroyedAt.IsZero() || len(receipt.Fields) != 3 || len(receipt.Streams) != 2 || len(receipt.ReadModels) == 0 {
		t.Fatalf("receipt %s (%v)", b, err)
	}
	if again := post("/api/v1/customers/c-grace/erase", "", nil); !bytes.Equal(again, b) {
		t.Errorf("erasing again answers %s, want the same receipt %s", again, b)
	}
	a = graphQL(t, base, `{ customerErasure(customerId: "c-grace") { customerId erasedAt erasedBy fields streams keyDestroyedAt readModels position } }`, nil, nil)
	if !strings.Contains(string(a.Data["customerErasure"]), receipt.Position) || !strings.Contains(string(a.Data["customerErasure"]), "shippingAddress") {
		t.Errorf("the receipt fetched later: %s %+v", a.Data["customerErasure"], a.Errors)
	}
	a = graphQL(t, base, `query($p: String) { customer(id: "c-grace", consistentWith: $p) { name email erased shippingAddress { line1 city } orderCount } }`,
		map[string]any{"p": receipt.Position}, nil)
	if got := string(a.Data["customer"]); !strings.Contains(got, `"name":"[erased]"`) || !strings.Contains(got, `"erased":true`) || !strings.Contains(got, `"orderCount":2`) {
		t.Errorf("the customer after the erasure: %s %+v", got, a.Errors)
	}
	if status, _, b := call(t, "POST", base+"/api/v1/customers/c-grace/address", `{"shippingAddress":{"line1":"3 New St","city":"X","postalCode":"1","country":"GB"}}`, nil); status != http.StatusConflict {
		t.Errorf("a new address for an erased customer: %d %s", status, b)
	}

	// Every read model rebuilt from the log.
	for _, rm := range platform.ReadModels {
		rebuildAndWait(t, base, rm.Name())
	}
	if after := ordersOf(t, base); after != before {
		t.Errorf("her orders changed:\nbefore %s\nafter  %s", before, after)
	}

	for _, where := range searchEverything(t, db, ns, esdbSrv, logs.String()) {
		t.Error(where)
	}
}

// waitForStatus waits until order id reads status.
func waitForStatus(t *testing.T, base, id, status string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a := graphQL(t, base, `query($id: ID!) { order(id: $id) { status } }`, map[string]any{"id": id}, nil)
		if strings.Contains(string(a.Data["order"]), status) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: %s %+v, want %s", id, a.Data["order"], a.Errors, status)
		}
	}
}

// ordersOf are c-grace's orders: lines, totals, statuses.
func ordersOf(t *testing.T, base string) string {
	t.Helper()
	a := graphQL(t, base, `{ orders(customerId: "c-grace") { nodes { id status totalCents lines { productId quantity unitPriceCents } } } }`, nil, nil)
	if len(a.Errors) > 0 || !strings.Contains(string(a.Data["orders"]), orderID("o-grace-1")) {
		t.Fatalf("her orders: %s %+v", a.Data["orders"], a.Errors)
	}
	return string(a.Data["orders"])
}

// rebuildAndWait rebuilds read model name and waits until it is done.
func rebuildAndWait(t *testing.T, base, name string) {
	t.Helper()
	if a := graphQL(t, base, `mutation($n: String!) { rebuildProjection(name: $n) { name } }`, map[string]any{"n": name}, nil); len(a.Errors) > 0 {
		t.Fatalf("rebuild %s: %+v", name, a.Errors)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a := graphQL(t, base, `{ projections { name rebuild { phase error } } }`, nil, nil)
		var ps []struct {
			Name    string
			Rebuild *struct{ Phase, Error string }
		}
		_ = json.Unmarshal(a.Data["projections"], &ps)
		for _, p := range ps {
			if p.Name == name && p.Rebuild != nil && p.Rebuild.Phase == "done" {
				return
			}
			if p.Name == name && p.Rebuild != nil && p.Rebuild.Phase == "failed" || time.Now().After(deadline) {
				t.Fatalf("rebuild %s: %s", name, a.Data["projections"])
			}
		}
	}
}

// searchEverything answers where any of graceSecrets is found: every row of every table of every
// schema of the platform's database (the PostgreSQL event store, the read models and their
// retired versions, the data keys), EventStoreDB's events, every NATS stream of the platform's
// namespace (the key-value buckets are streams: the gateway's Idempotency-Key replays, …), and the
// logs.
func searchEverything(t *testing.T, db string, ns wire.Namespace, esdbSrv *esdbtest.Server, logs string) []string {
	t.Helper()
	ctx := t.Context()
	var found []string
	look := func(where, text string) {
		for _, s := range graceSecrets {
			if strings.Contains(strings.ToLower(text), strings.ToLower(s)) {
				found = append(found, fmt.Sprintf("%q is in %s", s, where))
			}
		}
	}
	look("the logs", logs)

	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select table_schema, table_name from information_schema.tables
where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Schema, Table string }])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 8 {
		t.Fatalf("only %d tables to search: %v", len(tables), tables)
	}
	for _, tb := range tables {
		var dump string
		name := pgx.Identifier{tb.Schema, tb.Table}.Sanitize()
		if err := conn.QueryRow(ctx, `select coalesce(string_agg(t::text, E'\n'), '') from `+name+` t`).Scan(&dump); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		look("table "+name, dump)
	}

	if esdbSrv != nil {
		store, err := esdb.Open(esdbSrv.URL(), esdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		n := 0
		for pos := eventstore.Start; ; {
			page, err := store.ReadAll(ctx, pos, eventstore.ReadAllOptions{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Events {
				meta, _ := json.Marshal(e.Metadata)
				look("EventStoreDB event "+e.Stream+"/"+e.Type, e.Stream+string(e.Data)+string(meta))
				n++
			}
			if page.AtEnd {
				break
			}
			pos = page.Position
		}
		if n < 10 {
			t.Fatalf("read only %d events of EventStoreDB", n)
		}
	}

	js, err := jetstream.New(natstest.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	searched := 0
	for info := range js.ListStreams(ctx).Info() {
		if !strings.Contains(strings.Join(info.Config.Subjects, " "), string(ns)) && !strings.Contains(info.Config.Name, string(ns)) {
			continue // another test's
		}
		stream, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			msg, err := stream.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			look(fmt.Sprintf("NATS stream %s message %d (%s)", info.Config.Name, seq, msg.Subject), msg.Subject+string(msg.Data)+fmt.Sprint(msg.Header))
			if strings.HasPrefix(info.Config.Name, "KV_") {
				searched++
			}
		}
	}
	if searched < 3 {
		t.Fatalf("%d key-value records of the platform searched: the Idempotency-Key records of her registration and orders at least", searched)
	}
	return found
}
