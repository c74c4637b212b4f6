package domain

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Event is what every context's events are: a value whose EventType names its type and version
// ("order.placed.v1"). Names are a stored contract: never rename one; a changed payload gets a new
// version and an upcast from the old one.
type Event interface{ EventType() string }

// AboutOrder is an event about one order, of any context (an order placed, its stock reserved,
// its payment authorized): the order's id.
type AboutOrder interface{ AboutOrder() string }

// Codec encodes and decodes the events of one context (E is the context's event interface). Each
// event type is registered once, by its Go type (Of); its name is what its EventType answers.
// Events of an old shape are turned into the current one by the upcasts registered with Upcast,
// chained (v1 → v2 → v3).
type Codec[E Event] struct {
	context string
	decode  map[string]func([]byte) (E, error)
	upcasts map[string]Upcaster
}

// Upcaster turns the payload of an old event type into the next type and its payload.
type Upcaster func(data []byte) (typ string, next []byte, err error)

// Type is one event type of a codec: see Of.
type Type[E Event] struct {
	name   string
	decode func([]byte) (E, error)
}

// Of is Go type T as an event type of a codec of E (T must implement E).
func Of[T, E Event]() Type[E] {
	var zero T
	if _, ok := any(zero).(E); !ok {
		panic(fmt.Sprintf("domain.Of: %T is not an event of this codec", zero))
	}
	name := zero.EventType()
	return Type[E]{name: name, decode: func(data []byte) (E, error) {
		t, err := DecodeAs[T](name, data)
		return any(t).(E), err
	}}
}

// NewCodec returns the codec of context's event types.
func NewCodec[E Event](context string, types ...Type[E]) *Codec[E] {
	c := &Codec[E]{context: context, decode: map[string]func([]byte) (E, error){}, upcasts: map[string]Upcaster{}}
	for _, t := range types {
		if _, dup := c.decode[t.name]; dup {
			panic(fmt.Sprintf("domain.NewCodec %s: event type %s registered twice", context, t.name))
		}
		c.decode[t.name] = t.decode
	}
	return c
}

// Upcast registers how events of the old type from, no longer registered, become the next type.
func (c *Codec[E]) Upcast(from string, up Upcaster) *Codec[E] {
	if _, current := c.decode[from]; current {
		panic(fmt.Sprintf("domain.Codec %s: %s is a current type; an upcast starts from an old one", c.context, from))
	}
	c.upcasts[from] = up
	return c
}

// Encode returns e's type and JSON payload.
func (c *Codec[E]) Encode(e E) (string, []byte, error) {
	data, err := json.Marshal(e)
	return e.EventType(), data, err
}

// Decode parses a stored event of the context, upcasting it first if its type is an old one. An
// unknown type is an error: a reader of the context's streams must know every event of it.
func (c *Codec[E]) Decode(typ string, data []byte) (E, error) {
	for range maxUpcasts {
		if decode, ok := c.decode[typ]; ok {
			return decode(data)
		}
		up, ok := c.upcasts[typ]
		if !ok {
			break
		}
		var err error
		if typ, data, err = up(data); err != nil {
			var zero E
			return zero, fmt.Errorf("%s: upcast %s: %w", c.context, typ, err)
		}
	}
	var zero E
	return zero, fmt.Errorf("%s: unknown event type %q", c.context, typ)
}

// maxUpcasts bounds a chain of upcasts, against a cycle.
const maxUpcasts = 16

// Types are the current event types of the codec, sorted.
func (c *Codec[E]) Types() []string {
	var out []string
	for t := range c.decode {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Upcasts are the codec's upcasts by old type, for readers that upcast records before they decode
// them (eventstore.WithUpcasters).
func (c *Codec[E]) Upcasts() map[string]Upcaster { return c.upcasts }

// Events is a codec with its context's event type forgotten, for what reads the events of every
// context (tools, the contract tests): see Codec.Events.
type Events interface {
	Decode(typ string, data []byte) (Event, error)
	Encode(e Event) (string, []byte, error)
	Types() []string
}

// Events is c as an Events.
func (c *Codec[E]) Events() Events { return events[E]{c} }

type events[E Event] struct{ c *Codec[E] }

func (x events[E]) Decode(typ string, data []byte) (Event, error) { return x.c.Decode(typ, data) }
func (x events[E]) Types() []string                               { return x.c.Types() }
func (x events[E]) Encode(e Event) (string, []byte, error) {
	own, ok := e.(E)
	if !ok {
		return "", nil, fmt.Errorf("%s: %T is not an event of this context", x.c.context, e)
	}
	return x.c.Encode(own)
}
