package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/orderflow/orderflow/gateway/api"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
)

// recorder is an Edge that keeps what it was sent.
type recorder struct {
	endpoint string
	req      []byte
}

func (r *recorder) Exchange(_ context.Context, endpoint string, req []byte) ([]byte, error) {
	r.endpoint, r.req = endpoint, req
	if endpoint == wire.EndpointEraseCustomer.Name {
		return []byte(`{"customerId":"c-1","position":"7-7","fields":["name"]}`), nil
	}
	return []byte(`{"id":"x","position":"7-7"}`), nil
}

// sent decodes what r was sent as a T.
func sent[T any](t *testing.T, r *recorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.req, &v); err != nil {
		t.Fatalf("sent %s: %v", r.req, err)
	}
	return v
}

// TestAReceiptIsTheWholeAnswer: a command with a receipt answers all the service said; others,
// the id and position.
func TestAReceiptIsTheWholeAnswer(t *testing.T) {
	t.Parallel()
	admin := auth.With(context.Background(), auth.Principal{Subject: "ops", Role: auth.Admin})
	e := &recorder{}
	res, err := api.Execute(admin, e, api.EraseCustomer, "c-1", &api.NoBody{}, wire.CommandMeta{CommandID: "cmd-1"})
	if err != nil || res.Position != "7-7" || string(res.Receipt) != `{"customerId":"c-1","position":"7-7","fields":["name"]}` {
		t.Fatalf("erase: %+v, %v", res, err)
	}
	customer := auth.With(context.Background(), auth.Principal{Subject: "c-1", Role: auth.Customer})
	if _, err := api.Execute(customer, e, api.EraseCustomer, "c-1", &api.NoBody{}, wire.CommandMeta{CommandID: "cmd-2"}); err == nil {
		t.Fatal("a customer erased themselves: erasure is for admins")
	}
	res, err = api.Execute(admin, e, api.DeactivateCustomer, "c-1", &api.NoBody{}, wire.CommandMeta{CommandID: "cmd-3"})
	if err != nil || res.Receipt != nil || res.Position != "7-7" {
		t.Fatalf("deactivate: %+v, %v", res, err)
	}
}

// TestExecuteAuthorizesAndSendsTheTypedRequest: a customer's order is scoped to the customer, an
// order for someone else and an admin-only command are refused before anything is sent, and an
// admin's command goes out as its service's request type.
func TestExecuteAuthorizesAndSendsTheTypedRequest(t *testing.T) {
	t.Parallel()
	customer := auth.With(context.Background(), auth.Principal{Subject: "c-1", Role: auth.Customer})
	admin := auth.With(context.Background(), auth.Principal{Subject: "ops", Role: auth.Admin})
	m := wire.CommandMeta{CommandID: "cmd-1"}
	lines := []wire.PlaceLine{{ProductID: "p", Quantity: 1}}

	e := &recorder{}
	res, err := api.Execute(customer, e, api.PlaceOrder, "", &api.PlaceOrderBody{Lines: lines}, m)
	if err != nil {
		t.Fatal(err)
	}
	placed := sent[wire.PlaceOrder](t, e)
	if e.endpoint != wire.EndpointPlaceOrder.Name || placed.CustomerID != "c-1" || placed.OrderID == "" || placed.OrderID != res.ID || res.Position != "7-7" {
		t.Errorf("a customer's order: sent %s %s, answered %+v; want it for c-1 with a derived id", e.endpoint, e.req, res)
	}
	again, _ := api.Execute(customer, &recorder{}, api.PlaceOrder, "", &api.PlaceOrderBody{Lines: lines}, m)
	if again.ID != res.ID {
		t.Errorf("the same command id named order %s, then %s", res.ID, again.ID)
	}

	for name, call := range map[string]func(*recorder) error{
		"an order for another customer": func(e *recorder) error {
			_, err := api.Execute(customer, e, api.PlaceOrder, "", &api.PlaceOrderBody{CustomerID: "c-2", Lines: lines}, m)
			return err
		},
		"an admin's command": func(e *recorder) error {
			_, err := api.Execute(customer, e, api.Restock, "p", &api.QuantityBody{Quantity: 5}, m)
			return err
		},
	} {
		e := &recorder{}
		var p *api.Problem
		if err := call(e); !errors.As(err, &p) || p.Status != http.StatusForbidden || e.endpoint != "" {
			t.Errorf("%s by a customer: %v, sent to %q; want 403 and nothing sent", name, err, e.endpoint)
		}
	}

	e = &recorder{}
	if _, err := api.Execute(admin, e, api.Restock, "p", &api.QuantityBody{Quantity: 5}, m); err != nil {
		t.Fatal(err)
	}
	if got := sent[wire.Restock](t, e); e.endpoint != wire.EndpointRestock.Name || got.ProductID != "p" || got.Quantity != 5 || got.Meta != m {
		t.Errorf("an admin's restock sent %s to %s", e.req, e.endpoint)
	}
}

// TestEveryCommandIsDocumented: ids and routes are unique, and a body is documented exactly when
// the command reads one.
func TestEveryCommandIsDocumented(t *testing.T) {
	t.Parallel()
	ids, routes := map[string]bool{}, map[string]bool{}
	for _, c := range api.Commands {
		d := c.Describe()
		if d.ID == "" || d.Summary == "" || d.Tag == "" || d.IDField == "" || ids[d.ID] || routes[d.Method+" "+d.Path] {
			t.Errorf("%+v: want a unique id and route, a summary, a tag and an id field", d)
		}
		ids[d.ID], routes[d.Method+" "+d.Path] = true, true
		if (c.NewBody() == nil) != (d.Schema == nil) {
			t.Errorf("%s: body %T but schema %v", d.ID, c.NewBody(), d.Schema)
		}
	}
}
