package customer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands/commandstest"
	"github.com/orderflow/orderflow/commands/customer"
	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/eventstore/storetest"
	"github.com/orderflow/orderflow/testkit/pgtest"
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
	h := customer.Handlers{Writer: commandstest.Writer(store), Store: store}
	won, taken := storetest.Race(t, 12, model.ErrEmailTaken, func(i int) error {
		// The same address in different spellings.
		_, err := h.Register(context.Background(), register(fmt.Sprintf("c%d", i), fmt.Sprintf(" Ada@EXAMPLE.com%s", []string{"", " "}[i%2])))
		return err
	})
	if won != 1 || taken != 11 {
		t.Fatalf("12 registrations of one address: %d won, %d taken; want 1 and 11", won, taken)
	}
}

func TestRegisterIsIdempotentAndValidatesFirst(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	h := customer.Handlers{Writer: commandstest.Writer(mem), Store: mem}
	first := commandstest.Must(t)(h.Register(t.Context(), register("c1", "ada@example.com")))
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

// flakyKeys is a key store whose first Destroy fails, as a crash between the erasure's event and
// the key's destruction would leave things.
type flakyKeys struct {
	mu        sync.Mutex
	failed    bool
	destroyed map[string]time.Time
}

func (k *flakyKeys) Key(context.Context, string, bool) ([]byte, error) { return make([]byte, 32), nil }

func (k *flakyKeys) Destroy(_ context.Context, subject string) (time.Time, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.failed {
		k.failed = true
		return time.Time{}, errors.New("key store down")
	}
	if _, ok := k.destroyed[subject]; !ok {
		k.destroyed[subject] = time.Now()
	}
	return k.destroyed[subject], nil
}

func (k *flakyKeys) Destroyed(_ context.Context, subject string) (time.Time, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.destroyed[subject], nil
}

// TestAnErasureCutShortIsCompletedByErasingAgain: when the key cannot be destroyed after the
// erasure was recorded, the erase fails; erasing again destroys it, records nothing twice and
// answers the receipt, with both streams of the customer's personal data.
func TestAnErasureCutShortIsCompletedByErasingAgain(t *testing.T) {
	t.Parallel()
	store := memory.New()
	keys := &flakyKeys{destroyed: map[string]time.Time{}}
	h := customer.Handlers{Writer: commandstest.Writer(store), Store: store, Keys: keys}
	ctx := context.Background()
	if _, err := h.Register(ctx, register("c1", "ada@example.com")); err != nil {
		t.Fatal(err)
	}
	erase := wire.IDCommand{Meta: wire.CommandMeta{CommandID: "erase-c1"}, ID: "c1"}
	if _, err := h.Erase(ctx, erase); err == nil {
		t.Fatal("an erase whose key survived answered success")
	}
	// The receipt says so, and fetching it changes nothing.
	if r, err := h.Erasure(ctx, wire.CustomerByID{ID: "c1"}); err != nil || !r.KeyDestroyedAt.IsZero() {
		t.Fatalf("the receipt of an erasure cut short: %+v, %v", r, err)
	}
	if _, ok := keys.destroyed["c1"]; ok {
		t.Fatal("fetching a receipt destroyed the key")
	}
	receipt, err := h.Erase(ctx, wire.IDCommand{Meta: wire.CommandMeta{CommandID: "erase-c1-again"}, ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys.destroyed["c1"]; !ok || receipt.KeyDestroyedAt.IsZero() {
		t.Fatalf("the key was not destroyed: %+v", receipt)
	}
	if want := []string{model.Stream("c1"), model.EmailStream("ada@example.com")}; fmt.Sprint(receipt.Streams) != fmt.Sprint(want) {
		t.Errorf("receipt streams %v, want %v", receipt.Streams, want)
	}
	if want := []string{"email", "name", "shippingAddress"}; fmt.Sprint(receipt.Fields) != fmt.Sprint(want) {
		t.Errorf("receipt fields %v, want %v (the fields the events' types mark personal)", receipt.Fields, want)
	}
	events, err := store.ReadStream(ctx, model.Stream("c1"), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	erased := 0
	for _, e := range events {
		if e.Type == model.TypeErased {
			erased++
		}
	}
	if erased != 1 {
		t.Errorf("%d erasure events, want one", erased)
	}
	if _, err := h.Erasure(ctx, wire.CustomerByID{ID: "c2"}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the receipt of a customer never registered: %v", err)
	}
}
