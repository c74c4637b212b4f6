package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/orderflow/orderflow/gateway/api"
)

// TestRouterAndDocumentAgree: every route under /api/v1 is documented and every documented
// route is served.
func TestRouterAndDocumentAgree(t *testing.T) {
	t.Parallel()
	router := New(Options{}).(chi.Routes)
	var served []string
	err := chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasPrefix(route, "/api/") {
			served = append(served, method+" "+route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	rec := httptest.NewRecorder()
	router.(http.Handler).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &doc) != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("GET openapi.json: %d %.200s", rec.Code, rec.Body)
	}
	var documented []string
	for path, methods := range doc.Paths {
		for m := range methods {
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("served:\n  %s\ndocumented:\n  %s", strings.Join(served, "\n  "), strings.Join(documented, "\n  "))
	}
}

// TestExamplesAndSchemasMatchTheBodies: each documented example decodes strictly into the body
// the handler reads, and the schema's properties are exactly the body's JSON fields.
func TestExamplesAndSchemasMatchTheBodies(t *testing.T) {
	t.Parallel()
	for _, c := range api.Commands {
		op := c.Describe()
		if c.NewBody() == nil {
			if op.Schema != nil || op.Example != nil {
				t.Errorf("%s: documents a body it does not read", op.ID)
			}
			continue
		}
		raw, _ := json.Marshal(op.Example)
		r := httptest.NewRequest("POST", op.Path, bytes.NewReader(raw))
		r.Header.Set("Content-Type", "application/json")
		if p := decodeBody(httptest.NewRecorder(), r, c.NewBody(), op.OptionalBody); p != nil {
			t.Errorf("%s: example %s does not decode: %+v", op.ID, raw, p)
		}
		props := op.Schema["properties"].(map[string]any)
		var tags []string
		typ := reflect.TypeOf(c.NewBody()).Elem()
		for i := range typ.NumField() {
			tags = append(tags, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
		}
		var keys []string
		for k := range props {
			keys = append(keys, k)
		}
		slices.Sort(tags)
		slices.Sort(keys)
		if !slices.Equal(tags, keys) {
			t.Errorf("%s: schema properties %v, body fields %v", op.ID, keys, tags)
		}
		for _, req := range op.Schema["required"].([]string) {
			if _, ok := props[req]; !ok {
				t.Errorf("%s: requires %s, which has no schema", op.ID, req)
			}
		}
	}
}

// FuzzDecodeBody: whatever the bytes, decoding a request body answers nil or a 4xx problem, never
// a 5xx or a panic. `make test` runs it for a few seconds; its seeds run in every `go test`.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"customerId":"c","lines":[{"productId":"p","quantity":1,"unitPriceCents":5}]}`,
		`{"quantity":"two"}`, `{"quantity":1e400}`, `[1,2]`, `null`, `{"a":1} {"b":2}`, `{"lines":[{"quantity":-9223372036854775809}]}`,
		"\xff\xfe", `{"shippingAddress":{"line1":{}}}`, `{"priceCents":1.5}`, `"\ud800"`, `{"customerId":"c\u0000"}`,
		`{"customerId":"a","customerid":"b"}`, `{"lines":[{"productId":"p","productId":"q"}]}`, "{\"reason\":\"\xc3\"}"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range api.Commands {
			op := c.Describe()
			if c.NewBody() == nil {
				continue
			}
			r := httptest.NewRequest("POST", op.Path, bytes.NewReader(data))
			r.Header.Set("Content-Type", "application/json")
			p := decodeBody(httptest.NewRecorder(), r, c.NewBody(), op.OptionalBody)
			if p != nil && (p.Status < 400 || p.Status >= 500) {
				t.Fatalf("%s: %q gave %d", op.ID, data, p.Status)
			}
		}
	})
}
