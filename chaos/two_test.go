package chaos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/internal/auth"
)

// checkTwoInstances asks each pair of instances about one thing, through the two gateways:
// every answer must be the one a single instance gives. A restock through one and orders through
// the other (the product's reservations go to whichever inventory instance owns it, which cached
// it empty during the load); a price change and orders; a registration, a deactivation and the
// customer's orders; one idempotency key on both gateways; a write through one read through the
// other at its position.
func (p *platform) checkTwoInstances(products []string) {
	t := p.t
	t.Helper()
	gw1, gw2 := p.gateways[0], p.gateways[1]
	type answer struct {
		status int
		body   string
		json   map[string]any
	}
	ask := func(base, token, method, path, body string) answer {
		t.Helper()
		var a answer
		deadline := time.Now().Add(30 * time.Second)
		for {
			status, b, err := p.doAt(base, token, method, path, body, uuid.NewString())
			if err == nil && status != http.StatusServiceUnavailable { // an outage passes; an answer is what is checked
				a = answer{status: status, body: string(b)}
				_ = json.Unmarshal(b, &a.json)
				return a
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s%s: %d %s %v", method, base, path, status, b, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	status := func(base, id string) string { // once final
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			ans := p.graphQLAt(base, fmt.Sprintf(`{ order(id: %q) { status } }`, id), "")
			for _, s := range []string{"CONFIRMED", "CANCELLED"} {
				if strings.Contains(ans, `"status":"`+s+`"`) {
					return s
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s not final after 60s: %s", id, ans)
			}
		}
	}
	admin := p.token

	// Stock: the product without stock (its orders were refused all along), restocked through one
	// gateway, then ordered through the other: every order is confirmed. (A load's order placed
	// before the restock may still take a unit of it: the restock leaves room for those.)
	empty := products[len(products)-1]
	if a := ask(gw2, admin, "POST", "/api/v1/products/"+empty+"/restock", `{"quantity":100}`); a.status != http.StatusOK {
		t.Fatalf("restock %s through the second gateway: %d %s", empty, a.status, a.body)
	}
	for i := range 3 {
		id := fmt.Sprintf("chaos-restocked-%d-%s", i, uuid.NewString()[:8])
		if a := ask(gw1, admin, "POST", "/api/v1/orders", fmt.Sprintf(`{"orderId":%q,"customerId":"chaos-two","lines":[{"productId":%q,"quantity":1}]}`, id, empty)); a.status != http.StatusCreated {
			t.Fatalf("order %s: %d %s", id, a.status, a.body)
		}
		if s := status(gw2, id); s != "CONFIRMED" {
			t.Errorf("order %d of 3 for a product restocked through the other gateway: %s, want CONFIRMED", i+1, s)
		}
	}

	// Prices: changed through one gateway, charged through the other.
	priced := products[0]
	if a := ask(gw2, admin, "POST", "/api/v1/products/"+priced+"/price", `{"priceCents":125}`); a.status != http.StatusOK {
		t.Fatalf("change the price: %d %s", a.status, a.body)
	}
	if a := ask(gw1, admin, "POST", "/api/v1/orders", fmt.Sprintf(`{"customerId":"chaos-two","lines":[{"productId":%q,"quantity":1,"unitPriceCents":100}]}`, priced)); a.status != http.StatusConflict || !strings.Contains(a.body, "125") {
		t.Errorf("an order at the old price after a price change through the other gateway: %d %s, want 409 saying 125", a.status, a.body)
	}
	a := ask(gw1, admin, "POST", "/api/v1/orders", fmt.Sprintf(`{"customerId":"chaos-two","lines":[{"productId":%q,"quantity":2}]}`, priced))
	if a.status != http.StatusCreated {
		t.Fatalf("an order without a price: %d %s", a.status, a.body)
	}
	id, _ := a.json["orderId"].(string)
	if s := status(gw2, id); s != "CONFIRMED" {
		t.Errorf("the order at the new price: %s, want CONFIRMED", s)
	}
	if ans := p.graphQLAt(gw2, fmt.Sprintf(`{ order(id: %q) { totalCents lines { unitPriceCents } } }`, id), ""); !strings.Contains(ans, `"totalCents":250`) {
		t.Errorf("the order at the new price reads %s, want a total of 2 × 125", ans)
	}
	if a := ask(gw1, admin, "POST", "/api/v1/products/"+priced+"/price", `{"priceCents":100}`); a.status != http.StatusOK { // as the load's orders ask
		t.Fatalf("change the price back: %d %s", a.status, a.body)
	}

	// Customers: registered through one gateway, deactivated through the other; the customer's
	// orders are taken while it is active and refused once it is not, through either.
	cust := "chaos-two-" + uuid.NewString()[:8]
	tok, err := auth.Issue([]byte(secret), cust, auth.Customer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	own := "Bearer " + tok
	if a := ask(gw1, admin, "POST", "/api/v1/customers", fmt.Sprintf(`{"customerId":%q,"name":"Two","email":"%s@example.com","shippingAddress":{"line1":"1 rue","city":"Paris","postalCode":"75001","country":"FR"}}`, cust, cust)); a.status != http.StatusCreated {
		t.Fatalf("register: %d %s", a.status, a.body)
	}
	line := fmt.Sprintf(`{"lines":[{"productId":%q,"quantity":1}]}`, priced)
	a = ask(gw2, own, "POST", "/api/v1/orders", line)
	if a.status != http.StatusCreated {
		t.Fatalf("the registered customer's order through the other gateway: %d %s", a.status, a.body)
	}
	if id, _ := a.json["orderId"].(string); status(gw1, id) != "CONFIRMED" {
		t.Errorf("the registered customer's order %s is not CONFIRMED", id)
	}
	if a := ask(gw2, admin, "POST", "/api/v1/customers/"+cust+"/deactivate", ""); a.status != http.StatusOK {
		t.Fatalf("deactivate: %d %s", a.status, a.body)
	}
	for _, gw := range p.gateways {
		if a := ask(gw, own, "POST", "/api/v1/orders", line); a.status != http.StatusConflict || !strings.Contains(a.body, "deactivated") {
			t.Errorf("a deactivated customer's order through %s: %d %s, want 409 deactivated", gw, a.status, a.body)
		}
	}

	// Idempotency: one key on both gateways is one order, one answer; another request under it is
	// refused by either.
	key, idem := uuid.NewString(), "chaos-idem-"+uuid.NewString()[:8]
	body := fmt.Sprintf(`{"orderId":%q,"customerId":"chaos-two","lines":[{"productId":%q,"quantity":1}]}`, idem, priced)
	s1, b1, err1 := p.doAt(gw1, admin, "POST", "/api/v1/orders", body, key)
	s2, b2, err2 := p.doAt(gw2, admin, "POST", "/api/v1/orders", body, key)
	if err1 != nil || err2 != nil || s1 != http.StatusCreated || s2 != s1 || string(b1) != string(b2) {
		t.Errorf("one idempotency key through both gateways: %d %s %v, then %d %s %v; want one answer twice", s1, b1, err1, s2, b2, err2)
	}
	if s, _, _ := p.doAt(gw2, admin, "POST", "/api/v1/orders", strings.Replace(body, `"quantity":1`, `"quantity":2`, 1), key); s != http.StatusUnprocessableEntity {
		t.Errorf("another request under the key through the other gateway: %d, want 422", s)
	}
	conn, err := pgx.Connect(t.Context(), p.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var placed int
	if err := conn.QueryRow(t.Context(), `select count(*) from eventstore.events where stream_id = $1 and event_type = $2`, order.Stream(idem), order.TypePlaced).Scan(&placed); err != nil || placed != 1 {
		t.Errorf("the order of one key is placed %d times (%v), want once", placed, err)
	}

	// Read your writes: written through one gateway, read through the other at its position.
	ryw := "chaos-ryw-" + uuid.NewString()[:8]
	a = ask(gw1, admin, "POST", "/api/v1/orders", fmt.Sprintf(`{"orderId":%q,"customerId":"chaos-two","lines":[{"productId":%q,"quantity":1}]}`, ryw, priced))
	pos, _ := a.json["position"].(string)
	if ans := p.graphQLAt(gw2, fmt.Sprintf(`{ order(id: %q) { id } }`, ryw), pos); !strings.Contains(ans, `"id":"`+ryw+`"`) {
		t.Errorf("an order placed through one gateway, read through the other at its position: %s", ans)
	}
	status(gw2, ryw)
}
