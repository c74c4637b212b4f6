package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// A consumer-driven contract of a GraphQL frontend (Pact's file layout, version 4): the operation
// documents the frontend sends, one interaction each, named by the operation. The frontend's test
// records them; the gateway's test verifies them against the schema (gateway/contract_test.go).
type graphQLContract struct {
	Consumer     party          `json:"consumer"`
	Provider     party          `json:"provider"`
	Interactions []interaction  `json:"interactions"`
	Metadata     map[string]any `json:"metadata"`
}

type party struct {
	Name string `json:"name"`
}

type interaction struct {
	Description string  `json:"description"`
	Type        string  `json:"type"`
	Request     request `json:"request"`
}

type request struct {
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Body   map[string]string `json:"body"`
}

// graphQLRecorder is a reverse proxy to the gateway that notes every GraphQL operation sent
// through it, by name.
type graphQLRecorder struct {
	URL string
	mu  sync.Mutex
	ops map[string]string // operation name → document
}

func recordGraphQL(t *testing.T, gateway string) *graphQLRecorder {
	t.Helper()
	target, err := url.Parse(gateway)
	if err != nil {
		t.Fatal(err)
	}
	rec := &graphQLRecorder{ops: map[string]string{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/graphql" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req struct{ Query string }
			if json.Unmarshal(body, &req) == nil {
				rec.note(t, req.Query)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

func (rec *graphQLRecorder) note(t *testing.T, query string) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		t.Errorf("the consumer sent a malformed GraphQL document: %v", err)
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, op := range doc.Operations {
		if op.Name == "" {
			t.Errorf("the consumer sent an anonymous operation: name it, so that a contract can say which breaks: %s", query)
			continue
		}
		rec.ops[op.Name] = query
	}
}

// contract checks the contract of consumer recorded here against contracts/<file>, or writes it
// there with ORDERFLOW_CONTRACTS=write (make contracts).
func (rec *graphQLRecorder) contract(t *testing.T, consumer, file string) {
	t.Helper()
	rec.mu.Lock()
	names := make([]string, 0, len(rec.ops))
	for name := range rec.ops {
		names = append(names, name)
	}
	sort.Strings(names)
	c := graphQLContract{Consumer: party{consumer}, Provider: party{"gateway-graphql"},
		Metadata: map[string]any{"pactSpecification": map[string]string{"version": "4.0"}, "schema": "gateway/schema.graphql"}}
	for _, name := range names {
		c.Interactions = append(c.Interactions, interaction{Description: name, Type: "Synchronous/HTTP",
			Request: request{Method: "POST", Path: "/graphql", Body: map[string]string{"query": rec.ops[name]}}})
	}
	rec.mu.Unlock()
	got, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("..", "..", "contracts", file)
	if os.Getenv("ORDERFLOW_CONTRACTS") == "write" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("what %s sends is not contracts/%s (%v): if the change is meant, run make contracts and commit the file", consumer, file, err)
	}
}
