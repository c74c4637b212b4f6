package customer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/domain/domaintest"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var addr = customer.Address{Line1: "1 Main St", City: "Paris", PostalCode: "75001", Country: "FR"}

var registered = customer.Registered{CustomerID: "c1", Name: "Ada", Email: "ada@example.com", Address: addr, At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	moved := customer.Address{Line1: "2 Side St", City: "Lyon", PostalCode: "69001", Country: "FR"}
	tests := []domaintest.Case[customer.Event, customer.Command]{
		{Name: "register", When: customer.Register{CustomerID: "c1", Name: " Ada ", Email: " Ada@Example.com", Address: addr}, Then: []customer.Event{registered}},
		{Name: "register twice", Given: []customer.Event{registered}, When: customer.Register{CustomerID: "c1", Name: "Ada", Email: "ada@example.com", Address: addr}, Err: customer.ErrAlreadyRegistered},
		{Name: "no name", When: customer.Register{CustomerID: "c1", Email: "a@b.co", Address: addr}, Field: "name"},
		{Name: "bad e-mail", When: customer.Register{CustomerID: "c1", Name: "A", Email: "not-an-email", Address: addr}, Field: "email"},
		{Name: "e-mail with a display name", When: customer.Register{CustomerID: "c1", Name: "A", Email: "Ada <a@b.co>", Address: addr}, Field: "email"},
		{Name: "no city", When: customer.Register{CustomerID: "c1", Name: "A", Email: "a@b.co", Address: customer.Address{Line1: "x", PostalCode: "1", Country: "FR"}}, Field: "shippingAddress.city"},
		{Name: "bad country", When: customer.Register{CustomerID: "c1", Name: "A", Email: "a@b.co", Address: customer.Address{Line1: "x", City: "y", PostalCode: "1", Country: "France"}}, Field: "shippingAddress.country"},
		{Name: "change address", Given: []customer.Event{registered}, When: customer.ChangeAddress{CustomerID: "c1", Address: moved}, Then: []customer.Event{customer.AddressChanged{CustomerID: "c1", Address: moved, At: now}}},
		{Name: "change address of unknown", When: customer.ChangeAddress{CustomerID: "c1", Address: moved}, Err: customer.ErrNotFound},
		{Name: "deactivate", Given: []customer.Event{registered}, When: customer.Deactivate{CustomerID: "c1"}, Then: []customer.Event{customer.Deactivated{CustomerID: "c1", At: now}}},
		{Name: "deactivate twice", Given: []customer.Event{registered, customer.Deactivated{CustomerID: "c1"}}, When: customer.Deactivate{CustomerID: "c1"}, Err: customer.ErrDeactivated},
		{Name: "change address when deactivated", Given: []customer.Event{registered, customer.Deactivated{CustomerID: "c1"}}, When: customer.ChangeAddress{CustomerID: "c1", Address: moved}, Err: customer.ErrDeactivated},
		{Name: "erase", Given: []customer.Event{registered}, When: customer.Erase{CustomerID: "c1", Fields: []string{"name"}, Streams: []string{"customer-c1"}},
			Then: []customer.Event{customer.Erased{CustomerID: "c1", Fields: []string{"name"}, Streams: []string{"customer-c1"}, At: now}}},
		{Name: "erase a deactivated customer", Given: []customer.Event{registered, customer.Deactivated{CustomerID: "c1"}}, When: customer.Erase{CustomerID: "c1"},
			Then: []customer.Event{customer.Erased{CustomerID: "c1", At: now}}},
		{Name: "erase unknown", When: customer.Erase{CustomerID: "c1"}, Err: customer.ErrNotFound},
		{Name: "erase twice", Given: []customer.Event{registered, customer.Erased{CustomerID: "c1"}}, When: customer.Erase{CustomerID: "c1"}, Err: customer.ErrErased},
		{Name: "change address when erased", Given: []customer.Event{registered, customer.Erased{CustomerID: "c1"}}, When: customer.ChangeAddress{CustomerID: "c1", Address: moved}, Err: customer.ErrErased},
		{Name: "deactivate when erased", Given: []customer.Event{registered, customer.Erased{CustomerID: "c1"}}, When: customer.Deactivate{CustomerID: "c1"}, Err: customer.ErrErased},
	}
	domaintest.Run(t, customer.Evolve, customer.Decide, now, tests)
}

func TestEmailStreamIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	if customer.EmailStream(" Ada@Example.COM") != customer.EmailStream("ada@example.com") {
		t.Error("one address, two streams")
	}
	if s := customer.EmailStream("ada@example.com"); strings.Contains(s, "ada") || s == customer.EmailStream("bob@example.com") {
		t.Errorf("the stream of an address is %s: it must name it without holding it", s)
	}
}

func TestCodec(t *testing.T) {
	t.Parallel()
	for _, e := range []customer.Event{registered, customer.AddressChanged{CustomerID: "c1", Address: addr, At: now}, customer.Deactivated{CustomerID: "c1", At: now}, customer.EmailClaimed{Email: "a@b.co", CustomerID: "c1"},
		customer.Erased{CustomerID: "c1", Fields: []string{"email", "name", "shippingAddress"}, Streams: []string{"customer-c1"}, At: now}} {
		typ, data, err := customer.Codec.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := customer.Codec.Decode(typ, data)
		if err != nil || cmp.Diff(e, got) != "" {
			t.Errorf("round trip of %T: %v %s", e, err, cmp.Diff(e, got))
		}
	}
}
