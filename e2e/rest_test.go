package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

type problemBody struct {
	Type, Title, Field string
	Status             int
}

func expectProblem(t *testing.T, name string, status int, h http.Header, b []byte, want int, field string) {
	t.Helper()
	var p problemBody
	if status != want || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") || json.Unmarshal(b, &p) != nil || p.Status != want || !strings.HasPrefix(p.Type, "https://") {
		t.Errorf("%s: %d %s %.200s, want %d problem+json", name, status, h.Get("Content-Type"), b, want)
		return
	}
	if field != "" && p.Field != field {
		t.Errorf("%s: field %q, want %q", name, p.Field, field)
	}
}

func answer(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return m
}

func TestCustomersOverREST(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	body := `{"name":"Ada Lovelace","email":"Ada@Example.com","shippingAddress":{"line1":"1 Main St","city":"Paris","postalCode":"75001","country":"FR"}}`
	status, h, b := call(t, "POST", base+"/api/v1/customers", body, map[string]string{"Idempotency-Key": "reg-ada"})
	if status != 201 || !strings.HasPrefix(h.Get("Location"), "/api/v1/customers/") {
		t.Fatalf("register: %d %s", status, b)
	}
	ada := answer(t, b)
	if s, _, b2 := call(t, "POST", base+"/api/v1/customers", body, map[string]string{"Idempotency-Key": "reg-ada"}); s != 201 || string(b2) != string(b) {
		t.Errorf("idempotent retry: %d %s", s, b2)
	}
	s, h, b2 := call(t, "POST", base+"/api/v1/customers", strings.Replace(body, "Ada Lovelace", "Eve", 1), map[string]string{"Idempotency-Key": "reg-ada"})
	expectProblem(t, "same key, other body", s, h, b2, 422, "Idempotency-Key")
	s, h, b2 = call(t, "POST", base+"/api/v1/customers", strings.Replace(body, "Ada@Example.com", "ada@example.COM", 1), nil)
	expectProblem(t, "e-mail taken", s, h, b2, 409, "")
	for name, c := range map[string]struct {
		body   string
		status int
		field  string
	}{
		"no name":       {`{"email":"x@y.co","shippingAddress":{"line1":"1","city":"P","postalCode":"1","country":"FR"}}`, 422, "name"},
		"bad e-mail":    {`{"name":"X","email":"nope","shippingAddress":{"line1":"1","city":"P","postalCode":"1","country":"FR"}}`, 422, "email"},
		"bad country":   {`{"name":"X","email":"x@y.co","shippingAddress":{"line1":"1","city":"P","postalCode":"1","country":"France"}}`, 422, "shippingAddress.country"},
		"no address":    {`{"name":"X","email":"x@y.co"}`, 422, "shippingAddress.line1"},
		"address typed": {`{"name":"X","email":"x@y.co","shippingAddress":"Paris"}`, 400, "shippingAddress"},
		"unknown field": {`{"name":"X","email":"x@y.co","age":3}`, 400, "age"},
	} {
		s, h, b := call(t, "POST", base+"/api/v1/customers", c.body, nil)
		expectProblem(t, name, s, h, b, c.status, c.field)
	}
	s, _, placed := call(t, "POST", base+"/api/v1/orders", `{"customerId":"`+ada["customerId"]+`","lines":[{"productId":"p","quantity":3,"unitPriceCents":700}]}`, nil)
	if s != 201 {
		t.Fatalf("place: %d %s", s, placed)
	}
	a := graphQL(t, base, `query($id: ID!) { customer(id: $id) { orderCount lifetimeSpendCents orders(first: 5) { nodes { id customer { name } } } } }`,
		map[string]any{"id": ada["customerId"]}, map[string]string{"X-Consistency-Position": answer(t, placed)["position"]})
	want := `{"orderCount":1,"lifetimeSpendCents":2100,"orders":{"nodes":[{"id":"` + answer(t, placed)["orderId"] + `","customer":{"name":"Ada Lovelace"}}]}}`
	if len(a.Errors) > 0 || string(a.Data["customer"]) != want {
		t.Errorf("customer with orders:\n got %s %+v\nwant %s", a.Data["customer"], a.Errors, want)
	}
	moved := `{"shippingAddress":{"line1":"2 Side St","city":"Lyon","postalCode":"69001","country":"FR"}}`
	if s, _, b := call(t, "POST", base+"/api/v1/customers/"+ada["customerId"]+"/address", moved, nil); s != 200 {
		t.Errorf("change address: %d %s", s, b)
	}
	s, h, b2 = call(t, "POST", base+"/api/v1/customers/nobody/address", moved, nil)
	expectProblem(t, "address of unknown customer", s, h, b2, 404, "")
	s, _, deactivated := call(t, "POST", base+"/api/v1/customers/"+ada["customerId"]+"/deactivate", "", nil)
	if s != 200 {
		t.Fatalf("deactivate: %d %s", s, deactivated)
	}
	s, h, b2 = call(t, "POST", base+"/api/v1/customers/"+ada["customerId"]+"/deactivate", "", nil)
	expectProblem(t, "deactivate twice", s, h, b2, 409, "")

	a = graphQL(t, base, `query($id: ID!) { customer(id: $id) { name email active shippingAddress { city } orderCount } }`,
		map[string]any{"id": ada["customerId"]}, map[string]string{"X-Consistency-Position": answer(t, deactivated)["position"]})
	if len(a.Errors) > 0 || !strings.Contains(string(a.Data["customer"]), `"active":false`) || !strings.Contains(string(a.Data["customer"]), `"ada@example.com"`) {
		t.Errorf("customer over GraphQL: %s %+v", a.Data["customer"], a.Errors)
	}
}

func TestProductsAndOrderLifecycleOverREST(t *testing.T) {
	t.Parallel()
	ns := natstest.Namespace(t)
	base := startPlatform(t, "ORDERFLOW_NATS_PREFIX", string(ns))
	status, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"widget","sku":"W-1","name":"Widget","priceCents":1999}`, nil)
	if status != 201 {
		t.Fatalf("add product: %d %s", status, b)
	}
	s, h, b2 := call(t, "POST", base+"/api/v1/products", `{"sku":"w-1","name":"Copy","priceCents":5}`, nil)
	expectProblem(t, "sku taken", s, h, b2, 409, "")
	for name, c := range map[string]struct {
		path, body string
		status     int
		field      string
	}{
		"negative price":     {"/api/v1/products", `{"sku":"X","name":"X","priceCents":-1}`, 422, "priceCents"},
		"sku with spaces":    {"/api/v1/products", `{"sku":"X Y","name":"X","priceCents":1}`, 422, "sku"},
		"price as text":      {"/api/v1/products", `{"sku":"X","name":"X","priceCents":"1"}`, 400, "priceCents"},
		"restock zero":       {"/api/v1/products/widget/restock", `{"quantity":0}`, 422, "quantity"},
		"restock unknown":    {"/api/v1/products/nope/restock", `{"quantity":1}`, 404, ""},
		"price negative":     {"/api/v1/products/widget/price", `{"priceCents":-5}`, 422, "priceCents"},
		"refund unknown":     {"/api/v1/payments/nope/refund", `{"amountCents":5}`, 404, ""},
		"refund zero":        {"/api/v1/payments/nope/refund", `{"amountCents":0}`, 422, "amountCents"},
		"capture unknown":    {"/api/v1/payments/nope/capture", ``, 404, ""},
		"ship unknown order": {"/api/v1/orders/nope/ship", ``, 404, ""},
	} {
		s, h, b := call(t, "POST", base+c.path, c.body, nil)
		expectProblem(t, name, s, h, b, c.status, c.field)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/widget/restock", `{"quantity":10}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	s, _, b2 = call(t, "POST", base+"/api/v1/products/widget/price", `{"priceCents":2499}`, nil)
	if s != 200 {
		t.Fatalf("price: %d %s", s, b2)
	}
	a := graphQL(t, base, `{ product(id: "widget") { sku name priceCents onHand reserved available } products(query: "wid", first: 5) { nodes { id } } }`,
		nil, map[string]string{"X-Consistency-Position": answer(t, b2)["position"]})
	if len(a.Errors) > 0 || string(a.Data["product"]) != `{"sku":"W-1","name":"Widget","priceCents":2499,"onHand":10,"reserved":0,"available":10}` ||
		!strings.Contains(string(a.Data["products"]), `"widget"`) {
		t.Fatalf("product over GraphQL: %s %s %+v", a.Data["product"], a.Data["products"], a.Errors)
	}

	// An order through its lifecycle. Confirmation is the fulfillment saga's (issue 5): here the
	// test sends the internal command over NATS, as the saga will.
	s, _, b2 = call(t, "POST", base+"/api/v1/orders", `{"orderId":"o-life","customerId":"c-1","lines":[{"productId":"widget","quantity":2,"unitPriceCents":2499}]}`, nil)
	if s != 201 {
		t.Fatalf("place: %d %s", s, b2)
	}
	s, h, b2 = call(t, "POST", base+"/api/v1/orders/o-life/ship", "", nil)
	expectProblem(t, "ship before confirmation", s, h, b2, 409, "")
	nc, err := nats.Connect(natstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := rpc.Call[wire.CommandReply](asOperator(t), nc, wire.EndpointConfirmOrder.In(ns), wire.IDCommand{Meta: wire.CommandMeta{CommandID: "confirm-o-life"}, ID: "o-life"}); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	for _, step := range []string{"ship", "deliver"} {
		if s, _, b := call(t, "POST", base+"/api/v1/orders/o-life/"+step, "", nil); s != 200 {
			t.Fatalf("%s: %d %s", step, s, b)
		} else {
			b2 = b
		}
	}
	s, h, b = call(t, "POST", base+"/api/v1/orders/o-life/cancel", "", nil)
	expectProblem(t, "cancel after delivery", s, h, b, 409, "")
	a = graphQL(t, base, `{ order(id: "o-life") { status history { status } lines { product { name } } } }`, nil,
		map[string]string{"X-Consistency-Position": answer(t, b2)["position"]})
	want := `{"status":"DELIVERED","history":[{"status":"PLACED"},{"status":"CONFIRMED"},{"status":"SHIPPED"},{"status":"DELIVERED"}],"lines":[{"product":{"name":"Widget"}}]}`
	if len(a.Errors) > 0 || string(a.Data["order"]) != want {
		t.Fatalf("order over GraphQL:\n got %s %+v\nwant %s", a.Data["order"], a.Errors, want)
	}
}

// TestPaymentsOverREST captures and refunds a payment. Authorization needs the card provider of
// the fulfillment saga (issue 5), so the test records an authorized payment in the event store,
// as the payment service would.
func TestPaymentsOverREST(t *testing.T) {
	t.Parallel()
	base, db := startPlatformDB(t)
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, data, _ := payment.Codec.Encode(payment.Authorized{PaymentID: "pay-1", OrderID: "o-1", AmountCents: 5000, At: time.Now()})
	if _, err := postgres.New(pool, postgres.Options{}).Append(t.Context(), payment.Stream("pay-1"), eventstore.NoStream(),
		[]eventstore.EventData{{ID: uuid.New(), Type: payment.TypeAuthorized, Data: data}}); err != nil {
		t.Fatal(err)
	}
	s, h, b := call(t, "POST", base+"/api/v1/payments/pay-1/refund", `{"amountCents":100}`, nil)
	expectProblem(t, "refund before capture", s, h, b, 409, "")
	if s, _, b := call(t, "POST", base+"/api/v1/payments/pay-1/capture", "", map[string]string{"Idempotency-Key": "cap-1"}); s != 200 || answer(t, b)["paymentId"] != "pay-1" {
		t.Fatalf("capture: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/payments/pay-1/refund", `{"amountCents":3000}`, nil); s != 200 {
		t.Fatalf("refund: %d %s", s, b)
	}
	s, h, b = call(t, "POST", base+"/api/v1/payments/pay-1/refund", `{"amountCents":2001}`, nil)
	expectProblem(t, "refund more than is left", s, h, b, 409, "")
	if s, _, b := call(t, "POST", base+"/api/v1/payments/pay-1/refund", `{"amountCents":2000}`, nil); s != 200 {
		t.Fatalf("refund the rest: %d %s", s, b)
	}
}
