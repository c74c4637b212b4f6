package domain_test

import (
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

type event interface{ domain.Event }

type renamed struct {
	Name string `json:"name"`
}

func (renamed) EventType() string { return "test.renamed.v2" }

type counted struct {
	N int `json:"n"`
}

func (counted) EventType() string { return "test.counted.v1" }

// TestCodecEncodesDecodesAndUpcasts: each registered type round-trips; an old type is upcast
// (through a chain) before it is decoded; an unknown type is an error naming the context.
func TestCodecEncodesDecodesAndUpcasts(t *testing.T) {
	c := domain.NewCodec("test", domain.Of[renamed, event](), domain.Of[counted, event]())
	// v0 had "title"; v1 was a rename of the type; v2 calls it "name".
	c.Upcast("test.titled.v0", func(data []byte) (string, []byte, error) { return "test.titled.v1", data, nil })
	c.Upcast("test.titled.v1", func(data []byte) (string, []byte, error) {
		return "test.renamed.v2", []byte(strings.Replace(string(data), `"title"`, `"name"`, 1)), nil
	})
	for _, e := range []event{renamed{Name: "a"}, counted{N: 3}} {
		typ, data, err := c.Encode(e)
		if err != nil || typ != e.EventType() {
			t.Fatalf("encode %v: %s %v", e, typ, err)
		}
		back, err := c.Decode(typ, data)
		if err != nil || back != e {
			t.Errorf("round trip of %v: %v, %v", e, back, err)
		}
	}
	got, err := c.Decode("test.titled.v0", []byte(`{"title":"old"}`))
	if err != nil || got != (renamed{Name: "old"}) {
		t.Errorf("an old event: %v, %v; want it upcast twice to renamed{old}", got, err)
	}
	if _, err := c.Decode("test.unknown.v1", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "test: unknown event type") {
		t.Errorf("an unknown type: %v", err)
	}
	if _, err := c.Decode("test.counted.v1", []byte(`{"n":"three"}`)); err == nil {
		t.Error("a malformed payload decoded")
	}
	if got := c.Types(); len(got) != 2 || got[0] != "test.counted.v1" || got[1] != "test.renamed.v2" {
		t.Errorf("types: %v", got)
	}
}

func TestCodecRefusesATypeRegisteredTwice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a type registered twice")
		}
	}()
	domain.NewCodec("test", domain.Of[counted, event](), domain.Of[counted, event]())
}
