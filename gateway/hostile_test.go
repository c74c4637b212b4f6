package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHostileGraphQLBodies: a batch (a JSON array of operations) is refused with 400
// BATCH_NOT_SUPPORTED; a body that is not one JSON object with BAD_REQUEST, a lone surrogate
// escape with BAD_USER_INPUT; and none of the body (a registration's name, e-mail, address) is
// logged or echoed.
func TestHostileGraphQLBodies(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer // read after the handler returned: what it logs, it logs before
	h := New(Options{Log: slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	const secret = "Ada Secretperson"
	register := `{"query":"mutation($n: String!) { registerCustomer(input: {name: $n, email: \"ada.secret@example.com\", shippingAddress: {line1: \"1 Hidden Lane\", city: \"Paris\", postalCode: \"1\", country: \"FR\"}}) { id } }","variables":{"n":"` + secret + `"}}`
	for _, tt := range []struct {
		name, body, code string
		status           int
	}{
		{"a batch", "[" + register + "," + register + "]", CodeBatchNotSupported, http.StatusBadRequest},
		{"a batch after spaces", " \n [" + register + "]", CodeBatchNotSupported, http.StatusBadRequest},
		{"not JSON", `{"query": "` + secret, CodeBadRequest, http.StatusBadRequest},
		{"a string", `"` + secret + `"`, CodeBadRequest, http.StatusBadRequest},
		{"a lone surrogate", strings.Replace(register, secret, `\ud800x`, 1), CodeBadUserInput, http.StatusBadRequest},
	} {
		r := httptest.NewRequest("POST", "/graphql", strings.NewReader(tt.body))
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var ans struct {
			Errors []struct {
				Message    string
				Extensions map[string]any
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || rec.Code != tt.status || len(ans.Errors) != 1 || ans.Errors[0].Extensions["code"] != tt.code {
			t.Errorf("%s: %d %s, want %d with code %s", tt.name, rec.Code, rec.Body, tt.status, tt.code)
		}
		if strings.Contains(rec.Body.String(), secret) || strings.Contains(rec.Body.String(), "Hidden Lane") {
			t.Errorf("%s: the answer echoes the body: %s", tt.name, rec.Body)
		}
	}
	if l := logged.String(); strings.Contains(l, secret) || strings.Contains(l, "ada.secret") || strings.Contains(l, "Hidden Lane") {
		t.Errorf("the log holds the body's personal data:\n%s", l)
	}
}

// TestPathIDsAreDecodedOnce: a path id is decoded once and must be an identifier: an escaped
// slash, dot-dot, NUL, a bidi override, a look-alike are 422 naming the id (orderId); nothing reaches a
// service, which would answer 503 here (none runs).
func TestPathIDsAreDecodedOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(Options{Log: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	for _, id := range []string{"a%2Fb", "%2e%2e", "..", "%00", "a%252Fb", "%E2%80%AEabc", "%D0%BErder", "a%20b", "%F0%9F%98%80"} {
		resp, err := http.Post(srv.URL+"/api/v1/orders/"+id+"/cancel", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Field, Detail string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || p.Field != "orderId" {
			t.Errorf("POST /api/v1/orders/%s/cancel: %d %+v, want 422 on orderId", id, resp.StatusCode, p)
		}
	}
}

// TestIDArgumentsAreIdentifiers: an ID argument outside the safe set, inline, in a variable or
// inside an input object, is BAD_USER_INPUT naming it, before any service is asked (none runs
// here); a fine id goes on (and finds no service: UNAVAILABLE).
func TestIDArgumentsAreIdentifiers(t *testing.T) {
	t.Parallel()
	h := New(Options{Log: slog.New(slog.DiscardHandler)})
	for _, tt := range []struct {
		query string
		vars  map[string]any
		field string
	}{
		{`{ order(id: "a/b") { id } }`, nil, "order(id)"},
		{`query($id: ID!) { order(id: $id) { id } }`, map[string]any{"id": "abc\u202egpj"}, "order(id)"},
		{`query($id: ID!) { product(id: $id) { id } }`, map[string]any{"id": "\u043erder"}, "product(id)"},
		{`mutation($l: [OrderLineInput!]!) { placeOrder(input: {customerId: "c-1", lines: $l}) { id } }`,
			map[string]any{"l": []any{map[string]any{"productId": "p-1", "quantity": 1}, map[string]any{"productId": "..", "quantity": 1}}}, "placeOrder(input).lines[1].productId"},
		{`mutation { placeOrder(input: {orderId: "o%2F1", customerId: "c-1", lines: [{productId: "p", quantity: 1}]}) { id } }`, nil, "placeOrder(input).orderId"},
	} {
		body, _ := json.Marshal(map[string]any{"query": tt.query, "variables": tt.vars})
		r := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var ans struct {
			Errors []struct{ Extensions map[string]any }
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &ans)
		if len(ans.Errors) != 1 || ans.Errors[0].Extensions["code"] != CodeBadUserInput || ans.Errors[0].Extensions["field"] != tt.field {
			t.Errorf("%s %v: %s, want BAD_USER_INPUT on %s", tt.query, tt.vars, rec.Body, tt.field)
		}
	}
}
