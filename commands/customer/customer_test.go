package customer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/commands/customer"
	"github.com/orderflow/orderflow/dev/pgtest"
	model "github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var addr = wire.Address{Line1: "1 Main St", City: "Paris", PostalCode: "75001", Country: "FR"}

func register(id, email string) wire.RegisterCustomer {
	return wire.RegisterCustomer{Meta: wire.CommandMeta{CommandID: "reg-" + id}, CustomerID: id, Name: "Ada", Email: email, Address: addr}
}

// TestEmailRace registers many customers with one e-mail address at once, on PostgreSQL:
// exactly one wins, the others get ErrEmailTaken.
func TestEmailRace(t *testing.T) {
	t.Parallel()
	store := pgtest.EventStore(t, 0)
	h := customer.Handlers{Store: store}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, taken := 0, 0
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The same address in different spellings.
			_, err := h.Register(context.Background(), register(fmt.Sprintf("c%d", i), fmt.Sprintf(" Ada@EXAMPLE.com%s", []string{"", " "}[i%2])))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, model.ErrEmailTaken):
				taken++
			default:
				t.Errorf("register c%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || taken != 11 {
		t.Fatalf("12 registrations of one address: %d won, %d taken; want 1 and 11", won, taken)
	}
}

func TestRegisterIsIdempotentAndValidatesFirst(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := customer.Handlers{Store: store}
	first, err := h.Register(t.Context(), register("c1", "ada@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.Register(t.Context(), register("c1", "ada@example.com"))
	if err != nil || again != first {
		t.Fatalf("retry = %+v, %v; want %+v", again, err, first)
	}
	// An invalid registration claims nothing: the address stays free.
	bad := register("c2", "bob@example.com")
	bad.Address.Country = "France"
	if _, err := h.Register(t.Context(), bad); err == nil {
		t.Fatal("invalid registration accepted")
	}
	if _, err := h.Register(t.Context(), register("c3", "bob@example.com")); err != nil {
		t.Fatalf("address claimed by an invalid registration: %v", err)
	}
	if _, err := h.Deactivate(t.Context(), wire.IDCommand{Meta: wire.CommandMeta{CommandID: "d1"}, ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ChangeAddress(t.Context(), wire.ChangeAddress{Meta: wire.CommandMeta{CommandID: "a1"}, CustomerID: "c1", Address: addr}); !errors.Is(err, model.ErrDeactivated) {
		t.Fatalf("change address of a deactivated customer: %v", err)
	}
}
