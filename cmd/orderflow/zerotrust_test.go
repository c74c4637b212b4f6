package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/dev/pgtest"
	"github.com/orderflow/orderflow/platform"
)

// TestZeroTrust tries to break in through NATS. The platform runs its own NATS server, which
// knows only the platform's identities: an anonymous client cannot connect; a client holding the
// catalog-queries identity (as a compromised query service would) cannot place an order, answer
// the order service's subject, publish projection progress or take another service's queued
// commands; the operator (the CLI) cannot place an order either. Meanwhile the platform, every
// target as itself, takes an order to CONFIRMED.
func TestZeroTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_JWT_SECRET": testSecret, "PAYMENT_PROVIDER_LATENCY": "1ms"}
	base := runAll(t, dir, env)
	b, err := os.ReadFile(filepath.Join(dir, platform.NATSURLFile))
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(string(b))

	if nc, err := nats.Connect(url, nats.Timeout(2*time.Second)); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("an anonymous client connected (%v)", err)
	}
	as := func(identity string) (*nats.Conn, func() []string) {
		t.Helper()
		id, err := platform.IdentityOptions(identity, filepath.Join(dir, platform.SeedsDir, identity+".nk"))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var refused []string
		nc, err := nats.Connect(url, append(id, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			refused = append(refused, err.Error())
		}))...)
		if err != nil {
			t.Fatalf("connect as %s: %v", identity, err)
		}
		t.Cleanup(nc.Close)
		return nc, func() []string {
			_ = nc.Flush()
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), refused...)
		}
	}
	// The server's refusals arrive asynchronously: wait for the one expected, a while at most.
	expectRefused := func(who, what string, refused func() []string, want string) {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got = refused(); slices.ContainsFunc(got, func(r string) bool { return strings.Contains(r, want) }) {
				return
			}
		}
		t.Errorf("%s could %s: the server refused only %q", who, what, got)
	}
	place := []byte(`{"meta":{"commandId":"forged-1"},"orderId":"forged","customerId":"victim","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`)

	catalog, refusedCatalog := as("catalog-queries")
	if _, err := catalog.Request("orderflow.order.place", place, time.Second); err == nil {
		t.Error("catalog-queries placed an order")
	}
	expectRefused("catalog-queries", "place an order", refusedCatalog, `Permissions Violation for Publish to "orderflow.order.place"`)
	_, _ = catalog.Subscribe("orderflow.order.place", func(*nats.Msg) {}) // the server refuses it asynchronously
	expectRefused("catalog-queries", "answer the order service's subject", refusedCatalog, `Permissions Violation for Subscription to "orderflow.order.place"`)
	_ = catalog.Publish("orderflow.projection.orders.progress", []byte(`{"projection":"orders","position":"999999-999999"}`))
	expectRefused("catalog-queries", "publish projection progress", refusedCatalog, `Permissions Violation for Publish to "orderflow.projection.orders.progress"`)
	_, _ = catalog.Subscribe("orderflow.jobs.>", func(*nats.Msg) {})
	expectRefused("catalog-queries", "read the queued commands", refusedCatalog, `Permissions Violation for Subscription to "orderflow.jobs.>"`)
	_, _ = catalog.Request("$JS.API.CONSUMER.MSG.NEXT.orderflow_jobs.order-commands", []byte(`{"batch":1}`), time.Second)
	expectRefused("catalog-queries", "take the order service's queued commands", refusedCatalog, `Permissions Violation for Publish to "$JS.API.CONSUMER.MSG.NEXT.orderflow_jobs.order-commands"`)
	_ = catalog.Publish("orderflow.jobs.order.cancel", []byte(`{}`))
	expectRefused("catalog-queries", "queue a saga command", refusedCatalog, `Permissions Violation for Publish to "orderflow.jobs.order.cancel"`)

	operator, refusedOperator := as(platform.Operator)
	if _, err := operator.Request("orderflow.order.place", place, time.Second); err == nil {
		t.Error("the operator identity placed an order")
	}
	expectRefused("the operator", "place an order", refusedOperator, `Permissions Violation for Publish to "orderflow.order.place"`)

	// The platform itself works, every target as itself: an order goes through the saga, and the
	// forged one does not exist.
	confirmOne(t, base, "zt")
	if a := graphQL(t, base, `{ order(id: "forged") { status } }`, nil, nil); string(a.Data["order"]) != "null" {
		t.Fatalf("the forged order exists: %s", a.Data["order"])
	}
}

// TestGeneratedNATSConfig: the server configuration `orderflow nats-config` writes is one
// nats-server loads, and every target, each with its own seed from that directory, runs the
// platform against it (an order confirmed); an anonymous client is refused.
func TestGeneratedNATSConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := natsConfigCmd([]string{"--dir", dir, "--store-dir", filepath.Join(dir, "js")}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatalf("nats-server does not load the generated config: %v", err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, 0, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	if nc, err := nats.Connect(ns.ClientURL(), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the generated server")
	}
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "NATS_URL": ns.ClientURL(), "ORDERFLOW_NATS_SEEDS": dir,
		"ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_JWT_SECRET": testSecret, "PAYMENT_PROVIDER_LATENCY": "1ms"}
	base := runAll(t, t.TempDir(), env)
	confirmOne(t, base, "gen")
}

// runAll runs every target with env and the data directory dir until the test ends, and answers
// the gateway's base URL.
func runAll(t *testing.T, dir string, env map[string]string) string {
	t.Helper()
	cfg, err := platform.ParseFlags("serve", []string{"--target=all", "--http-addr=127.0.0.1:0", "--data-dir=" + dir}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- platform.Run(ctx, cfg, io.Discard, io.Discard, func(a string) { addr <- a }) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

// confirmOne adds product id with one unit and orders it (order id-1): the order must reach
// CONFIRMED, through every service and the saga.
func confirmOne(t *testing.T, base, id string) {
	t.Helper()
	if s, _, b := call(t, "POST", base+"/api/v1/products", fmt.Sprintf(`{"productId":%q,"sku":"SKU-%s","name":"Product","priceCents":100}`, id, id), nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/"+id+"/restock", `{"quantity":1}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	order := id + "-1"
	if s, _, b := call(t, "POST", base+"/api/v1/orders", fmt.Sprintf(`{"orderId":%q,"customerId":"c","lines":[{"productId":%q,"quantity":1,"unitPriceCents":100}]}`, order, id), nil); s != 201 {
		t.Fatalf("place: %d %s", s, b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a := graphQL(t, base, `query($id: ID!) { order(id: $id) { status } }`, map[string]any{"id": order}, nil)
		if strings.Contains(string(a.Data["order"]), "CONFIRMED") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: %s %v", order, a.Data["order"], a.Errors)
		}
	}
}
