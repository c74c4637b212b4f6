package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

func errorCode(a gqlAnswer) string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

// TestTokensAndRoles: no token is 401; a customer places, reads and cancels only its own orders
// and profile; admin-only commands are refused to it.
func TestTokensAndRoles(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	a, b := registered(t, base, "cust-a"), registered(t, base, "cust-b")
	order := `{"lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`

	status, h, body := call(t, "POST", base+"/api/v1/orders", order, map[string]string{"Authorization": ""})
	expectProblem(t, "no token", status, h, body, http.StatusUnauthorized, "")
	status, _, _ = call(t, "POST", base+"/graphql", `{"query":"{ me { id } }"}`, map[string]string{"Authorization": "Bearer not.a.token"})
	if status != http.StatusUnauthorized {
		t.Errorf("graphql with a bad token: %d, want 401", status)
	}
	expired, _ := auth.Issue([]byte(testSecret), "cust-a", auth.Customer, -time.Hour)
	if status, _, _ = call(t, "POST", base+"/graphql", `{"query":"{ me { id } }"}`, map[string]string{"Authorization": "Bearer " + expired}); status != http.StatusUnauthorized {
		t.Errorf("graphql with an expired token: %d, want 401", status)
	}
	other, _ := auth.Issue([]byte(strings.Repeat("x", 40)), "cust-a", auth.Admin, time.Hour)
	if status, _, _ = call(t, "POST", base+"/graphql", `{"query":"{ me { id } }"}`, map[string]string{"Authorization": "Bearer " + other}); status != http.StatusUnauthorized {
		t.Errorf("graphql with a token of another secret: %d, want 401", status)
	}

	// A customer orders for itself (an empty customerId is the caller).
	status, _, body = call(t, "POST", base+"/api/v1/orders", order, a)
	var placed struct{ OrderID, Position string }
	if status != http.StatusCreated || json.Unmarshal(body, &placed) != nil {
		t.Fatalf("customer A places: %d %s", status, body)
	}
	if got := readOrder(t, base, placed.OrderID, placed.Position); got.CustomerID != "cust-a" {
		t.Fatalf("A's order belongs to %q", got.CustomerID)
	}
	status, h, body = call(t, "POST", base+"/api/v1/orders", `{"customerId":"cust-a","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, b)
	expectProblem(t, "B orders for A", status, h, body, http.StatusForbidden, "")

	// B cannot see or cancel A's order, nor list A's orders.
	pos := map[string]string{"X-Consistency-Position": placed.Position}
	ans := graphQL(t, base, `query($id: ID!) { order(id: $id) { id } }`, map[string]any{"id": placed.OrderID}, merge(b, pos))
	if string(ans.Data["order"]) != "null" {
		t.Errorf("B reads A's order: %s", ans.Data["order"])
	}
	status, h, body = call(t, "POST", base+"/api/v1/orders/"+placed.OrderID+"/cancel", "", b)
	expectProblem(t, "B cancels A's order", status, h, body, http.StatusNotFound, "")
	if ans = graphQL(t, base, `{ orders(customerId: "cust-a") { nodes { id } } }`, nil, b); errorCode(ans) != "FORBIDDEN" {
		t.Errorf("B lists A's orders: %+v", ans)
	}
	ans = graphQL(t, base, `mutation($id: ID!) { cancelOrder(id: $id) { id } }`, map[string]any{"id": placed.OrderID}, b)
	if errorCode(ans) != "NOT_FOUND" {
		t.Errorf("B cancels A's order over GraphQL: %+v", ans)
	}
	// B's own list is empty; A's has the order.
	ans = graphQL(t, base, `{ orders { nodes { id } } }`, nil, merge(b, pos))
	if len(ans.Errors) > 0 || strings.Contains(string(ans.Data["orders"]), placed.OrderID) {
		t.Errorf("B's orders: %s %+v", ans.Data["orders"], ans.Errors)
	}
	ans = graphQL(t, base, `{ orders { nodes { id } } }`, nil, merge(a, pos))
	if !strings.Contains(string(ans.Data["orders"]), placed.OrderID) {
		t.Errorf("A's orders: %s %+v", ans.Data["orders"], ans.Errors)
	}
	// A cancels its own order.
	if status, _, body = call(t, "POST", base+"/api/v1/orders/"+placed.OrderID+"/cancel", "", a); status != http.StatusOK {
		t.Errorf("A cancels its order: %d %s", status, body)
	}
	// Admin-only commands.
	status, h, body = call(t, "POST", base+"/api/v1/products", `{"sku":"X-1","name":"X","priceCents":100}`, a)
	expectProblem(t, "a customer adds a product", status, h, body, http.StatusForbidden, "")
	if ans = graphQL(t, base, `mutation { restock(productId: "p", quantity: 1) { id } }`, nil, a); errorCode(ans) != "FORBIDDEN" {
		t.Errorf("a customer restocks over GraphQL: %+v", ans)
	}

	// C registers itself over GraphQL, then `me` is its profile; B's `customer(id: C)` is null.
	c := map[string]string{"Authorization": tokenFor(t, "cust-c", auth.Customer)}
	ans = graphQL(t, base, `mutation { registerCustomer(input: {name: "Ada", email: "ada@example.com", shippingAddress: {line1: "1 Main St", city: "Paris", postalCode: "75001", country: "FR"}}) { id position } }`, nil, c)
	var reg struct{ ID, Position string }
	if len(ans.Errors) > 0 || json.Unmarshal(ans.Data["registerCustomer"], &reg) != nil || reg.ID != "cust-c" {
		t.Fatalf("C registers: %s %+v", ans.Data["registerCustomer"], ans.Errors)
	}
	ans = graphQL(t, base, `query($p: String) { me(consistentWith: $p) { id name email } }`, map[string]any{"p": reg.Position}, c)
	if !strings.Contains(string(ans.Data["me"]), `"name":"Ada"`) {
		t.Errorf("C's me: %s %+v", ans.Data["me"], ans.Errors)
	}
	ans = graphQL(t, base, `query($p: String) { customer(id: "cust-c", consistentWith: $p) { id } }`, map[string]any{"p": reg.Position}, b)
	if string(ans.Data["customer"]) != "null" {
		t.Errorf("B reads C's profile: %s", ans.Data["customer"])
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestMutationsAreTheRESTCommands: the same validation (a problem's field becomes the error's),
// the same idempotency (a key gives the same answer), the same position for read-your-writes.
func TestMutationsAreTheRESTCommands(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	place := `mutation($key: String) { placeOrder(input: {customerId: "c-9", lines: [{productId: "sku-1", quantity: 2, unitPriceCents: 150}]}, idempotencyKey: $key) { id position } }`
	first := graphQL(t, base, place, map[string]any{"key": "k-1"}, nil)
	again := graphQL(t, base, place, map[string]any{"key": "k-1"}, nil)
	if len(first.Errors) > 0 || string(first.Data["placeOrder"]) != string(again.Data["placeOrder"]) {
		t.Fatalf("placeOrder twice with one key: %s %+v, then %s %+v", first.Data["placeOrder"], first.Errors, again.Data["placeOrder"], again.Errors)
	}
	var r struct{ ID, Position string }
	if err := json.Unmarshal(first.Data["placeOrder"], &r); err != nil {
		t.Fatal(err)
	}
	if o := readOrder(t, base, r.ID, r.Position); o.TotalCents != 300 || o.Status != "PLACED" {
		t.Errorf("placed over GraphQL: %+v", o)
	}
	bad := graphQL(t, base, `mutation { placeOrder(input: {customerId: "c-9", lines: [{productId: "sku-1", quantity: 0, unitPriceCents: 150}]}) { id } }`, nil, nil)
	if errorCode(bad) != "BAD_USER_INPUT" || !strings.Contains(fmt.Sprint(bad.Errors[0].Extensions["field"]), "quantity") {
		t.Errorf("a zero quantity: %+v", bad.Errors)
	}
	if bad = graphQL(t, base, `mutation { shipOrder(id: "nope") { id } }`, nil, nil); errorCode(bad) != "NOT_FOUND" {
		t.Errorf("ship an unknown order: %+v", bad.Errors)
	}
}

// TestQueryLimits: too deep is refused with a code, introspection is off outside dev, APQ
// answers a known hash.
func TestQueryLimits(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	deep := `{ me { orders(first: 1) { edges { node { customer { orders(first: 1) { edges { node { customer { orders(first: 1) { edges { node { id } } } } } } } } } } } } }`
	status, _, body := call(t, "POST", base+"/graphql", mustJSON(map[string]any{"query": deep}), nil)
	if status >= 500 || !strings.Contains(string(body), "DEPTH_LIMIT_EXCEEDED") {
		t.Errorf("deep query: %d %s", status, body)
	}
	status, _, body = call(t, "POST", base+"/graphql", `{"query":"{ __schema { types { name } } }"}`, nil)
	if status >= 500 || !strings.Contains(string(body), "INTROSPECTION_DISABLED") {
		t.Errorf("introspection in serve: %d %s", status, body)
	}
	q := `{ products(first: 1) { nodes { id } } }`
	sum := sha256.Sum256([]byte(q))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	_, _, body = call(t, "POST", base+"/graphql", mustJSON(map[string]any{"extensions": ext}), nil)
	if !strings.Contains(string(body), "PersistedQueryNotFound") {
		t.Errorf("unknown APQ hash: %s", body)
	}
	if _, _, body = call(t, "POST", base+"/graphql", mustJSON(map[string]any{"query": q, "extensions": ext}), nil); strings.Contains(string(body), "errors") {
		t.Errorf("APQ register: %s", body)
	}
	if _, _, body = call(t, "POST", base+"/graphql", mustJSON(map[string]any{"extensions": ext}), nil); !strings.Contains(string(body), `"products"`) {
		t.Errorf("APQ by hash: %s", body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRateLimit: a customer over GATEWAY_RATE_LIMIT gets 429 with Retry-After; an admin does not,
// unless GATEWAY_ADMIN_RATE_LIMIT is set.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	count := func(base string, h map[string]string) (limited int, retryAfter bool) {
		for range 30 {
			status, hdr, _ := call(t, "POST", base+"/graphql", `{"query":"{ me { id } }"}`, h)
			if status == http.StatusTooManyRequests {
				limited++
				retryAfter = hdr.Get("Retry-After") != ""
			}
		}
		return limited, retryAfter
	}
	base := startPlatform(t, "GATEWAY_RATE_LIMIT", "5")
	if n, ra := count(base, map[string]string{"Authorization": tokenFor(t, "busy", auth.Customer)}); n == 0 || !ra {
		t.Errorf("30 quick requests of a customer limited to 5/s: %d limited, Retry-After %v", n, ra)
	}
	if n, _ := count(base, nil); n > 0 {
		t.Errorf("an admin was limited %d times", n)
	}
	if n, ra := count(startPlatform(t, "GATEWAY_ADMIN_RATE_LIMIT", "5"), nil); n == 0 || !ra {
		t.Errorf("30 quick requests of an admin limited to 5/s: %d limited, Retry-After %v", n, ra)
	}
}

// TestOrderChangedSubscription: a graphql-transport-ws subscriber of an order that does not exist
// yet sees it placed, then cancelled, and the subscription completes.
func TestOrderChangedSubscription(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	ws := dialGraphQL(t, base)
	send := func(v any) {
		if err := ws.WriteJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	type msg struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	read := func() msg {
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			var m msg
			if err := ws.ReadJSON(&m); err != nil {
				t.Fatalf("read: %v", err)
			}
			if m.Type != "ping" && m.Type != "pong" && m.Type != "ka" {
				return m
			}
		}
	}
	send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": tokenFor(t, "c-live", auth.Customer)}})
	if m := read(); m.Type != "connection_ack" {
		t.Fatalf("after init: %+v", m)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"sku-1","sku":"LIVE-1","name":"Live","priceCents":100}`, nil); s != http.StatusCreated {
		t.Fatalf("add product: %d %s", s, b)
	}
	s, _, b := call(t, "POST", base+"/api/v1/products/sku-1/restock", `{"quantity":5}`, nil)
	if s != http.StatusOK {
		t.Fatalf("restock: %d %s", s, b)
	}
	// Live events read the products as the catalog has them then (read models are consistent
	// each with the log, not with each other): let the catalog show the stock before the order.
	if a := graphQL(t, base, `{ product(id: "sku-1") { available } }`, nil, map[string]string{"X-Consistency-Position": answer(t, b)["position"]}); !strings.Contains(string(a.Data["product"]), `5`) {
		t.Fatalf("product after restock: %s %+v", a.Data["product"], a.Errors)
	}
	id := fmt.Sprintf("live-%d", time.Now().UnixNano())
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { orderChanged(id: $id) { id status lines { product { available } } } }`, "variables": map[string]any{"id": id}}})
	time.Sleep(200 * time.Millisecond) // most often subscribed before the order exists; either way its first state is PLACED
	customer := map[string]string{"Authorization": tokenFor(t, "c-live", auth.Customer)}
	// staff places it for c-live (a customer's own order id would be a UUID)
	if status, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"`+id+`","customerId":"c-live","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, nil); status != http.StatusCreated {
		t.Fatalf("place: %d %s", status, b)
	}
	var statuses []string
	for {
		m := read()
		if m.Type == "complete" {
			break
		}
		if m.Type != "next" {
			t.Fatalf("message %s %s", m.Type, m.Payload)
		}
		var p struct {
			Data struct {
				OrderChanged struct {
					ID, Status string
					Lines      []struct{ Product struct{ Available int } }
				}
			}
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data.OrderChanged.ID != id || len(p.Data.OrderChanged.Lines) != 1 {
			t.Fatalf("next: %s", m.Payload)
		}
		statuses = append(statuses, p.Data.OrderChanged.Status)
		// Each event reads the order's products afresh: restocked between the two events, the
		// second shows the new stock (no saga runs here, so nothing is reserved).
		if want := map[string]int{"PLACED": 5, "CANCELLED": 15}[p.Data.OrderChanged.Status]; p.Data.OrderChanged.Lines[0].Product.Available != want {
			t.Errorf("%s: product available %d, want %d", p.Data.OrderChanged.Status, p.Data.OrderChanged.Lines[0].Product.Available, want)
		}
		if p.Data.OrderChanged.Status == "PLACED" && len(statuses) == 1 {
			s, _, b := call(t, "POST", base+"/api/v1/products/sku-1/restock", `{"quantity":10}`, nil)
			if s != http.StatusOK {
				t.Fatalf("restock: %d %s", s, b)
			}
			// The catalog shows it before the order changes.
			if a := graphQL(t, base, `{ product(id: "sku-1") { available } }`, nil, map[string]string{"X-Consistency-Position": answer(t, b)["position"]}); !strings.Contains(string(a.Data["product"]), `15`) {
				t.Fatalf("product after restock: %s %+v", a.Data["product"], a.Errors)
			}
			if status, _, b := call(t, "POST", base+"/api/v1/orders/"+id+"/cancel", "", customer); status != http.StatusOK {
				t.Fatalf("cancel: %d %s", status, b)
			}
		}
	}
	if strings.Join(statuses, ",") != "PLACED,CANCELLED" {
		t.Errorf("statuses %v, want PLACED then CANCELLED", statuses)
	}
	// A subscriber that (re)connects after the end gets the final state at once, then complete.
	send(map[string]any{"id": "2", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { orderChanged(id: $id) { id status } }`, "variables": map[string]any{"id": id}}})
	if m := read(); m.Type != "next" || !strings.Contains(string(m.Payload), "CANCELLED") {
		t.Errorf("late subscriber: %s %s", m.Type, m.Payload)
	}
	if m := read(); m.Type != "complete" {
		t.Errorf("late subscriber then: %s %s", m.Type, m.Payload)
	}
	// Another customer's subscription to it sees what it would of an order not placed yet: nothing.
	// The order service itself answers it "not found" (it checks the caller's assertion), so the
	// gateway cannot tell, nor leak, that the order exists.
	ws2 := dialGraphQL(t, base)
	_ = ws2.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": tokenFor(t, "c-other", auth.Customer)}})
	_ = ws2.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { orderChanged(id: $id) { id status } }`, "variables": map[string]any{"id": id}}})
	_ = ws2.SetReadDeadline(time.Now().Add(3 * time.Second)) // the owner's late subscription had the order at once
	var got bytes.Buffer
	for {
		_, data, err := ws2.ReadMessage()
		if err != nil {
			break // the deadline: nothing came
		}
		if strings.Contains(string(data), `"next"`) || strings.Contains(string(data), "CANCELLED") {
			t.Fatalf("another customer got the order: %s", data)
		}
		got.Write(data)
	}
	if strings.Contains(got.String(), "not yours") || strings.Contains(got.String(), "FORBIDDEN") {
		t.Errorf("the refusal says the order exists: %s", got.String())
	}
}

// TestAServiceDownIsAPartialResult: with no saga service running, an order's fulfillment field
// is null with an UNAVAILABLE error on its path, and the rest of the order is answered.
func TestAServiceDownIsAPartialResult(t *testing.T) {
	t.Parallel()
	base := startPlatform(t) // every target but the saga
	status, _, body := call(t, "POST", base+"/api/v1/orders", `{"customerId":"c-1","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, nil)
	var placed struct{ OrderID, Position string }
	if status != http.StatusCreated || json.Unmarshal(body, &placed) != nil {
		t.Fatalf("place: %d %s", status, body)
	}
	start := time.Now()
	status, _, body = call(t, "POST", base+"/graphql", mustJSON(map[string]any{"query": `query($id: ID!) { order(id: $id) { id status fulfillment { step } } }`,
		"variables": map[string]any{"id": placed.OrderID}}), map[string]string{"X-Consistency-Position": placed.Position})
	var a struct {
		Data struct {
			Order struct {
				ID, Status  string
				Fulfillment *struct{ Step string }
			}
		}
		Errors []struct {
			Path       []any
			Extensions map[string]any
		}
	}
	if status != http.StatusOK || json.Unmarshal(body, &a) != nil {
		t.Fatalf("query: %d %s", status, body)
	}
	if a.Data.Order.ID != placed.OrderID || a.Data.Order.Status != "PLACED" || a.Data.Order.Fulfillment != nil {
		t.Errorf("partial result: %s", body)
	}
	if len(a.Errors) != 1 || a.Errors[0].Extensions["code"] != "UNAVAILABLE" || fmt.Sprint(a.Errors[0].Path) != "[order fulfillment]" {
		t.Errorf("errors: %s", body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the partial answer took %s", took)
	}
}

// TestMyOrdersChangedSubscription: a customer's subscription sees its own order (as it is when
// the subscription starts, or as it appears) and its cancellation, and nothing of another
// customer's order.
func TestMyOrdersChangedSubscription(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	ws := dialGraphQL(t, base)
	mine := map[string]string{"Authorization": tokenFor(t, "c-mine", auth.Customer)}
	_ = ws.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": mine["Authorization"]}})
	_ = ws.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { myOrdersChanged { id customerId status } }`}})
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	var ack struct{ Type string }
	if err := ws.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("ack: %+v %v", ack, err)
	}
	// staff places both (readable order ids: a customer's own would be UUIDs)
	if status, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"theirs","customerId":"c-other","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, nil); status != http.StatusCreated {
		t.Fatalf("place theirs: %d %s", status, b)
	}
	if status, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"ours","customerId":"c-mine","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, nil); status != http.StatusCreated {
		t.Fatalf("place ours: %d %s", status, b)
	}
	var seen []string
	for len(seen) < 2 {
		var m struct {
			Type    string
			Payload struct {
				Data struct {
					MyOrdersChanged struct{ ID, CustomerID, Status string }
				}
			}
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("read after %v: %v", seen, err)
		}
		if m.Type == "ping" || m.Type == "pong" {
			continue
		}
		o := m.Payload.Data.MyOrdersChanged
		if m.Type != "next" || o.CustomerID != "c-mine" {
			t.Fatalf("message %+v", m)
		}
		seen = append(seen, o.ID+":"+o.Status)
		if o.Status == "PLACED" {
			if status, _, b := call(t, "POST", base+"/api/v1/orders/ours/cancel", "", mine); status != http.StatusOK {
				t.Fatalf("cancel: %d %s", status, b)
			}
		}
	}
	if strings.Join(seen, ",") != "ours:PLACED,ours:CANCELLED" {
		t.Errorf("seen %v", seen)
	}
}

// dialGraphQL opens a graphql-transport-ws connection to the gateway, closed with the test.
func dialGraphQL(t *testing.T, base string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http", "ws", 1)+"/graphql", http.Header{"Sec-WebSocket-Protocol": {"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// TestLiveQueriesReadOnlyWhatChanged: the projector says which orders and customers a batch
// changed, so a live query reads again only when its own moved: other customers' orders cause no
// read for orderChanged(A) or for A's customer's myOrdersChanged; A's cancellation reaches both,
// myOrdersChanged reading that order, not its whole list.
func TestLiveQueriesReadOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	ns := natstest.Namespace(t)
	base := startPlatform(t, "ORDERFLOW_NATS_PREFIX", string(ns))
	mine := map[string]string{"Authorization": tokenFor(t, "c-a", auth.Customer)}
	// a is placed and announced before the live queries start, so no late announcement of it
	// falls in the counting window.
	nc := natstest.Connect(t)
	announced, err := nc.SubscribeSync(ns.Progress("orders"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"a","customerId":"c-a","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, nil); s != http.StatusCreated { // staff places it for c-a
		t.Fatalf("place a: %d %s", s, b)
	}
	for {
		m, err := announced.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("a's placement never announced: %v", err)
		}
		var p wire.Progress
		if json.Unmarshal(m.Data, &p) == nil && slices.Contains(p.Changed, "order:a") {
			break
		}
	}
	ws := dialGraphQL(t, base)
	_ = ws.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": mine["Authorization"]}})
	_ = ws.WriteJSON(map[string]any{"id": "one", "type": "subscribe", "payload": map[string]any{"query": `subscription { orderChanged(id: "a") { status } }`}})
	_ = ws.WriteJSON(map[string]any{"id": "mine", "type": "subscribe", "payload": map[string]any{"query": `subscription { myOrdersChanged { id status } }`}})
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	// next reads until both subscriptions have sent status.
	next := func(status string) {
		t.Helper()
		got := map[string]bool{}
		for !got["one"] || !got["mine"] {
			var m struct {
				ID, Type string
				Payload  json.RawMessage
			}
			if err := ws.ReadJSON(&m); err != nil {
				t.Fatalf("waiting for %s: %v", status, err)
			}
			if m.Type == "next" && strings.Contains(string(m.Payload), `"status":"`+status+`"`) {
				got[m.ID] = true
			}
		}
	}
	next("PLACED")
	reads := spyOn(t, nc, wire.EndpointOrderByID.In(ns), wire.EndpointListOrders.In(ns), wire.EndpointOrdersByIDs.In(ns))
	// Five orders of another customer.
	for i := range 5 {
		s, _, b := call(t, "POST", base+"/api/v1/orders", fmt.Sprintf(`{"orderId":"b-%d","customerId":"c-b","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, i), nil)
		if s != http.StatusCreated {
			t.Fatalf("place b-%d: %d %s", i, s, b)
		}
	}
	// Then a's cancellation: once both live queries have sent it, they have handled every
	// announcement before it (one subscription per gateway, delivered in order, each live query
	// handling its own in order).
	if s, _, b := call(t, "POST", base+"/api/v1/orders/a/cancel", "", mine); s != http.StatusOK {
		t.Fatalf("cancel a: %d %s", s, b)
	}
	next("CANCELLED")
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Announcements after a's placement that may concern c-a (naming a or c-a, or not saying
	// what changed, as a projector that starts again does: a rebuild may have swapped its rows)
	// rightly make live queries read again at their position; c-b's orders name only c-b's.
	concerning := map[string]wire.Progress{} // by `"minPosition":"…"`
	for {
		m, err := announced.NextMsg(0)
		if err != nil {
			break
		}
		var p wire.Progress
		if json.Unmarshal(m.Data, &p) == nil && !p.Unchanged &&
			(p.Changed == nil || slices.Contains(p.Changed, wire.OrderKey("a")) || slices.Contains(p.Changed, wire.CustomerOrdersKey("c-a"))) {
			concerning[`"minPosition":"`+p.Position+`"`] = p
		}
	}
	// One read each, for the cancellation (or an announcement concerning c-a); none for the five
	// orders of c-b.
	var got []string
	for _, m := range reads.taken(t) {
		if !bytes.Contains(m.Data, []byte(`"a"`)) && !bytes.Contains(m.Data, []byte(`"c-a"`)) {
			continue
		}
		var because *wire.Progress
		for pos, p := range concerning {
			if bytes.Contains(m.Data, []byte(pos)) {
				because = &p
			}
		}
		switch {
		case because == nil:
			t.Errorf("c-a's live query read on an announcement that does not concern c-a: %s %s", m.Subject, m.Data)
		case because.Changed != nil && m.Subject == wire.EndpointListOrders.In(ns) && !slices.Contains(because.Changed, wire.CustomerOrdersKey("c-a")):
			t.Errorf("a change to an order myOrdersChanged holds read the list again, not the order: %s", m.Data)
		}
		got = append(got, m.Subject+" "+string(m.Data))
	}
	if len(concerning) == 1 && len(got) != 2 { // the cancellation alone concerned c-a
		t.Errorf("c-a's live queries read %d times, want twice (once each, for a's cancellation): %v", len(got), got)
	}
}
