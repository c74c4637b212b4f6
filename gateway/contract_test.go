package gateway_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// graphQLContract is what the provider reads of a frontend's contract (cmd/orderflow writes them).
type graphQLContract struct {
	Consumer     struct{ Name string }
	Provider     struct{ Name string }
	Interactions []struct {
		Description string
		Request     struct{ Body struct{ Query string } }
	}
}

// graphQLContracts are the consumer-driven contracts of the GraphQL API in contracts/ (written by
// the consumers' tests, e.g. the console's: make contracts), by file.
func graphQLContracts(t *testing.T) map[string]graphQLContract {
	t.Helper()
	files, err := filepath.Glob("../contracts/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no contracts in ../contracts (%v)", err)
	}
	out := map[string]graphQLContract{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c graphQLContract
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Provider.Name == "gateway-graphql" {
			out[filepath.Base(f)] = c
		}
	}
	return out
}

// verify checks every recorded operation against schema; it answers the failures, each naming
// the consumer and the operation.
func verify(t *testing.T, schema string) []string {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: schema})
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	var failures []string
	for file, c := range graphQLContracts(t) {
		for _, in := range c.Interactions {
			if _, errs := gqlparser.LoadQuery(s, in.Request.Body.Query); len(errs) > 0 {
				failures = append(failures, fmt.Sprintf("consumer %s (%s), operation %s: %v", c.Consumer.Name, file, in.Description, errs))
			}
		}
	}
	return failures
}

// TestGraphQLContracts: every operation a frontend recorded still validates against the schema
// the gateway serves.
func TestGraphQLContracts(t *testing.T) {
	schema, err := os.ReadFile("schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range verify(t, string(schema)) {
		t.Error(f)
	}
}

// TestABrokenSchemaNamesTheOperation: a schema without a field a frontend reads (an order's
// cancellation reason) fails the contract, naming the consumer and the operation.
func TestABrokenSchemaNamesTheOperation(t *testing.T) {
	schema, err := os.ReadFile("schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	field := regexp.MustCompile(`  "[^"\n]*"\n  cancelReason: String\n`)
	if !field.Match(schema) {
		t.Fatal("the schema has no Order.cancelReason to remove")
	}
	failures := verify(t, field.ReplaceAllString(string(schema), ""))
	if len(failures) != 1 || !strings.Contains(failures[0], "consumer console") || !strings.Contains(failures[0], "operation ConsoleOrder:") ||
		!strings.Contains(failures[0], "cancelReason") {
		t.Fatalf("failures %q; want one, naming the console's ConsoleOrder and the field", failures)
	}
}
