package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands/commandstest"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/testkit/natstest"
)

func TestMain(m *testing.M) { natstest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func post(t *testing.T, url, key, body string, token ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+token[0])
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestIdempotencyKey runs the real gateway and order service over real NATS (JetStream KV).
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := ordercmd.Register(ctx, nc, ns, quiet, ordercmd.Handlers{Writer: commandstest.Writer(memory.New()), Catalog: commandstest.Shop{}, Customers: commandstest.Shop{}}); err != nil {
		t.Fatal(err)
	}
	keys, err := gateway.NewIdempotencyKeys(ctx, nc, ns)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet, Idempotency: keys}))
	defer srv.Close()
	url := srv.URL + "/api/v1/orders"
	body := `{"customerId":"c-1","lines":[{"productId":"p","quantity":1,"unitPriceCents":100}]}`

	s1, h1, b1 := post(t, url, "key-1", body)
	s2, h2, b2 := post(t, url, "key-1", body)
	if s1 != 201 || s2 != 201 || b1 != b2 || h1.Get("Location") != h2.Get("Location") {
		t.Fatalf("retry: %d %s then %d %s", s1, b1, s2, b2)
	}
	if h1.Get("Idempotent-Replayed") != "" || h2.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: first %q, retry %q", h1.Get("Idempotent-Replayed"), h2.Get("Idempotent-Replayed"))
	}
	// Without a key, the same body is a new order.
	if s, _, b := post(t, url, "", body); s != 201 || b == b1 {
		t.Errorf("no key: %d %s", s, b)
	}
	// The same key with another body, or another route: 422 naming the header.
	if s, h, b := post(t, url, "key-1", strings.Replace(body, "c-1", "c-2", 1)); s != 422 || !strings.Contains(b, "idempotency-key-reused") || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
		t.Errorf("same key, other body: %d %s", s, b)
	}
	if s, _, b := post(t, srv.URL+"/api/v1/orders/x/cancel", "key-1", body); s != 422 {
		t.Errorf("same key, other route: %d %s", s, b)
	}
	// A refused command is remembered too: the retry gets the same 422, not a second try.
	bad := `{"customerId":"c-1","lines":[]}`
	s3, _, b3 := post(t, url, "key-2", bad)
	s4, _, b4 := post(t, url, "key-2", bad)
	if s3 != 422 || s4 != 422 || b3 != b4 {
		t.Errorf("refused command retried: %d %s then %d %s", s3, b3, s4, b4)
	}
	if s, _, b := post(t, url, strings.Repeat("k", 300), body); s != 400 {
		t.Errorf("300-character key: %d %s", s, b)
	}
}

// TestIdempotencyKeysAreTheCallers: customer B sending customer A's request with A's key does not
// get A's answer (A's order id and position): B's request runs as B's, and is refused.
func TestIdempotencyKeysAreTheCallers(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	if _, err := ordercmd.Register(t.Context(), nc, ns, quiet, ordercmd.Handlers{Writer: commandstest.Writer(memory.New()), Catalog: commandstest.Shop{}, Customers: commandstest.Shop{}}); err != nil {
		t.Fatal(err)
	}
	keys, err := gateway.NewIdempotencyKeys(t.Context(), nc, ns)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("idempotency-test-secret-0123456789abcdef")
	v, err := auth.HS256(secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet, Idempotency: keys, Security: gateway.Security{Verifier: v}}))
	defer srv.Close()
	token := func(sub string) string {
		tok, err := auth.Issue(secret, sub, auth.Customer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	body := `{"customerId":"cust-a","lines":[{"productId":"p","quantity":1,"unitPriceCents":100}]}`
	if s, _, b := post(t, srv.URL+"/api/v1/orders", "shared-key", body, token("cust-a")); s != 201 {
		t.Fatalf("a: %d %s", s, b)
	}
	s, h, b := post(t, srv.URL+"/api/v1/orders", "shared-key", body, token("cust-b"))
	if s != http.StatusForbidden || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("b replaying a's key and body: %d %s (replayed %q); want 403 of its own", s, b, h.Get("Idempotent-Replayed"))
	}
}
