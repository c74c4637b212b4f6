package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/natstest"
	"github.com/orderflow/orderflow/internal/wire"
)

// TestOrdersWithCustomersAndProductsAreBatched: 50 orders of 2 lines each, read with their
// customers, products and sagas, cost a constant number of requests to the catalog, customer and
// saga services (one batch per level), not 50 + 100 + 50.
func TestOrdersWithCustomersAndProductsAreBatched(t *testing.T) {
	t.Parallel()
	ns := natstest.Namespace(t)
	base := startPlatform(t, "ORDERFLOW_NATS_PREFIX", string(ns), "targets", "all")
	var last string
	for i := range 3 {
		if s, _, b := call(t, "POST", base+"/api/v1/products", fmt.Sprintf(`{"productId":"p%d","sku":"B-%d","name":"Product %d","priceCents":100}`, i, i, i), nil); s != 201 {
			t.Fatalf("product: %d %s", s, b)
		}
		body := fmt.Sprintf(`{"customerId":"c%d","name":"Customer %d","email":"c%d@example.com","shippingAddress":{"line1":"1","city":"P","postalCode":"1","country":"FR"}}`, i, i, i)
		if s, _, b := call(t, "POST", base+"/api/v1/customers", body, nil); s != 201 {
			t.Fatalf("customer: %d %s", s, b)
		}
	}
	const orders = 50
	for i := range orders {
		body := fmt.Sprintf(`{"customerId":"c%d","lines":[{"productId":"p%d","quantity":1,"unitPriceCents":100},{"productId":"p%d","quantity":1,"unitPriceCents":100}]}`, i%3, i%3, (i+1)%3)
		s, _, b := call(t, "POST", base+"/api/v1/orders", body, nil)
		if s != 201 {
			t.Fatalf("order: %d %s", s, b)
		}
		last = answer(t, b)["position"]
	}
	nc, err := nats.Connect(natstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var products, customers, sagas atomic.Int64
	count := func(n *atomic.Int64) nats.MsgHandler { return func(*nats.Msg) { n.Add(1) } }
	for subject, n := range map[string]*atomic.Int64{
		ns.Subject(wire.EndpointProductByID): &products, ns.Subject(wire.EndpointProductsByIDs): &products,
		ns.Subject(wire.EndpointCustomerByID): &customers, ns.Subject(wire.EndpointCustomersByIDs): &customers,
		ns.Subject(wire.EndpointFulfillment): &sagas, ns.Subject(wire.EndpointFulfillmentsByIDs): &sagas,
	} {
		if _, err := nc.Subscribe(subject, count(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := graphQL(t, base, `{ orders(first: 50) { nodes { customer { name } lines { product { name } } fulfillment { step } } } }`, nil, map[string]string{"X-Consistency-Position": last})
	if len(a.Errors) > 0 || strings.Count(string(a.Data["orders"]), `"name":"Product`) != 2*orders || strings.Count(string(a.Data["orders"]), `"name":"Customer`) != orders ||
		strings.Count(string(a.Data["orders"]), `"step":`) != orders {
		t.Fatalf("orders: %s %+v", a.Data["orders"], a.Errors)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if p, c, s := products.Load(), customers.Load(), sagas.Load(); p > 2 || c > 2 || s > 2 {
		t.Errorf("%d catalog, %d customer and %d saga requests for %d orders of 2 lines: want one batch each (two at most)", p, c, s, orders)
	}
}
