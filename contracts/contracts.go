// Package contracts holds the consumer-driven contracts of orderflow's providers (the JSON files
// beside this one, in Pact's layout, version 4) and what consumer and provider tests use to write
// and read them.
package contracts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
)

// Contract is one consumer's expectations of one provider.
type Contract struct {
	Consumer     Party          `json:"consumer"`
	Provider     Party          `json:"provider"`
	Interactions []Interaction  `json:"interactions"`
	Metadata     map[string]any `json:"metadata"`
}

// Party names a consumer or a provider.
type Party struct {
	Name string `json:"name"`
}

// State is a provider state: what must hold at the provider before the interaction.
type State struct {
	Name string `json:"name"`
}

// Interaction is one request or message the consumer sends, named: an HTTP request (GraphQL), a
// NATS request and its answer (Synchronous/Messages), or a message (Asynchronous/Messages: a
// queued command, an event).
type Interaction struct {
	Description    string   `json:"description"`
	Type           string   `json:"type"`
	ProviderStates []State  `json:"providerStates,omitempty"`
	Request        *Request `json:"request,omitempty"`
	// Response is what the consumer reads of a NATS request's answer.
	Response []Message `json:"response,omitempty"`
	// Contents, Metadata and MatchingRules describe a message (an event).
	Contents      *Contents         `json:"contents,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	MatchingRules *Rules            `json:"matchingRules,omitempty"`
	// Optional are paths of the matching rules the provider may leave out (see Message).
	Optional []string `json:"optional,omitempty"`
}

// Request is an HTTP request of an interaction (Method, Path, Body), or a message (Contents,
// Metadata).
type Request struct {
	Method   string            `json:"method,omitempty"`
	Path     string            `json:"path,omitempty"`
	Body     map[string]string `json:"body,omitempty"`
	Contents *Contents         `json:"contents,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Message is a message of a synchronous interaction's answer.
type Message struct {
	Contents      *Contents         `json:"contents,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	MatchingRules *Rules            `json:"matchingRules,omitempty"`
	// Optional are paths of the matching rules the provider may leave out (an extension of
	// Pact's layout): the consumer reads their absence as the zero value.
	Optional []string `json:"optional,omitempty"`
	// ErrorCodes are the error codes the consumer handles in place of this answer (an extension
	// too): a provider may answer one of them, and no other, when it cannot answer.
	ErrorCodes []string `json:"errorCodes,omitempty"`
}

// Contents is a message's body: JSON, not encoded.
type Contents struct {
	Content     json.RawMessage `json:"content"`
	ContentType string          `json:"contentType"`
	Encoded     bool            `json:"encoded"`
}

func jsonContents(v json.RawMessage) *Contents {
	return &Contents{Content: v, ContentType: "application/json"}
}

// Rules are Pact matching rules of a message's body: here, the JSON paths the consumer reads,
// each matched by type (the provider may answer any value of the example's type, and more
// fields).
type Rules struct {
	Body map[string]Rule `json:"body"`
}

// Rule is the matchers of one path.
type Rule struct {
	Combine  string    `json:"combine"`
	Matchers []Matcher `json:"matchers"`
}

// Matcher is one Pact matcher.
type Matcher struct {
	Match string `json:"match"`
}

// byType are the rules that paths keep their example's type.
func byType(paths []string) *Rules {
	r := &Rules{Body: map[string]Rule{}}
	for _, p := range paths {
		r.Body[p] = Rule{Combine: "AND", Matchers: []Matcher{{Match: "type"}}}
	}
	return r
}

// Paths are the paths of r, sorted.
func (r *Rules) Paths() []string {
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(r.Body))
	for p := range r.Body {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// GraphQLProvider is the provider name of the GraphQL API's contracts.
const GraphQLProvider = "gateway-graphql"

// GraphQL is consumer's contract with the GraphQL API: one interaction per operation document,
// by name.
func GraphQL(consumer string, operations map[string]string) Contract {
	return build(consumer, GraphQLProvider, "schema", "gateway/schema.graphql", operations, func(name, query string) Interaction {
		return Interaction{Description: name, Type: "Synchronous/HTTP", Request: &Request{Method: "POST", Path: "/graphql", Body: map[string]string{"query": query}}}
	})
}

// build is a contract of consumer with provider, one interaction per item, in key order.
func build[V any](consumer, provider, metaKey, metaValue string, items map[string]V, interaction func(string, V) Interaction) Contract {
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c := Contract{Consumer: Party{consumer}, Provider: Party{provider},
		Metadata: map[string]any{"pactSpecification": map[string]string{"version": "4.0"}, metaKey: metaValue}}
	for _, k := range keys {
		c.Interactions = append(c.Interactions, interaction(k, items[k]))
	}
	return c
}

// Dir is this directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Check compares c, as a consumer's test recorded it, with the file of that name here, or writes
// it there when ORDERFLOW_CONTRACTS=write (make contracts).
func Check(t testing.TB, file string, c Contract) {
	t.Helper()
	got, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join(Dir(), file)
	if os.Getenv("ORDERFLOW_CONTRACTS") == "write" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("what %s sends is not contracts/%s (%v): if the change is meant, run make contracts and commit the file", c.Consumer.Name, file, err)
	}
}

// Of returns the contracts with provider, by file name: this release's, here, and those of the
// consumers of the previous release still running, in released/ (a provider must keep both).
func Of(t testing.TB, provider string) map[string]Contract {
	t.Helper()
	current, err := filepath.Glob(filepath.Join(Dir(), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	released, err := filepath.Glob(filepath.Join(Dir(), "released", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := append(current, released...)
	out := map[string]Contract{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c Contract
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Provider.Name == provider {
			rel, _ := filepath.Rel(Dir(), f)
			out[rel] = c
		}
	}
	if len(out) == 0 {
		t.Fatalf("no contracts with %s in %s", provider, Dir())
	}
	return out
}

// QueuedProvider is the provider name of the contracts of queued commands (the jobs stream): the
// command services that take them.
const QueuedProvider = "command-services-jobs"

// Queued is consumer's contract with the command services that carry out the commands it queues:
// one interaction per endpoint (its JetStream subject under <prefix>.jobs.), with an example
// message.
func Queued(consumer string, examples map[string][]byte) Contract {
	return build(consumer, QueuedProvider, "transport", "NATS JetStream, subject <prefix>.jobs.<endpoint>", examples, func(endpoint string, msg []byte) Interaction {
		return Interaction{Description: endpoint, Type: "Asynchronous/Messages", Request: &Request{Method: "PUBLISH", Path: "jobs." + endpoint, Body: map[string]string{"message": string(msg)}}}
	})
}

// VerifyQueued replays, with a provider's queued-command handlers (endpoint → handler), every
// interaction of the QueuedProvider contracts naming one of its endpoints, each message passed
// through change (nil: as recorded). A provider keeps a contract when it carries each command out
// or refuses it as a business outcome (an order it does not know, a conflict); a command it finds
// malformed or invalid, or holding a field it does not read (jobs.Strict), breaks it. It answers the breaks, each naming the consumer and the
// interaction, and how many interactions it replayed.
func VerifyQueued(ctx context.Context, t testing.TB, handlers map[string]jobs.Handler, change func(endpoint string, msg []byte) []byte) (breaks []string, replayed int) {
	t.Helper()
	ctx = jobs.Strict(ctx)
	for file, c := range Of(t, QueuedProvider) {
		for _, in := range c.Interactions {
			h, ok := handlers[in.Description]
			if !ok {
				continue // another service's
			}
			msg := []byte(in.Request.Body["message"])
			if change != nil {
				msg = change(in.Description, msg)
			}
			replayed++
			var e *rpc.Error
			if err := h(ctx, msg); errors.As(err, &e) && e.Code == rpc.CodeInvalid {
				breaks = append(breaks, fmt.Sprintf("consumer %s (%s), interaction %s: the provider refuses the message as invalid: %s", c.Consumer.Name, file, in.Description, e))
			}
		}
	}
	return breaks, replayed
}

// RequireQueued is a command service's contract test: VerifyQueued with its handlers, every break
// an error, and at least one interaction for it.
func RequireQueued(t *testing.T, handlers map[string]jobs.Handler) {
	t.Helper()
	breaks, replayed := VerifyQueued(t.Context(), t, handlers, nil)
	for _, b := range breaks {
		t.Error(b)
	}
	if replayed == 0 {
		t.Fatal("no recorded command names this service's queued endpoints")
	}
}
