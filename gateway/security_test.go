package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
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

// fragmentBomb is a query of about 1 KB whose fragments expand to 2^levels fields.
func fragmentBomb(levels int) string {
	var b strings.Builder
	b.WriteString("query { ...F0 }")
	for i := range levels {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Query { products { nodes { id } } }", levels)
	return b.String()
}

func postGraphQL(h http.Handler, query string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"query": query})
	r := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestFragmentBombIsRefusedAtOnce: fragments that spread each other twice, 26 levels deep, are
// refused with COMPLEXITY_LIMIT_EXCEEDED from a measure of each fragment once; a fragment that
// hides depth is measured as deep as it is. BenchmarkFragmentBomb shows what refusing it costs.
func TestFragmentBombIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	h := New(Options{Log: slog.New(slog.DiscardHandler)})
	if rec := postGraphQL(h, fragmentBomb(26)); !strings.Contains(rec.Body.String(), CodeComplexityLimit) {
		t.Errorf("fragment bomb: %d %s", rec.Code, rec.Body.String())
	}
	deep := `query { ...A } fragment A on Query { orders { nodes { customer { orders { nodes { ...B } } } } } }
fragment B on Order { customer { orders { nodes { customer { orders { nodes { id } } } } } } }`
	if rec := postGraphQL(h, deep); !strings.Contains(rec.Body.String(), CodeDepthLimit) {
		t.Errorf("depth through fragments: %d %s", rec.Code, rec.Body.String())
	}
}

func BenchmarkFragmentBomb(b *testing.B) {
	h := New(Options{Log: slog.New(slog.DiscardHandler)})
	q := fragmentBomb(26)
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		if rec := postGraphQL(h, q); !strings.Contains(rec.Body.String(), CodeComplexityLimit) {
			b.Fatal(rec.Body.String())
		}
	}
}

// TestFragmentsAreMeasuredOnce: measuring the 26-level fragment bomb looks at each selection of its
// text once (57 of them), not at its 2^26 expanded fields.
func TestFragmentsAreMeasuredOnce(t *testing.T) {
	t.Parallel()
	doc, err := parser.ParseQuery(&ast.Source{Input: fragmentBomb(26)})
	if err != nil {
		t.Fatal(err)
	}
	m := measure{fragments: doc.Fragments, done: map[string]shape{}}
	s := m.set(doc.Operations[0].SelectionSet, 0)
	if s.fields < 1<<26 || m.visits > 100 {
		t.Errorf("measured %d fields (want at least 2^26) in %d visits (want at most 100)", s.fields, m.visits)
	}
}
