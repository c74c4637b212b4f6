package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/eventstore/esdb/esdbtest"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// noEnv is an empty environment.
func noEnv(string) string { return "" }

func TestMain(m *testing.M) {
	pgtest.Main(m, natstest.Stop)
}

// withoutSaga is every target but the fulfillment saga: tests of the REST and GraphQL surface
// keep orders where they put them. Pass "targets", "all" to run the saga too.
const withoutSaga = "order-commands,customer-commands,inventory-commands,payment-commands,projector,order-queries,catalog-queries,customer-queries,gateway"

// startPlatform runs the real program on a fresh database and a :0 port, with extra environment
// variables (name, value pairs).
func startPlatform(t *testing.T, extra ...string) string {
	t.Helper()
	base, _ := startPlatformDB(t, extra...)
	return base
}

// platformSeeds is the seeds directory of each test's platform (by *testing.T).
var platformSeeds sync.Map

// seedsOf is the seeds directory of t's platform.
func seedsOf(t *testing.T) string {
	dir, ok := platformSeeds.Load(t)
	if !ok {
		t.Fatal("no platform started")
	}
	return dir.(string)
}

// asOperator is t's context asserting the operator (the CLI's identity) as caller to the
// services of t's platform: what a test that calls them over NATS directly needs.
func asOperator(t *testing.T) context.Context {
	signer, err := platform.Signer(platform.Operator, seedsOf(t))
	if err != nil {
		t.Fatal(err)
	}
	return auth.WithSigner(auth.With(t.Context(), auth.Principal{Subject: platform.Operator, Role: auth.Admin}), signer)
}

// startPlatformDB is startPlatform that also returns the database URL.
func startPlatformDB(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	return startPlatformLogging(t, io.Discard, extra...)
}

// startPlatformLogging is startPlatformDB with the platform's logs written to logs.
func startPlatformLogging(t *testing.T, logs io.Writer, extra ...string) (string, string) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	// The test NATS server is open (tests of other concerns share it), so NATS's identities and
	// permissions are TestZeroTrust's; the seeds' keys still make every call and queued command
	// carry its caller's signed assertion, checked by the service that answers.
	seeds := t.TempDir()
	if _, err := platform.MakeIdentities(seeds, natstest.Namespace(t)); err != nil {
		t.Fatal(err)
	}
	platformSeeds.Store(t, seeds)
	env := map[string]string{"DATABASE_URL": db, "NATS_URL": natstest.URL(t), "ORDERFLOW_NATS_INSECURE": "true", "ORDERFLOW_NATS_SEEDS": seeds, "ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_JWT_SECRET": testSecret,
		"ORDERFLOW_NATS_PREFIX": string(natstest.Namespace(t))}
	targets := withoutSaga
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i] == "targets" {
			targets = extra[i+1]
			continue
		}
		env[extra[i]] = extra[i+1]
	}
	cfg, err := platform.ParseFlags("serve", []string{"--target=" + targets, "--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir()}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- platform.Run(ctx, cfg, io.Discard, logs, func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		base := "http://" + a
		deadline := time.Now().Add(30 * time.Second)
		for {
			if status, _, _ := call(t, "GET", base+"/readyz", "", nil); status == http.StatusOK {
				return base, db
			}
			if time.Now().After(deadline) {
				t.Fatal("platform not ready within 30s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	case err := <-done:
		done <- nil // the cleanup waits for the run's end: it has come
		t.Fatalf("run ended before ready: %v", err)
	}
	return "", ""
}

// testSecret signs the tokens of test platforms.
const testSecret = "orderflow-test-secret-0123456789abcdef"

// tokenFor is a bearer token of the test platforms.
func tokenFor(t *testing.T, sub string, role auth.Role) string {
	t.Helper()
	tok, err := auth.Issue([]byte(testSecret), sub, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// registered registers customer sub on the platform at base (as the admin "registrar") and answers
// the headers that act as them: only a registered customer's own orders are fulfilled.
func registered(t *testing.T, base, sub string) map[string]string {
	t.Helper()
	body := fmt.Sprintf(`{"customerId":%q,"name":"Customer %s","email":"%s@example.com","shippingAddress":{"line1":"1 Main St","city":"Paris","postalCode":"75001","country":"FR"}}`, sub, sub, sub)
	if s, _, b := call(t, "POST", base+"/api/v1/customers", body, map[string]string{"Authorization": tokenFor(t, "registrar", auth.Admin)}); s != http.StatusCreated {
		t.Fatalf("register %s: %d %s", sub, s, b)
	}
	return map[string]string{"Authorization": tokenFor(t, sub, auth.Customer)}
}

// orderID is the UUID a test's customer chooses for its order called name (a customer's order id
// is a UUID).
func orderID(name string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("orderflow-test:"+name)).String()
}

// call makes a request as an admin, unless header sets Authorization ("" sends none).
func call(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, own := header["Authorization"]; !own {
		req.Header.Set("Authorization", tokenFor(t, "test-admin", auth.Admin))
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

type gqlAnswer struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func graphQL(t *testing.T, base, query string, vars map[string]any, header map[string]string) gqlAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	status, _, b := call(t, "POST", base+"/graphql", string(body), header)
	if status != http.StatusOK {
		t.Fatalf("graphql: %d %s", status, b)
	}
	var a gqlAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("graphql answer %s: %v", b, err)
	}
	return a
}

const orderQuery = `query($id: ID!) { order(id: $id) { id status customerId totalCents lines { productId quantity unitPriceCents } placedAt cancelledAt } }`

type order struct {
	ID, Status, CustomerID string
	TotalCents             int64
	Lines                  []struct {
		ProductID      string
		Quantity       int64
		UnitPriceCents int64
	}
	PlacedAt    time.Time
	CancelledAt *time.Time
}

func readOrder(t *testing.T, base, id, position string) order {
	t.Helper()
	a := graphQL(t, base, orderQuery, map[string]any{"id": id}, map[string]string{"X-Consistency-Position": position})
	if len(a.Errors) > 0 {
		t.Fatalf("order %s at %s: %+v", id, position, a.Errors)
	}
	var o order
	if err := json.Unmarshal(a.Data["order"], &o); err != nil || o.ID != id {
		t.Fatalf("order %s at %s: %s (%v)", id, position, a.Data["order"], err)
	}
	return o
}

func TestOrderFromRESTToGraphQL(t *testing.T) {
	t.Parallel()
	orderFromRESTToGraphQL(t, startPlatform(t))
}

// TestOrderFromRESTToGraphQLOnEventStoreDB runs the platform with EVENTSTORE_URL=esdb://…, on the
// protocol double of EventStoreDB (through the real client).
func TestOrderFromRESTToGraphQLOnEventStoreDB(t *testing.T) {
	t.Parallel()
	srv := esdbtest.New(t)
	base, db := startPlatformDB(t, "EVENTSTORE_URL", srv.URL())
	orderFromRESTToGraphQL(t, base)
	// placed + cancelled, and the idempotent order: all in EventStoreDB, none elsewhere.
	if n := srv.Count("order-"); n != 3 {
		t.Errorf("the EventStoreDB double holds %d order events, want 3", n)
	}
	// `orderflow projections rebuild` replays EventStoreDB's $all into a new orders read model.
	env := map[string]string{"DATABASE_URL": db, "EVENTSTORE_URL": srv.URL()}
	var out bytes.Buffer
	if err := cli.Main(t.Context(), []string{"projections", "rebuild", "orders"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("rebuild on EventStoreDB: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "rebuilt") {
		t.Errorf("rebuild output: %s", out.String())
	}
	a := graphQL(t, base, `{ orders(first: 10) { nodes { id status } } }`, nil, nil)
	if !strings.Contains(string(a.Data["orders"]), `"o-idem"`) || !strings.Contains(string(a.Data["orders"]), "CANCELLED") {
		t.Errorf("orders after the rebuild: %s %+v", a.Data["orders"], a.Errors)
	}
}

func orderFromRESTToGraphQL(t *testing.T, base string) {
	status, h, b := call(t, "POST", base+"/api/v1/orders", `{"customerId":"c-1","lines":[{"productId":"sku-1","quantity":2,"unitPriceCents":1250},{"productId":"sku-2","quantity":1,"unitPriceCents":499}]}`, nil)
	var placed struct{ OrderID, Position string }
	if status != http.StatusCreated || json.Unmarshal(b, &placed) != nil || placed.OrderID == "" || placed.Position == "" {
		t.Fatalf("place: %d %s", status, b)
	}
	if h.Get("Location") != "/api/v1/orders/"+placed.OrderID {
		t.Errorf("Location = %q", h.Get("Location"))
	}
	o := readOrder(t, base, placed.OrderID, placed.Position)
	if o.Status != "PLACED" || o.CustomerID != "c-1" || o.TotalCents != 2*1250+499 || len(o.Lines) != 2 || o.Lines[1].ProductID != "sku-2" || o.PlacedAt.IsZero() {
		t.Fatalf("placed order read back as %+v", o)
	}

	status, _, b = call(t, "POST", base+"/api/v1/orders/"+placed.OrderID+"/cancel", `{"reason":"changed my mind"}`, nil)
	var cancelled struct{ OrderID, Position string }
	if status != http.StatusOK || json.Unmarshal(b, &cancelled) != nil || cancelled.Position == "" {
		t.Fatalf("cancel: %d %s", status, b)
	}
	if o := readOrder(t, base, placed.OrderID, cancelled.Position); o.Status != "CANCELLED" || o.CancelledAt == nil {
		t.Fatalf("after cancel: %+v", o)
	}

	// The list, by customer and status, through the same consistency header.
	a := graphQL(t, base, `{ orders(customerId: "c-1", status: CANCELLED, first: 5) { nodes { id } pageInfo { hasNextPage } } }`, nil, map[string]string{"X-Consistency-Position": cancelled.Position})
	if len(a.Errors) > 0 || !bytes.Contains(a.Data["orders"], []byte(placed.OrderID)) {
		t.Fatalf("orders list: %s %+v", a.Data["orders"], a.Errors)
	}
	// Relay's PageInfo: the first page has none before it; a page after a cursor has.
	var page struct {
		PageInfo struct {
			HasPreviousPage bool
			StartCursor     *string
		}
	}
	pages := `query($after: String) { orders(customerId: "c-1", first: 5, after: $after) { pageInfo { hasPreviousPage startCursor } } }`
	a = graphQL(t, base, pages, nil, nil)
	if json.Unmarshal(a.Data["orders"], &page) != nil || page.PageInfo.HasPreviousPage || page.PageInfo.StartCursor == nil {
		t.Fatalf("first page's pageInfo: %s %+v", a.Data["orders"], a.Errors)
	}
	a = graphQL(t, base, pages, map[string]any{"after": *page.PageInfo.StartCursor}, nil)
	if json.Unmarshal(a.Data["orders"], &page) != nil || !page.PageInfo.HasPreviousPage {
		t.Fatalf("a later page's pageInfo: %s %+v", a.Data["orders"], a.Errors)
	}

	// An Idempotency-Key makes a retried place append nothing twice and answer the same.
	body := `{"customerId":"c-2","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`
	key := map[string]string{"Idempotency-Key": "k-1"}
	s1, _, b1 := call(t, "POST", base+"/api/v1/orders", `{"orderId":"o-idem",`+body[1:], key)
	s2, _, b2 := call(t, "POST", base+"/api/v1/orders", `{"orderId":"o-idem",`+body[1:], key)
	if s1 != http.StatusCreated || s2 != http.StatusCreated || !bytes.Equal(b1, b2) {
		t.Fatalf("idempotent retry: %d %s then %d %s", s1, b1, s2, b2)
	}

	// A position no read model has reached: a STALE_READ error, not old data.
	a = graphQL(t, base, `query($id: ID!) { order(id: $id, consistentWith: "999999999999-1") { id } }`, map[string]any{"id": placed.OrderID}, nil)
	if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "STALE_READ" || a.Errors[0].Extensions["wanted"] != "999999999999-1" {
		t.Fatalf("stale read: %+v", a.Errors)
	}
	// An unknown order is null, not an error.
	if a := graphQL(t, base, orderQuery, map[string]any{"id": "nope"}, nil); len(a.Errors) > 0 || string(a.Data["order"]) != "null" {
		t.Fatalf("unknown order: %s %+v", a.Data["order"], a.Errors)
	}
}

func TestBadInputIsAClientError(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	status, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"o-bad-1","customerId":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, nil)
	if status != http.StatusCreated {
		t.Fatalf("place: %d %s", status, b)
	}
	cases := []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"malformed JSON", "/api/v1/orders", `{not json`, 400, ""},
		{"empty body", "/api/v1/orders", ``, 400, ""},
		{"trailing data", "/api/v1/orders", `{"customerId":"c"} {}`, 400, ""},
		{"wrong type", "/api/v1/orders", `{"customerId":"c","lines":[{"productId":"p","quantity":"two","unitPriceCents":1}]}`, 400, "lines.quantity"},
		{"unknown field", "/api/v1/orders", `{"customerId":"c","colour":"red","lines":[]}`, 400, "colour"},
		{"missing customer", "/api/v1/orders", `{"lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, 422, "customerId"},
		{"no lines", "/api/v1/orders", `{"customerId":"c","lines":[]}`, 422, "lines"},
		{"negative quantity", "/api/v1/orders", `{"customerId":"c","lines":[{"productId":"p","quantity":-1,"unitPriceCents":1}]}`, 422, "lines[0].quantity"},
		{"negative price", "/api/v1/orders", `{"customerId":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":-1}]}`, 422, "lines[0].unitPriceCents"},
		{"fractional quantity", "/api/v1/orders", `{"customerId":"c","lines":[{"productId":"p","quantity":1.5,"unitPriceCents":1}]}`, 400, "lines.quantity"},
		{"order placed twice", "/api/v1/orders", `{"orderId":"o-bad-1","customerId":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, 409, ""},
		{"cancel unknown order", "/api/v1/orders/does-not-exist/cancel", `{}`, 404, ""},
		{"cancel with bad body", "/api/v1/orders/o-bad-1/cancel", `{"reason":5}`, 400, "reason"},
		{"too large", "/api/v1/orders", `{"customerId":"` + strings.Repeat("x", 1<<20) + `"}`, 413, ""},
		{"no route", "/api/v1/nothing", `{}`, 404, ""},
		{"a field twice", "/api/v1/orders", `{"customerId":"c","customerId":"d","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, 400, "customerId"},
		{"a field twice in another case", "/api/v1/orders", `{"customerId":"c","CustomerID":"d","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, 400, "CustomerID"},
		{"a field in another case", "/api/v1/orders", `{"customerid":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`, 400, "customerid"},
		{"a nested field in another case", "/api/v1/orders", `{"customerId":"c","lines":[{"ProductId":"p","quantity":1,"unitPriceCents":1}]}`, 400, "lines.ProductId"},
		{"bytes that are not UTF-8", "/api/v1/orders", "{\"customerId\":\"c\xff\",\"lines\":[]}", 400, ""},
	}
	for _, c := range cases {
		status, h, b := call(t, "POST", base+c.path, c.body, nil)
		var p struct {
			Type, Title, Field string
			Status             int
		}
		if status != c.status || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") || json.Unmarshal(b, &p) != nil || p.Status != c.status || p.Type == "" {
			t.Errorf("%s: %d %s %.200s, want %d problem+json", c.name, status, h.Get("Content-Type"), b, c.status)
			continue
		}
		if c.field != "" && p.Field != c.field {
			t.Errorf("%s: field %q, want %q", c.name, p.Field, c.field)
		}
	}
	if status, _, b := call(t, "POST", base+"/api/v1/orders", `{"customerId":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`,
		map[string]string{"Content-Type": "text/plain"}); status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s, want 415", status, b)
	}
	if status, b := postWithoutContentType(t, base+"/api/v1/orders", `{"customerId":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`); status != http.StatusUnsupportedMediaType {
		t.Errorf("no Content-Type: %d %s, want 415", status, b)
	}
	if status, _, _ := call(t, "POST", base+"/api/v1/orders/o-bad-1/cancel", ``, nil); status != http.StatusOK {
		t.Errorf("cancel with an empty body: %d", status)
	}
	if status, _, _ := call(t, "POST", base+"/api/v1/orders/o-bad-1/cancel", `{}`, nil); status != http.StatusConflict {
		t.Errorf("cancel twice: %d, want 409", status)
	}
	// GraphQL: bad arguments are errors with a code, never a 5xx.
	for _, q := range []string{`{ orders(first: 0) { nodes { id } } }`, `{ orders(after: "garbage!") { nodes { id } } }`, `{ order(id: "x", consistentWith: "nope") { id } }`} {
		a := graphQL(t, base, q, nil, nil)
		if len(a.Errors) == 0 || a.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
			t.Errorf("%s: errors %+v, want BAD_USER_INPUT", q, a.Errors)
		}
	}
	status, _, b = call(t, "POST", base+"/graphql", `{"query": "{ nope }"}`, nil)
	if status >= 500 || !bytes.Contains(b, []byte("GRAPHQL_VALIDATION_FAILED")) {
		t.Errorf("invalid graphql: %d %s", status, b)
	}
}

// TestNULAndControlCharactersAreRefused: identifiers and text with NUL bytes, other control
// characters or broken UTF-8 are 422 (REST, naming the field) or BAD_USER_INPUT (GraphQL), never
// 201 or a 5xx; nothing of them reaches the log, so no projector ever parks one.
func TestNULAndControlCharactersAreRefused(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	line := func(product string) string {
		return `[{"productId":` + mustJSON(product) + `,"quantity":1,"unitPriceCents":1}]`
	}
	address := `{"line1":"1 rue","city":"Paris","postalCode":"75001","country":"FR"}`
	cases := []struct {
		name, path, body, field string
	}{
		{"NUL in customerId", "/api/v1/orders", `{"customerId":"c\u0000x","lines":` + line("p") + `}`, "customerId"},
		{"NUL in productId", "/api/v1/orders", `{"customerId":"c","lines":` + line("p\u0000x") + `}`, "lines[0].productId"},
		{"NUL in orderId", "/api/v1/orders", `{"orderId":"o\u0000","customerId":"c","lines":` + line("p") + `}`, "orderId"},
		{"escape in orderId", "/api/v1/orders", `{"orderId":"o\u001b[2J","customerId":"c","lines":` + line("p") + `}`, "orderId"},
		{"NUL in a reason", "/api/v1/orders/o-1/cancel", `{"reason":"x\u0000"}`, "reason"},
		{"NUL in a path id", "/api/v1/orders/%00/cancel", `{}`, "orderId"},
		{"C1 control in a path id", "/api/v1/products/p%C2%85/restock", `{"quantity":1}`, "productId"},
		{"NUL in a sku", "/api/v1/products", `{"sku":"S\u0000","name":"n","priceCents":1}`, "sku"},
		{"NUL in a product name", "/api/v1/products", `{"sku":"S-1","name":"bad\u0000name","priceCents":1}`, "name"},
		{"NUL in a customer name", "/api/v1/customers", `{"name":"A\u0000","email":"a@example.com","shippingAddress":` + address + `}`, "name"},
		{"NUL in a country", "/api/v1/customers", `{"name":"A","email":"a@example.com","shippingAddress":{"line1":"1 rue","city":"Paris","postalCode":"75001","country":"F\u0000"}}`, "shippingAddress.country"},
		{"NUL in an e-mail", "/api/v1/customers", `{"name":"A","email":"a\u0000@example.com","shippingAddress":` + address + `}`, "email"},
	}
	for _, c := range cases {
		status, h, b := call(t, "POST", base+c.path, c.body, nil)
		var p struct{ Field string }
		_ = json.Unmarshal(b, &p)
		if status != http.StatusUnprocessableEntity || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") || p.Field != c.field {
			t.Errorf("%s: %d %.200s, want 422 naming %s", c.name, status, b, c.field)
		}
	}
	for _, q := range []struct{ query, vars string }{
		{`{ order(id: "o\u0000x") { id } }`, ``},
		{`query($id: ID!) { order(id: $id) { id } }`, `{"id": "o\u0000x"}`},
		{`{ products(query: "a\u0000") { nodes { id } } }`, ``},
		{`query($q: String) { products(query: $q) { nodes { id } } }`, `{"q": "a\u0007"}`},
		{`mutation { cancelOrder(id: "o\u0000") { id } }`, ``},
	} {
		body := `{"query":` + mustJSON(q.query)
		if q.vars != "" {
			body += `,"variables":` + q.vars
		}
		status, _, b := call(t, "POST", base+"/graphql", body+`}`, nil)
		if status >= 500 || !bytes.Contains(b, []byte(`"BAD_USER_INPUT"`)) {
			t.Errorf("%s %s: %d %s, want BAD_USER_INPUT", q.query, q.vars, status, b)
		}
	}
}

// postWithoutContentType posts body as an admin with no Content-Type header at all.
func postWithoutContentType(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tokenFor(t, "test-admin", auth.Admin))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestOldNATSServerIsRefusedClearly: a server older than 2.10 is refused at start with a message
// that names the version needed; the machine's own nats-server (127.0.0.1:4222) is such a one
// where it runs.
func TestOldNATSServerIsRefusedClearly(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{"2.9.10": false, "2.10.0": true, "2.15.2": true, "v2.10.24-RC.1": true, "2.2": false, "3.0.0": true} {
		if err := platform.CheckNATSServer(v); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", v, err, ok)
		}
	}
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.Timeout(time.Second))
	if err != nil {
		t.Skip("no nats-server on 127.0.0.1:4222")
	}
	version := nc.ConnectedServerVersion()
	nc.Close()
	if platform.CheckNATSServer(version) == nil {
		t.Skipf("the nats-server on 127.0.0.1:4222 is %s, new enough", version)
	}
	cfg, err := platform.ParseFlags("serve", []string{"--target=order-commands", "--http-addr=127.0.0.1:0", "--data-dir=" + t.TempDir()},
		func(k string) string {
			return map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "NATS_URL": "nats://127.0.0.1:4222", "ORDERFLOW_NATS_INSECURE": "true", "ORDERFLOW_JWT_SECRET": testSecret}[k]
		}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = platform.Run(t.Context(), cfg, io.Discard, io.Discard, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "needs 2.10 or newer") {
		t.Fatalf("run on nats-server %s: %v; want a refusal naming 2.10", version, err)
	}
}
