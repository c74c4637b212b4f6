package customer_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/customer"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var addr = customer.Address{Line1: "1 Main St", City: "Paris", PostalCode: "75001", Country: "FR"}

var registered = customer.Registered{CustomerID: "c1", Name: "Ada", Email: "ada@example.com", Address: addr, At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	moved := customer.Address{Line1: "2 Side St", City: "Lyon", PostalCode: "69001", Country: "FR"}
	tests := []struct {
		name  string
		given []customer.Event
		when  customer.Command
		then  []customer.Event
		err   error
		field string
	}{
		{name: "register", when: customer.Register{CustomerID: "c1", Name: " Ada ", Email: " Ada@Example.com", Address: addr}, then: []customer.Event{registered}},
		{name: "register twice", given: []customer.Event{registered}, when: customer.Register{CustomerID: "c1", Name: "Ada", Email: "ada@example.com", Address: addr}, err: customer.ErrAlreadyRegistered},
		{name: "no name", when: customer.Register{CustomerID: "c1", Email: "a@b.co", Address: addr}, field: "name"},
		{name: "bad e-mail", when: customer.Register{CustomerID: "c1", Name: "A", Email: "not-an-email", Address: addr}, field: "email"},
		{name: "e-mail with a display name", when: customer.Register{CustomerID: "c1", Name: "A", Email: "Ada <a@b.co>", Address: addr}, field: "email"},
		{name: "no city", when: customer.Register{CustomerID: "c1", Name: "A", Email: "a@b.co", Address: customer.Address{Line1: "x", PostalCode: "1", Country: "FR"}}, field: "shippingAddress.city"},
		{name: "bad country", when: customer.Register{CustomerID: "c1", Name: "A", Email: "a@b.co", Address: customer.Address{Line1: "x", City: "y", PostalCode: "1", Country: "France"}}, field: "shippingAddress.country"},
		{name: "change address", given: []customer.Event{registered}, when: customer.ChangeAddress{CustomerID: "c1", Address: moved}, then: []customer.Event{customer.AddressChanged{CustomerID: "c1", Address: moved, At: now}}},
		{name: "change address of unknown", when: customer.ChangeAddress{CustomerID: "c1", Address: moved}, err: customer.ErrNotFound},
		{name: "deactivate", given: []customer.Event{registered}, when: customer.Deactivate{CustomerID: "c1"}, then: []customer.Event{customer.Deactivated{CustomerID: "c1", At: now}}},
		{name: "deactivate twice", given: []customer.Event{registered, customer.Deactivated{CustomerID: "c1"}}, when: customer.Deactivate{CustomerID: "c1"}, err: customer.ErrDeactivated},
		{name: "change address when deactivated", given: []customer.Event{registered, customer.Deactivated{CustomerID: "c1"}}, when: customer.ChangeAddress{CustomerID: "c1", Address: moved}, err: customer.ErrDeactivated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s customer.State
			for _, e := range tt.given {
				s = customer.Evolve(s, e)
			}
			got, err := customer.Decide(s, tt.when, now)
			var re *domain.RuleError
			switch {
			case tt.field != "":
				if !errors.As(err, &re) || re.Field != tt.field {
					t.Fatalf("err = %v, want a rule error on %s", err, tt.field)
				}
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.then, got); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
}

func TestEmailStreamIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	if customer.EmailStream(" Ada@Example.COM") != customer.EmailStream("ada@example.com") {
		t.Error("one address, two streams")
	}
}

func TestCodec(t *testing.T) {
	t.Parallel()
	for _, e := range []customer.Event{registered, customer.AddressChanged{CustomerID: "c1", Address: addr, At: now}, customer.Deactivated{CustomerID: "c1", At: now}, customer.EmailClaimed{Email: "a@b.co", CustomerID: "c1"}} {
		typ, data, err := customer.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := customer.Decode(typ, data)
		if err != nil || cmp.Diff(e, got) != "" {
			t.Errorf("round trip of %T: %v %s", e, err, cmp.Diff(e, got))
		}
	}
}
