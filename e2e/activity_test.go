package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

// TestActorActivity: an admin lists what a given actor did across the log (the activity read
// model), page by page: a customer's order, an admin's products; a customer may not ask.
func TestActorActivity(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"act-p","sku":"ACT-P","name":"Product","priceCents":100}`, nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	customer := registered(t, base, "c-act")
	s, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"`+orderID("act-1")+`","customerId":"c-act","lines":[{"productId":"act-p","quantity":1,"unitPriceCents":100}]}`, customer)
	if s != 201 {
		t.Fatalf("place: %d %s", s, b)
	}
	var placed struct{ Position string }
	if err := json.Unmarshal(b, &placed); err != nil || placed.Position == "" {
		t.Fatalf("place answered %s (%v)", b, err)
	}

	type page struct {
		Entries []struct {
			Position, Stream, Type string
			CorrelationID          *string
		}
		EndCursor *string
	}
	activity := func(actor string, first int, before *string, header map[string]string) (page, gqlAnswer) {
		t.Helper()
		a := graphQL(t, base, `query($actor: String!, $first: Int, $before: String, $at: String) {
			actorActivity(actor: $actor, first: $first, before: $before, consistentWith: $at) { entries { position stream type correlationId } endCursor } }`,
			map[string]any{"actor": actor, "first": first, "before": before, "at": placed.Position}, header)
		var p page
		if len(a.Errors) == 0 {
			if err := json.Unmarshal(a.Data["actorActivity"], &p); err != nil {
				t.Fatal(err)
			}
		}
		return p, a
	}
	mine, a := activity("customer:c-act", 10, nil, nil)
	if len(a.Errors) != 0 || len(mine.Entries) != 1 || mine.Entries[0].Stream != "order-"+orderID("act-1") || !strings.HasPrefix(mine.Entries[0].Type, "order.placed") || mine.EndCursor != nil {
		t.Fatalf("the customer's activity: %+v %v; want its order placed, one page", mine, a.Errors)
	}
	// The admin added a product: its events (the product and its sku claim), a page at a time.
	first, _ := activity("admin:test-admin", 1, nil, nil)
	if len(first.Entries) != 1 || first.EndCursor == nil {
		t.Fatalf("the admin's first page: %+v; want one event and a cursor", first)
	}
	second, _ := activity("admin:test-admin", 10, first.EndCursor, nil)
	if len(second.Entries) == 0 || !before(second.Entries[0].Position, first.Entries[0].Position) {
		t.Fatalf("the admin's next page: %+v after %+v; want older events", second, first)
	}
	for _, e := range append(first.Entries, second.Entries...) {
		if !strings.HasPrefix(e.Stream, "product") {
			t.Errorf("the admin's activity holds %s on %s: not its own", e.Type, e.Stream)
		}
	}
	if _, a := activity("customer:c-act", 10, nil, customer); len(a.Errors) == 0 || a.Errors[0].Extensions["code"] != "FORBIDDEN" {
		t.Errorf("a customer listed activity: %+v", a)
	}
}

// before reports whether log position a comes before b.
func before(a, b string) bool {
	pa, err1 := eventstore.ParsePosition(a)
	pb, err2 := eventstore.ParsePosition(b)
	return err1 == nil && err2 == nil && pa.Compare(pb) < 0
}
