package contracts

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

// EventsProvider is the provider name of the read models' contracts: the event log, whose event
// types and payloads the domain's codecs define.
const EventsProvider = "event-log"

// Consumed is one event type a read model consumes: an example payload and the paths of it the
// read model reads.
type Consumed struct {
	Payload  json.RawMessage
	Reads    []string
	Optional []string
}

// Events is a read model's contract with the event log: one interaction per event type it
// consumes, with the example payload reduced to what it reads.
func Events(consumer string, consumed map[string]Consumed) Contract {
	return build(consumer, EventsProvider, "transport", "the event log ($all), read by the read model's projector", consumed, func(typ string, c Consumed) Interaction {
		example, err := Decode(c.Payload)
		if err != nil {
			panic(fmt.Sprintf("contracts.Events: %s: the example is not JSON: %v", typ, err))
		}
		reads := slices.Sorted(slices.Values(c.Reads))
		body, _ := json.Marshal(Only(example, reads))
		return Interaction{Description: typ, Type: "Asynchronous/Messages", Contents: jsonContents(body),
			Metadata: map[string]string{"eventType": typ}, MatchingRules: byType(reads), Optional: read(c.Optional, reads)}
	})
}

// read are the optional paths a consumer reads, or reads below.
func read(optional, reads []string) []string {
	var out []string
	for _, p := range optional {
		if slices.ContainsFunc(reads, func(r string) bool { return below(r, p) }) {
			out = append(out, p)
		}
	}
	return out
}

// below reports whether path r is p or lies below it.
func below(r, p string) bool {
	return r == p || len(r) > len(p) && r[:len(p)] == p && (r[len(p)] == '.' || r[len(p)] == '[')
}

// Codec is what the provider side of the events contracts checks: how the log's readers decode a
// stored event (upcasting an old type first) and how the domain encodes it today.
type Codec struct {
	Decode func(typ string, data []byte) (domain.Event, error)
	Encode func(domain.Event) (typ string, data []byte, err error)
}

// VerifyEvents checks every interaction of the EventsProvider contracts with codec: the event
// type must still decode (as itself or through its upcasts), and what the domain encodes from it
// must hold every path the read model reads, with its example's type. It answers the breaks, each
// naming the consumer and the event type, and how many interactions it checked.
func VerifyEvents(t testing.TB, codec Codec) (breaks []string, checked int) {
	t.Helper()
	all := Of(t, EventsProvider)
	files := slices.Sorted(func(yield func(string) bool) {
		for f := range all {
			if !yield(f) {
				return
			}
		}
	})
	for _, f := range files {
		c := all[f]
		for _, in := range c.Interactions {
			checked++
			if problem := checkEvent(codec, in); problem != "" {
				breaks = append(breaks, fmt.Sprintf("consumer %s (%s), event %s: %s", c.Consumer.Name, f, in.Description, problem))
			}
		}
	}
	sort.Strings(breaks)
	return breaks, checked
}

func checkEvent(codec Codec, in Interaction) string {
	typ := in.Metadata["eventType"]
	e, err := codec.Decode(typ, in.Contents.Content)
	if err != nil {
		return "the log's readers cannot decode it: " + err.Error()
	}
	_, data, err := codec.Encode(e)
	if err != nil {
		return "the domain cannot encode it: " + err.Error()
	}
	example, _ := Decode(in.Contents.Content)
	got, err := Decode(data)
	if err != nil {
		return "the domain encodes no JSON: " + err.Error()
	}
	if m := Mismatches(example, got, in.MatchingRules, in.Optional); len(m) > 0 {
		return fmt.Sprintf("the events the domain writes break what the read model reads: %v", m)
	}
	return ""
}

// RequireEvents is the event log's contract test: VerifyEvents, every break an error.
func RequireEvents(t *testing.T, codec Codec) {
	t.Helper()
	breaks, checked := VerifyEvents(t, codec)
	for _, b := range breaks {
		t.Error(b)
	}
	if checked == 0 {
		t.Fatal("no read model's contract names the event log")
	}
}
