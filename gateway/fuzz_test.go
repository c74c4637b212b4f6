package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/commands/commandstest"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/testkit/natstest"
)

// edge is a gateway with the real order command service behind it (memory event store); no query
// service answers, so reads end UNAVAILABLE: what is fuzzed is the edge's decoding, not the data.
// It lives as long as the test binary (fuzzing runs many short tests).
func edge(t *testing.T) string {
	edgeOnce.Do(func() {
		nc, err := nats.Connect(natstest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		ns := natstest.Namespace(t)
		if _, err := ordercmd.Register(context.Background(), nc, ns, quiet, ordercmd.Handlers{Writer: commandstest.Writer(memory.New()), Catalog: commandstest.Shop{}, Customers: commandstest.Shop{}}); err != nil {
			t.Fatal(err)
		}
		edgeURL = httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet})).URL
	})
	if edgeURL == "" {
		t.Fatal("no gateway")
	}
	return edgeURL
}

var (
	edgeOnce sync.Once
	edgeURL  string
)

// seeds of hostile text: NUL, other control characters, broken UTF-8, surrogates, long strings.
var hostile = []string{"", "o-1", "o\x00x", "\x00", "o\x1b[2J", "o\u0085", "\xff\xfe", "caf\xc3", "%00", "%2F..%2F", "../x", " ",
	strings.Repeat("x", 101), "\ud7ff", "o\u2028x", `"quoted"`, "{}", "null"}

// FuzzPathIDs: whatever a path id holds, a command on it is answered with a 2xx or 4xx
// problem, never a 5xx or a hang. `make test` runs it for a few seconds; its seeds run in every
// `go test`.
func FuzzPathIDs(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		for _, route := range []string{"/api/v1/orders/%s/cancel", "/api/v1/orders/%s/ship", "/api/v1/products/%s/restock"} {
			u := edge(t) + strings.Replace(route, "%s", url.PathEscape(id), 1)
			req, err := http.NewRequest("POST", u, strings.NewReader(`{"quantity":1}`))
			if err != nil {
				return // not a URL at all: no request reaches the gateway
			}
			if strings.Contains(route, "cancel") || strings.Contains(route, "ship") {
				req.Body = http.NoBody
			} else {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// The product route has no inventory service behind it here: 503 is its honest answer.
			if resp.StatusCode >= 500 && !(resp.StatusCode == 503 && strings.Contains(route, "products")) {
				t.Fatalf("%s: %d", u, resp.StatusCode)
			}
		}
	})
}

// FuzzGraphQLVariables: whatever the variables of a query or mutation hold, the answer is a
// GraphQL response (errors with a code) and never a 5xx or a panic.
func FuzzGraphQLVariables(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Add(`{"nested": ["\u0000"]}`)
	f.Fuzz(func(t *testing.T, v string) {
		for _, q := range []string{
			`query($id: ID!) { order(id: $id) { id status } }`,
			`query($q: String) { products(query: $q) { nodes { id } } }`,
			`mutation($id: ID!, $r: String) { cancelOrder(id: $id, reason: $r) { id } }`,
		} {
			vars := map[string]any{"id": v, "q": v, "r": v}
			var raw any
			if json.Unmarshal([]byte(v), &raw) == nil {
				vars["id"] = raw // not only strings: any JSON value
			}
			body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
			resp, err := http.Post(edge(t)+"/graphql", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var ans struct {
				Errors []struct {
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			err = json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
			if resp.StatusCode >= 500 || err != nil {
				t.Fatalf("%s with %q: %d %v", q, v, resp.StatusCode, err)
			}
			for _, e := range ans.Errors {
				if code, _ := e.Extensions["code"].(string); code == "" || code == "INTERNAL" {
					t.Fatalf("%s with %q: error without a code, or INTERNAL: %+v", q, v, ans.Errors)
				}
			}
		}
	})
}
