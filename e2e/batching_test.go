package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// TestOrdersWithCustomersAndProductsAreBatched: 50 orders of 2 lines each, read with their
// customers, products and sagas, cost a constant number of requests to the catalog, customer and
// saga services (one batch per level), not 50 + 100 + 50: as one list (fetched at once, the
// list being the only root field) and as 50 aliased order(id) fields (batched by the loaders,
// the orders too).
func TestOrdersWithCustomersAndProductsAreBatched(t *testing.T) {
	t.Parallel()
	ns := natstest.Namespace(t)
	base := startPlatform(t, "ORDERFLOW_NATS_PREFIX", string(ns), "targets", "all")
	var last string
	var ids []string
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
		ids = append(ids, answer(t, b)["orderId"])
	}
	nc, err := nats.Connect(natstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	services := map[string][]string{
		"order":    {wire.EndpointOrderByID.Name, wire.EndpointOrdersByIDs.Name, wire.EndpointListOrders.Name},
		"catalog":  {wire.EndpointProductByID.Name, wire.EndpointProductsByIDs.Name},
		"customer": {wire.EndpointCustomerByID.Name, wire.EndpointCustomersByIDs.Name},
		"saga":     {wire.EndpointFulfillment.Name, wire.EndpointFulfillmentsByIDs.Name},
	}
	requests := func(read func()) map[string]int {
		service := map[string]string{}
		var subjects []string
		for name, endpoints := range services {
			for _, e := range endpoints {
				service[ns.Subject(e)] = name
				subjects = append(subjects, ns.Subject(e))
			}
		}
		spy := spyOn(t, nc, subjects...)
		read()
		n := map[string]int{}
		for _, m := range spy.taken(t) {
			n[service[m.Subject]]++
		}
		return n
	}
	const selection = `customer { name } lines { product { name } } fulfillment { step }`
	var aliased strings.Builder
	aliased.WriteString("{")
	for i, id := range ids {
		fmt.Fprintf(&aliased, `o%d: order(id: %q) { %s } `, i, id, selection)
	}
	aliased.WriteString("}")
	for _, read := range []struct {
		name, query string
		most        int
	}{
		{"list", `{ orders(first: 50) { nodes { ` + selection + ` } } }`, 1},
		{"aliases", aliased.String(), 1},
	} {
		var a gqlAnswer
		n := requests(func() { a = graphQL(t, base, read.query, nil, map[string]string{"X-Consistency-Position": last}) })
		var data strings.Builder
		for _, v := range a.Data {
			data.Write(v)
		}
		if got := data.String(); len(a.Errors) > 0 || strings.Count(got, `"name":"Product`) != 2*orders || strings.Count(got, `"name":"Customer`) != orders ||
			strings.Count(got, `"step":`) != orders {
			t.Fatalf("%s: %s %+v", read.name, got, a.Errors)
		}
		for service := range services {
			if n[service] < 1 || n[service] > read.most {
				t.Errorf("%s: %d %s requests for %d orders of 2 lines (%v): want 1 to %d", read.name, n[service], service, orders, n, read.most)
			}
		}
	}
}
