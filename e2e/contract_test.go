package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/contracts"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

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
	defer rec.mu.Unlock()
	contracts.Check(t, file, contracts.GraphQL(consumer, rec.ops))
}
