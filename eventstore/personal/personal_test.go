package personal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/eventstore/storetest"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// keys are data keys in a fresh database's key schema.
func keys(t *testing.T) personal.PostgresKeys {
	t.Helper()
	pool, err := pgschema.Open(t.Context(), pgtest.NewDatabase(t), personal.Schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	k := personal.PostgresKeys{Pool: pool}
	if err := k.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return k
}

var ada = customer.Registered{CustomerID: "c-1", Name: "Ada Lovelace", Email: "ada@example.com",
	Address: customer.Address{Line1: "12 Analytical Row", City: "London", PostalCode: "W1", Country: "GB"}, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}

func appendEvent(t *testing.T, s eventstore.Store, stream string, e customer.Event) {
	t.Helper()
	typ, data, err := customer.Codec.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), stream, eventstore.Any(), []eventstore.EventData{{ID: eventstore.DeriveID(stream+typ, 0), Type: typ, Data: data}}); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, s eventstore.Store, stream string) customer.Registered {
	t.Helper()
	events, err := s.ReadStream(t.Context(), stream, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := customer.Codec.Decode(events[0].Type, events[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	return e.(customer.Registered)
}

// TestPersonalFieldsAreEncryptedAndErasedByTheKey: the log holds none of the personal fields in
// the clear, the rest in the clear; readers see them until the key is destroyed, then redacted;
// an event written before protection, in the clear, reads redacted too once its person is erased.
func TestPersonalFieldsAreEncryptedAndErasedByTheKey(t *testing.T) {
	t.Parallel()
	raw := memory.New()
	k := personal.NewCache(keys(t), time.Minute, 10)
	store := personal.Protect(raw, personal.SpecOf(customer.Personal...), k)
	appendEvent(t, store, "customer-c-1", ada)
	legacy := ada
	legacy.CustomerID = "c-2"
	appendEvent(t, raw, "customer-c-2", legacy) // written in the clear, before protection

	stored, err := raw.ReadStream(t.Context(), "customer-c-1", eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"Ada", "ada@example.com", "Analytical", "London"} {
		if bytes.Contains(stored[0].Data, []byte(secret)) {
			t.Errorf("the log holds %q in the clear: %s", secret, stored[0].Data)
		}
	}
	if !bytes.Contains(stored[0].Data, []byte(`"customerId":"c-1"`)) || !bytes.Contains(stored[0].Data, []byte(`"at":"2026-01-02T03:04:05Z"`)) {
		t.Errorf("the fields that are not personal are not readable: %s", stored[0].Data)
	}
	if got := read(t, store, "customer-c-1"); got != ada {
		t.Fatalf("read back %+v, want %+v", got, ada)
	}

	if at, err := k.Destroyed(t.Context(), "c-1"); err != nil || !at.IsZero() {
		t.Fatalf("destroyed before Destroy: %v %v", at, err)
	}
	for _, id := range []string{"c-1", "c-2"} {
		if _, err := k.Destroy(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	first, err := k.Destroyed(t.Context(), "c-1")
	if again, _ := k.Destroy(t.Context(), "c-1"); err != nil || first.IsZero() || !again.Equal(first) {
		t.Fatalf("destroyed at %v (%v), again %v: want the first time, kept", first, err, again)
	}
	for _, stream := range []string{"customer-c-1", "customer-c-2"} {
		got := read(t, store, stream)
		if got.Name != personal.Redacted || got.Email != personal.Redacted || got.Address.Line1 != personal.Redacted || got.Address.Country != personal.Redacted {
			t.Errorf("%s after erasure: %+v", stream, got)
		}
		if got.At != ada.At || got.CustomerID == "" {
			t.Errorf("%s after erasure lost what is not personal: %+v", stream, got)
		}
	}
	if _, err := k.Key(t.Context(), "c-1", true); !errors.Is(err, personal.ErrErased) {
		t.Errorf("a key was made again for an erased person: %v", err)
	}
	if err := func() error {
		typ, data, _ := customer.Codec.Encode(customer.AddressChanged{CustomerID: "c-1", Address: ada.Address})
		_, err := store.Append(t.Context(), "customer-c-1", eventstore.Any(), []eventstore.EventData{{ID: eventstore.DeriveID("again", 0), Type: typ, Data: data}})
		return err
	}(); !errors.Is(err, personal.ErrErased) {
		t.Errorf("personal data of an erased person was appended: %v", err)
	}
}

// TestCiphertextIsBoundToItsEvent: sealed fields moved into another person's event do not open,
// with that person's key or without one.
func TestCiphertextIsBoundToItsEvent(t *testing.T) {
	t.Parallel()
	raw := memory.New()
	k := keys(t)
	store := personal.Protect(raw, personal.SpecOf(customer.Personal...), k)
	appendEvent(t, store, "customer-c-1", ada)
	stored, _ := raw.ReadStream(t.Context(), "customer-c-1", eventstore.ReadStreamOptions{})
	var m map[string]json.RawMessage
	_ = json.Unmarshal(stored[0].Data, &m)
	m["customerId"] = json.RawMessage(`"c-9"`)
	moved, _ := json.Marshal(m)
	if _, err := raw.Append(t.Context(), "customer-c-9", eventstore.NoStream(), []eventstore.EventData{{ID: eventstore.DeriveID("moved", 0), Type: stored[0].Type, Data: moved}}); err != nil {
		t.Fatal(err)
	}
	// c-9 has no key: the event reads redacted, never as c-1's data.
	if got := read(t, store, "customer-c-9"); got.Name != personal.Redacted {
		t.Fatalf("a moved ciphertext reads %+v", got)
	}
	// With a key of c-9's own, it does not authenticate.
	if _, err := k.Key(t.Context(), "c-9", true); err != nil {
		t.Fatal(err)
	}
	if events, err := store.ReadStream(t.Context(), "customer-c-9", eventstore.ReadStreamOptions{}); err == nil {
		t.Fatalf("a moved ciphertext opened: %s", events[0].Data)
	}
}

// TestTheCacheForgetsInTime: a key destroyed by another process is seen within the cache's TTL.
func TestTheCacheForgetsInTime(t *testing.T) {
	t.Parallel()
	k := keys(t)
	ctx := context.Background()
	here, elsewhere := personal.NewCache(k, 50*time.Millisecond, 10), personal.NewCache(k, time.Hour, 10)
	if _, err := here.Key(ctx, "c-1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := elsewhere.Destroy(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := here.Key(ctx, "c-1", false); errors.Is(err, personal.ErrErased) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache kept a destroyed key past its TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkProtection prints what protection costs one event in memory, against the same append
// and read without it: an order event (no personal field: a map lookup) and a customer's
// registration (encrypted and decrypted).
func BenchmarkProtection(b *testing.B) {
	k := personal.NewCache(memoryKeys{}, time.Hour, 10)
	spec := personal.SpecOf(customer.Personal...)
	_, reg, _ := customer.Codec.Encode(ada)
	order := []byte(`{"orderId":"o-1","customerId":"c-1","lines":[{"productId":"sku-1","quantity":2,"unitPriceCents":1250}],"totalCents":2500}`)
	for _, c := range []struct {
		name, typ string
		data      []byte
		protect   bool
	}{
		{"order/plain", "order.placed.v1", order, false}, {"order/protected", "order.placed.v1", order, true},
		{"registered/plain", customer.TypeRegistered, reg, false}, {"registered/protected", customer.TypeRegistered, reg, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var store eventstore.Store = memory.New()
			if c.protect {
				store = personal.Protect(store, spec, k)
			}
			for i := 0; b.Loop(); i++ {
				if _, err := store.Append(b.Context(), "s", eventstore.Any(), []eventstore.EventData{{ID: eventstore.DeriveID("b", i), Type: c.typ, Data: c.data}}); err != nil {
					b.Fatal(err)
				}
				if _, err := store.ReadStream(b.Context(), "s", eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1, Limit: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// memoryKeys gives every person the same key: what the benchmark needs of a key store (the cache
// in front of a real one answers from memory alike).
type memoryKeys struct{}

func (memoryKeys) Key(context.Context, string, bool) ([]byte, error)    { return make([]byte, 32), nil }
func (memoryKeys) Destroy(context.Context, string) (time.Time, error)   { return time.Time{}, nil }
func (memoryKeys) Destroyed(context.Context, string) (time.Time, error) { return time.Time{}, nil }

// suiteEvent is the event of the store contract suite ("t.v1": {"n": …, "note": …}), its n
// taken for personal data of the person its note names.
type suiteEvent struct {
	N    int    `json:"n" personal:"data"`
	Note string `json:"note" personal:"subject"`
}

func (suiteEvent) EventType() string { return "t.v1" }

// TestProtectedStoreKeepsTheStoreContract: a protected store, its suite events encrypted on the
// way in and decrypted on the way out, passes the event store contract suite.
func TestProtectedStoreKeepsTheStoreContract(t *testing.T) {
	k := keys(t)
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		return storetest.Harness{Store: personal.Protect(memory.New(), personal.SpecOf(suiteEvent{}), personal.NewCache(k, time.Minute, 100))}
	})
}

// TestSpecNamesTheFieldsAndHowTheyReadErased: the fields come from the tags; a redacted address
// reads as the store redacts one.
func TestSpecNamesTheFieldsAndHowTheyReadErased(t *testing.T) {
	t.Parallel()
	if got := personal.SpecOf(customer.Personal...).Fields(); fmt.Sprint(got) != "[email name shippingAddress]" {
		t.Errorf("fields %v", got)
	}
	a := personal.Redact[customer.Address]()
	if a.Line1 != personal.Redacted || a.Line2 != personal.Redacted || a.Country != personal.Redacted {
		t.Errorf("redacted address %+v", a)
	}
}

// countingKeys counts the reads that reach the key store.
type countingKeys struct {
	memoryKeys
	mu    sync.Mutex
	reads int
}

func (k *countingKeys) Key(ctx context.Context, subject string, create bool) ([]byte, error) {
	k.mu.Lock()
	k.reads++
	k.mu.Unlock()
	return k.memoryKeys.Key(ctx, subject, create)
}

// TestTheCacheIsBounded: past its size, a cache forgets some keys (they are read again), and it
// never holds more than its size.
func TestTheCacheIsBounded(t *testing.T) {
	t.Parallel()
	k := &countingKeys{}
	c := personal.NewCache(k, time.Hour, 3)
	for _, s := range []string{"a", "b", "c", "a", "b", "c"} {
		if _, err := c.Key(t.Context(), s, false); err != nil {
			t.Fatal(err)
		}
	}
	if k.reads != 3 {
		t.Fatalf("%d reads of three keys under the bound, want 3", k.reads)
	}
	for _, s := range []string{"d", "e", "f", "g"} {
		_, _ = c.Key(t.Context(), s, false)
	}
	before := k.reads
	for _, s := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		_, _ = c.Key(t.Context(), s, false)
	}
	if k.reads-before < 4 {
		t.Fatalf("seven keys through a cache of three: only %d read again", k.reads-before)
	}
}
