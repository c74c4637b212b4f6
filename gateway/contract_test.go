package gateway_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/contracts"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// verify checks every recorded operation against schema; it answers the failures, each naming
// the consumer and the operation.
func verify(t *testing.T, schema string) []string {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: schema})
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	var failures []string
	for file, c := range contracts.Of(t, contracts.GraphQLProvider) {
		for _, in := range c.Interactions {
			if _, errs := gqlparser.LoadQuery(s, in.Request.Body["query"]); len(errs) > 0 {
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
	// Once for this release's console, once for the released one.
	named := func(f string) bool {
		return strings.Contains(f, "consumer console") && strings.Contains(f, "operation ConsoleOrder:") && strings.Contains(f, "cancelReason")
	}
	if len(failures) != 2 || !named(failures[0]) || !named(failures[1]) || !strings.Contains(strings.Join(failures, " "), "released/") {
		t.Fatalf("failures %q; want two (this release's console and the released one), naming ConsoleOrder and the field", failures)
	}
}

// TestREADMEContract: the README's GraphQL examples are a frontend too (people paste them): the
// operations it shows are its contract (contracts/readme-gateway.json), verified like the others.
func TestREADMEContract(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]string{}
	for i, m := range regexp.MustCompile(`-d '(\{"query":.*\})'`).FindAllSubmatch(readme, -1) {
		var body struct{ Query string }
		if err := json.Unmarshal(m[1], &body); err != nil {
			t.Fatalf("README example %d: %v", i+1, err)
		}
		ops[fmt.Sprintf("README example %d", i+1)] = body.Query
	}
	if len(ops) == 0 {
		t.Fatal("no GraphQL example found in the README")
	}
	contracts.Check(t, "readme-gateway.json", contracts.GraphQL("readme", ops))
}
