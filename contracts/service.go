package contracts

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/rpc"
)

// Call is one request a consumer sent a NATS service, and what it relies on of the answer.
type Call struct {
	// Endpoint is the request's subject, relative to the namespace ("orders.get").
	Endpoint string
	// Caller is whom the consumer asserted as caller: "admin:<subject>" or "customer:<id>".
	Caller string
	// States must hold at the provider for the answer to be of the example's kind.
	States []string
	// Request is what the consumer sent.
	Request json.RawMessage
	// Answer is the example answer; Reads, the paths of it the consumer reads.
	Answer json.RawMessage
	Reads  []string
	// Optional are the paths the provider may leave out: the consumer reads their absence as
	// the zero value.
	Optional []string
	// Error, instead of an answer, is the code the provider answers, one the consumer handles.
	Error string
	// Handles are the error codes the consumer handles in place of the answer (it turns them into
	// an answer of its own, not a failure).
	Handles []string
}

// description names a call's interaction: its endpoint, its request and, for an error, the code.
func (c Call) description() string {
	d := c.Endpoint + " " + string(c.Request)
	if c.Error != "" {
		d += " → " + c.Error
	}
	return d
}

// Service is consumer's contract with the NATS service provider: one interaction per distinct
// request (calls with the same request merge what they read), in description order.
func Service(consumer, provider string, calls []Call) Contract {
	merged := map[string]Call{}
	for _, c := range calls {
		if m, ok := merged[c.description()]; ok {
			c.Reads = append(c.Reads, m.Reads...)
			c.States = append(c.States, m.States...)
			c.Optional = append(c.Optional, m.Optional...)
			c.Handles = intersect(c.Handles, m.Handles) // handled by every request that made it
		}
		slices.Sort(c.Optional)
		c.Optional = slices.Compact(c.Optional)
		slices.Sort(c.Reads)
		c.Reads = slices.Compact(c.Reads)
		slices.Sort(c.States)
		c.States = slices.Compact(c.States)
		merged[c.description()] = c
	}
	return build(consumer, provider, "transport", "NATS request-reply, subject <prefix>.<endpoint>", merged, func(description string, c Call) Interaction {
		in := Interaction{Description: description, Type: "Synchronous/Messages",
			Request: &Request{Contents: jsonContents(c.Request), Metadata: map[string]string{"endpoint": c.Endpoint, "caller": c.Caller}}}
		for _, s := range c.States {
			in.ProviderStates = append(in.ProviderStates, State{s})
		}
		if c.Error != "" {
			in.Response = []Message{{Metadata: map[string]string{"errorCode": c.Error}}}
			return in
		}
		example, err := Decode(c.Answer)
		if err != nil {
			panic(fmt.Sprintf("contracts.Service: %s: the example answer is not JSON: %v", description, err))
		}
		body, _ := json.Marshal(Only(example, c.Reads))
		in.Response = []Message{{Contents: jsonContents(body), MatchingRules: byType(c.Reads), Optional: read(c.Optional, c.Reads), ErrorCodes: c.Handles}}
		return in
	})
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Provider is how a provider's contract test reaches the service it started.
type Provider struct {
	// Name is the provider's, as contracts name it: the target's name ("order-queries").
	Name string
	// State makes a provider state hold.
	State func(ctx context.Context, name string) error
	// Send sends a recorded request as caller; it answers the reply, or the code of an error.
	Send func(ctx context.Context, endpoint, caller string, request []byte) (answer []byte, code string, err error)
	// Change, if set, alters each answer before it is checked: a test's deliberately broken
	// provider.
	Change func(endpoint string, answer []byte) []byte
	// Patience bounds how long an answer may take to become what the contract expects (a read
	// model catching up with its states); default 15s.
	Patience time.Duration
}

// VerifyService replays every interaction of every contract naming p (this release's and the
// released ones) after setting up their provider states, and checks each answer: an expected error
// code must come back; else an answer that holds every path the consumer reads, with its
// example's type (more fields are fine). It answers the breaks, each naming the consumer and the
// interaction, and how many interactions it replayed.
func VerifyService(ctx context.Context, t testing.TB, p Provider) (breaks []string, replayed int) {
	t.Helper()
	if p.Patience <= 0 {
		p.Patience = 15 * time.Second
	}
	all := Of(t, p.Name)
	files := make([]string, 0, len(all))
	states := map[string]bool{}
	for f, c := range all {
		files = append(files, f)
		for _, in := range c.Interactions {
			for _, s := range in.ProviderStates {
				states[s.Name] = true
			}
		}
	}
	sort.Strings(files)
	names := make([]string, 0, len(states))
	for s := range states {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		if err := p.State(ctx, s); err != nil {
			breaks = append(breaks, fmt.Sprintf("provider state %q: %v", s, err))
		}
	}
	for _, f := range files {
		c := all[f]
		for _, in := range c.Interactions {
			if in.Request == nil || in.Request.Contents == nil || len(in.Response) == 0 {
				continue
			}
			replayed++
			if problem := p.check(ctx, in); problem != "" {
				breaks = append(breaks, fmt.Sprintf("consumer %s (%s), interaction %s: %s", c.Consumer.Name, f, in.Description, problem))
			}
		}
	}
	return breaks, replayed
}

// check replays in and says how the answer breaks it ("" if it does not).
func (p Provider) check(ctx context.Context, in Interaction) string {
	endpoint, caller := in.Request.Metadata["endpoint"], in.Request.Metadata["caller"]
	want := in.Response[0].Metadata["errorCode"]
	deadline := time.Now().Add(p.Patience)
	for {
		answer, code, err := p.Send(ctx, endpoint, caller, in.Request.Contents.Content)
		if err != nil {
			return err.Error()
		}
		if code != want {
			// A state may still be on its way into a read model.
			if want == "" && (code == rpc.CodeNotFound || code == rpc.CodeStale || code == rpc.CodeUnavailable) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if want == "" {
				return fmt.Sprintf("the provider answers the error %q: the consumer expects an answer", code)
			}
			return fmt.Sprintf("the provider answers %q: the consumer expects the error %q", or(code, "success"), want)
		}
		if want != "" {
			return ""
		}
		if p.Change != nil {
			answer = p.Change(endpoint, answer)
		}
		got, err := Decode(answer)
		if err != nil {
			return "the answer is not JSON: " + err.Error()
		}
		example, err := Decode(in.Response[0].Contents.Content)
		if err != nil {
			return "the contract's example is not JSON: " + err.Error()
		}
		if m := Mismatches(example, got, in.Response[0].MatchingRules, in.Response[0].Optional); len(m) > 0 {
			return fmt.Sprintf("the answer breaks what the consumer reads: %v", m)
		}
		return ""
	}
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// RequireService is a service's contract test: VerifyService, every break an error, and at
// least one interaction for the service.
func RequireService(t *testing.T, p Provider) {
	t.Helper()
	breaks, replayed := VerifyService(t.Context(), t, p)
	for _, b := range breaks {
		t.Error(b)
	}
	if replayed == 0 {
		t.Fatalf("no contract names %s", p.Name)
	}
}
