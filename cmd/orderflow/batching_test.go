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

// TestOrdersWithCustomersAndProductsAreBatched: 12 orders of 2 lines each, read with their
// customers and products, cost a constant number of requests to the catalog and customer
// services (one batch per level), not 12 + 24.
func TestOrdersWithCustomersAndProductsAreBatched(t *testing.T) {
	t.Parallel()
	ns := natstest.Namespace(t)
	base := startPlatform(t, "ORDERFLOW_NATS_PREFIX", string(ns))
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
	for i := range 12 {
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
	var products, customers atomic.Int64
	count := func(n *atomic.Int64) nats.MsgHandler { return func(*nats.Msg) { n.Add(1) } }
	for subject, n := range map[string]*atomic.Int64{
		ns.Subject(wire.EndpointProductByID): &products, ns.Subject(wire.EndpointProductsByIDs): &products,
		ns.Subject(wire.EndpointCustomerByID): &customers, ns.Subject(wire.EndpointCustomersByIDs): &customers,
	} {
		if _, err := nc.Subscribe(subject, count(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := graphQL(t, base, `{ orders(first: 12) { nodes { customer { name } lines { product { name } } } } }`, nil, map[string]string{"X-Consistency-Position": last})
	if len(a.Errors) > 0 || strings.Count(string(a.Data["orders"]), `"name":"Product`) != 24 || strings.Count(string(a.Data["orders"]), `"name":"Customer`) != 12 {
		t.Fatalf("orders: %s %+v", a.Data["orders"], a.Errors)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if p, c := products.Load(), customers.Load(); p > 2 || c > 2 {
		t.Errorf("%d catalog and %d customer requests for 12 orders of 2 lines: want one batch each (two at most)", p, c)
	}
}
