package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestGraphiQLOnlyWhenAsked: the page is served in dev (Security.GraphiQL) and nowhere else.
func TestGraphiQLOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{true, false} {
		rec := httptest.NewRecorder()
		New(Options{Security: Security{GraphiQL: on}}).ServeHTTP(rec, httptest.NewRequest("GET", "/graphiql", nil))
		if got := rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), "graphiql"); got != on {
			t.Errorf("GraphiQL %v: %d %.100s", on, rec.Code, rec.Body.String())
		}
	}
}

// TestCORS: a browser preflight from a configured origin is allowed with the API's headers; from
// another origin, not.
func TestCORS(t *testing.T) {
	h := New(Options{Security: Security{CORSOrigins: []string{"https://shop.example"}}})
	preflight := func(origin string) http.Header {
		r := httptest.NewRequest("OPTIONS", "/graphql", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-consistency-position")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Header()
	}
	if got := preflight("https://shop.example"); got.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(strings.ToLower(got.Get("Access-Control-Allow-Headers")), "x-consistency-position") {
		t.Errorf("allowed origin: %v", got)
	}
	if got := preflight("https://evil.example"); got.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %v", got)
	}
}

// TestSchemaIsDescribed: every type, field, argument and enum value of the published schema has
// a description.
func TestSchemaIsDescribed(t *testing.T) {
	src, err := os.ReadFile("schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: string(src)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	for name, def := range schema.Types {
		if def.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		if def.Description == "" {
			t.Errorf("type %s has no description", name)
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if f.Description == "" {
				t.Errorf("%s.%s has no description", name, f.Name)
			}
			for _, a := range f.Arguments {
				if a.Description == "" {
					t.Errorf("%s.%s(%s) has no description", name, f.Name, a.Name)
				}
			}
		}
		for _, v := range def.EnumValues {
			if v.Description == "" {
				t.Errorf("%s.%s has no description", name, v.Name)
			}
		}
	}
}
