package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/testkit/logbuf"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

// TestZeroTrust tries to break in through NATS. The platform runs its own NATS server, which
// knows only the platform's identities: an anonymous client cannot connect; a client holding the
// catalog-queries identity (as a compromised query service would) cannot place an order, answer
// the order service's subject, publish projection progress or take another service's queued
// commands; the operator (the CLI) cannot place an order either. Meanwhile the platform, every
// target as itself, takes an order to CONFIRMED.
//
// Then it tries what NATS permissions alone cannot stop, holding identities that may send the
// requests (the gateway's, the saga's): the services check the caller each request asserts, so a
// request without an assertion, with one signed by another key, for another endpoint, or by a
// customer acting for another customer (a forged byCustomer, an order for someone else, a step
// only the saga may take) is refused, and a queued command the saga did not sign is not carried out.
func TestZeroTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_JWT_SECRET": testSecret, "PAYMENT_PROVIDER_LATENCY": "1ms"}
	logs := &logbuf.Buffer{}
	base := runAll(t, dir, env, logs)
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

	seeds := filepath.Join(dir, platform.SeedsDir)
	gateway, _ := as("gateway")
	gatewayKey, err := platform.Signer("gateway", seeds)
	if err != nil {
		t.Fatal(err)
	}
	strangerKey, _ := nkeys.CreateUser()
	stranger, _ := auth.NewSigner("gateway", strangerKey) // says it is the gateway, with another key
	mallory := auth.Principal{Subject: "mallory", Role: auth.Customer}
	asCaller := func(s *auth.Signer, p auth.Principal) context.Context {
		return auth.WithSigner(auth.With(t.Context(), p), s)
	}
	refuse := func(what string, ctx context.Context, endpoint string, req any, code string) {
		t.Helper()
		_, err := rpc.Call[wire.CommandReply](ctx, gateway, wire.DefaultNamespace.Subject(endpoint), req)
		var e *rpc.Error
		if !errors.As(err, &e) || e.Code != code {
			t.Errorf("%s: %v; want %s", what, err, code)
		}
	}
	cancelAsC := wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "forged-cancel"}, OrderID: "zt-1", ByCustomer: "c"}
	refuse("a cancel without a caller assertion", t.Context(), wire.EndpointCancelOrder.Name, cancelAsC, rpc.CodeForbidden)
	refuse("a cancel asserted with another key", asCaller(stranger, auth.Principal{Subject: "admin", Role: auth.Admin}), wire.EndpointCancelOrder.Name, cancelAsC, rpc.CodeForbidden)
	refuse("a forged byCustomer", asCaller(gatewayKey, mallory), wire.EndpointCancelOrder.Name, cancelAsC, rpc.CodeNotFound)
	refuse("an order for another customer", asCaller(gatewayKey, mallory), wire.EndpointPlaceOrder.Name,
		wire.PlaceOrder{Meta: wire.CommandMeta{CommandID: "forged-2"}, OrderID: "forged-2", CustomerID: "victim", Lines: []wire.PlaceLine{{ProductID: "zt", Quantity: 1}}}, rpc.CodeForbidden)
	refuse("a customer shipping an order", asCaller(gatewayKey, mallory), wire.EndpointShipOrder.Name,
		wire.IDCommand{Meta: wire.CommandMeta{CommandID: "forged-3"}, ID: "zt-1"}, rpc.CodeForbidden)
	refuse("another customer's profile", asCaller(gatewayKey, mallory), wire.EndpointChangeAddress.Name,
		wire.ChangeAddress{Meta: wire.CommandMeta{CommandID: "forged-4"}, CustomerID: "c", Address: wire.Address{Line1: "x", City: "x", PostalCode: "1", Country: "FR"}}, rpc.CodeForbidden)
	// An assertion the gateway signed for one endpoint, replayed to another.
	placeOwn, _ := gatewayKey.Sign(auth.Principal{Subject: "c", Role: auth.Customer}, wire.EndpointPlaceOrder.In(wire.DefaultNamespace), "", time.Minute, time.Now())
	body, _ := json.Marshal(cancelAsC)
	msg, err := gateway.RequestMsg(&nats.Msg{Subject: wire.EndpointCancelOrder.In(wire.DefaultNamespace), Data: body,
		Header: nats.Header{auth.AssertionHeader: []string{placeOwn}}}, 2*time.Second)
	if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != rpc.CodeForbidden {
		t.Errorf("an assertion replayed to another endpoint: %v %v", err, msg)
	}

	// The saga's identity may queue commands, but one it did not sign is refused, not carried out.
	saga, _ := as("fulfillment-saga")
	js, err := jetstream.New(saga)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "orderflow.jobs.order.cancel", body, jetstream.WithMsgID("forged-cancel")); err != nil {
		t.Fatalf("queue as the saga: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "queued command refused: no valid caller assertion"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the unsigned queued command was not refused; logs:\n%s", logs.String())
		}
	}
	if a := graphQL(t, base, `{ order(id: "zt-1") { status } }`, nil, nil); !strings.Contains(string(a.Data["order"]), "CONFIRMED") {
		t.Errorf("after the forged commands, order zt-1 is %s; want CONFIRMED still", a.Data["order"])
	}
}

// TestGeneratedNATSConfig: the server configuration `orderflow nats-config` writes is one
// nats-server loads, and every target, each with its own seed from that directory, runs the
// platform against it (an order confirmed); an anonymous client is refused.
func TestGeneratedNATSConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns := serveGeneratedConfig(t, dir)
	if nc, err := nats.Connect(ns.ClientURL(), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the generated server")
	}
	env := map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "NATS_URL": ns.ClientURL(), "ORDERFLOW_NATS_SEEDS": dir,
		"ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_JWT_SECRET": testSecret, "PAYMENT_PROVIDER_LATENCY": "1ms"}
	base := runAll(t, t.TempDir(), env, io.Discard)
	confirmOne(t, base, "gen")
}

// serveGeneratedConfig runs a nats-server, until the test ends, with the configuration
// `orderflow nats-config --dir dir` (and args) writes.
func serveGeneratedConfig(t *testing.T, dir string, args ...string) *server.Server {
	t.Helper()
	args = append([]string{"--dir", dir, "--store-dir", filepath.Join(dir, "js")}, args...)
	if err := cli.Main(context.Background(), append([]string{"nats-config"}, args...), func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatalf("nats-server does not load the generated config: %v", err)
	}
	if opts.PingInterval != natsrv.PingInterval || opts.MaxPingsOut != natsrv.MaxPingsOut {
		t.Errorf("the generated config pings clients every %s, %d unanswered at most; want %s, %d (a frozen instance leaves its queue groups)",
			opts.PingInterval, opts.MaxPingsOut, natsrv.PingInterval, natsrv.MaxPingsOut)
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
	return ns
}

// runAll runs every target with env and the data directory dir until the test ends, logging to
// logs, and answers the gateway's base URL.
func runAll(t *testing.T, dir string, env map[string]string, logs io.Writer) string {
	t.Helper()
	cfg, err := platform.ParseFlags("serve", []string{"--target=all", "--http-addr=127.0.0.1:0", "--data-dir=" + dir}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- platform.Run(ctx, cfg, io.Discard, logs, func(a string) { addr <- a }) }()
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

// TestNoSecretInLogsOrMetrics runs the platform at the debug log level with a database password,
// a JWT secret and NATS seeds, serves requests (a customer's order, a bad token, a forbidden call),
// and finds none of the secrets, nor a bearer token or a caller assertion, in its logs, its
// /metrics or its answers; every seed file is 0600.
func TestNoSecretInLogsOrMetrics(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	const password = "pw-5f2b9c-never-logged" // the test server trusts local connections: any password works
	u.User = url.UserPassword(u.User.Username(), password)
	dir := t.TempDir()
	env := map[string]string{"DATABASE_URL": u.String(), "ORDERFLOW_LOG_LEVEL": "debug", "ORDERFLOW_JWT_SECRET": testSecret, "PAYMENT_PROVIDER_LATENCY": "1ms"}
	logs := &logbuf.Buffer{}
	base := runAll(t, dir, env, logs)

	token := tokenFor(t, "c-secret", auth.Customer)
	var answers bytes.Buffer
	record := func(status int, _ http.Header, body []byte) { fmt.Fprintf(&answers, "%d %s\n", status, body) }
	record(call(t, "POST", base+"/api/v1/orders", `{"customerId":"c-secret","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, map[string]string{"Authorization": token}))
	record(call(t, "POST", base+"/api/v1/orders", `{"customerId":"someone-else","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, map[string]string{"Authorization": token}))
	record(call(t, "POST", base+"/graphql", `{"query":"{ myOrders { totalCount } }"}`, map[string]string{"Authorization": token + "tampered"}))
	status, _, metrics := call(t, "GET", base+"/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}

	secrets := map[string]string{"the database password": password, "the JWT secret": testSecret, "a bearer token": strings.TrimPrefix(token, "Bearer "),
		"a caller assertion": `eyJhbGciOiJFZERTQSI`} // every assertion starts with its header, {"alg":"EdDSA"
	seeds, err := filepath.Glob(filepath.Join(dir, platform.SeedsDir, "*.nk"))
	if err != nil || len(seeds) != len(platform.Identities()) {
		t.Fatalf("seeds %v (%v); want one per identity", seeds, err)
	}
	for _, path := range seeds {
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v; want 0600", path, info.Mode(), err)
		}
		seed, _ := os.ReadFile(path)
		secrets["the seed "+filepath.Base(path)] = strings.TrimSpace(string(seed))
	}
	if !strings.Contains(logs.String(), `"level":"DEBUG"`) || !strings.Contains(logs.String(), `"orders_database_url":"postgres://`) {
		t.Fatalf("the logs hold no debug lines or config dump to search:\n%s", logs.String())
	}
	for where, text := range map[string]string{"the logs": logs.String(), "/metrics": string(metrics), "the answers": answers.String()} {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s hold %s", where, what)
			}
		}
	}
}
