package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/domain/inventory"
	domainorder "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// providers are the services the gateway's contracts name, each with the targets that make it
// up: a query service answers from a read model its projector builds; the order service places
// an order at the catalog's prices (inventory) for a customer who may order (customers).
var providers = []struct{ name, targets string }{
	{"order-commands", "order-commands,inventory-commands,customer-commands"},
	{"customer-commands", "customer-commands"},
	{"inventory-commands", "inventory-commands"},
	{"payment-commands", "payment-commands"},
	{"order-queries", "order-queries,projector"},
	{"customer-queries", "customer-queries,projector"},
	{"catalog-queries", "catalog-queries,projector"},
	{"fulfillment", "fulfillment-saga"},
	{"projector", "projector"},
}

// TestProviderContracts starts each service alone (its own database, the test NATS server) and
// replays every contract naming it. One service at a time: nine platforms at once beside the
// package's other tests saturated a 2-core CI machine, and the live-query test that counts reads
// then saw reads no announcement explains (a NATS reconnection would: live queries read
// everything again after one).
func TestProviderContracts(t *testing.T) {
	t.Parallel()
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			contracts.RequireService(t, provider(t, p.name, p.targets))
		})
	}
}

// TestARenamedAnswerFieldNamesTheInteraction: an order query service whose answers call status
// "state" breaks the gateway's contract, and the failure names the consumer and the interaction.
func TestARenamedAnswerFieldNamesTheInteraction(t *testing.T) {
	p := provider(t, "order-queries", "order-queries,projector")
	p.Change = func(endpoint string, answer []byte) []byte {
		return []byte(strings.ReplaceAll(string(answer), `"status":`, `"state":`))
	}
	breaks, _ := contracts.VerifyService(t.Context(), t, p)
	found := false
	for _, b := range breaks {
		if strings.Contains(b, "consumer gateway") && strings.Contains(b, `interaction orders.get {"id":"o-1"}`) && strings.Contains(b, "$.status: $.status is missing") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no break names the gateway's orders.get of o-1 and the status it reads: %q", breaks)
	}
}

// provider runs targets alone and answers how to reach them: the states of the contracts' world
// are events appended to its event store; requests are signed as the gateway's, for the caller
// each interaction names.
func provider(t *testing.T, name, targets string) contracts.Provider {
	nc, ns := natstest.Connect(t), natstest.Namespace(t)
	_, db := startPlatformDB(t, "targets", targets, "ORDERFLOW_NATS_PREFIX", string(ns))
	store := pgtest.EventStoreAt(t, db, 2)
	signer, err := platform.Signer("gateway", seedsOf(t))
	if err != nil {
		t.Fatal(err)
	}
	return contracts.Provider{
		Name: name,
		State: func(ctx context.Context, state string) error {
			given, ok := states[state]
			if !ok {
				return fmt.Errorf("no such state here: add it to the provider's states")
			}
			for _, g := range given {
				if err := appendOnce(ctx, store, g); err != nil {
					return err
				}
			}
			return nil
		},
		Send: func(ctx context.Context, endpoint, caller string, request []byte) ([]byte, string, error) {
			role, sub, _ := strings.Cut(caller, ":")
			ctx = rpc.Strict(auth.WithSigner(auth.With(ctx, auth.Principal{Subject: sub, Role: auth.Role(role)}), signer))
			answer, err := rpc.Call[json.RawMessage](ctx, nc, ns.Subject(endpoint), json.RawMessage(request))
			if e := (*rpc.Error)(nil); errors.As(err, &e) {
				return nil, e.Code, nil
			}
			return answer, "", err
		},
	}
}

// stream is events of one stream a state holds.
type stream struct {
	name   string
	events []domain.Event
	// raw, if set, is appended instead: an event no codec would write.
	raw *eventstore.EventData
}

// appendOnce appends s unless the stream exists (another state made it).
func appendOnce(ctx context.Context, store eventstore.Store, s stream) error {
	var data []eventstore.EventData
	if s.raw != nil {
		data = append(data, *s.raw)
	}
	for _, e := range s.events {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		data = append(data, eventstore.EventData{ID: uuid.New(), Type: e.EventType(), Data: b, Metadata: eventstore.Metadata{Actor: "customer:c-1"}})
	}
	_, err := store.Append(ctx, s.name, eventstore.NoStream(), data)
	if errors.Is(err, eventstore.ErrWrongVersion) {
		return nil
	}
	return err
}

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func customerOf(id string) stream {
	return stream{name: customer.Stream(id), events: []domain.Event{customer.Registered{CustomerID: id, Name: "Ada " + id,
		Email: id + "@example.com", Address: customer.Address{Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}, At: at}}}
}

func productOf(id string, stock int64) stream {
	s := stream{name: inventory.Stream(id), events: []domain.Event{inventory.Added{ProductID: id, SKU: "SKU-" + id, Name: "Lamp " + id, PriceCents: 250, At: at}}}
	if stock > 0 {
		s.events = append(s.events, inventory.Restocked{ProductID: id, Quantity: stock, At: at})
	}
	return s
}

// orderOf is order id of customer c-1 (2 of p-1), then what happened to it.
func orderOf(id string, then ...domain.Event) stream {
	return stream{name: domainorder.Stream(id), events: append([]domain.Event{domainorder.Placed{OrderID: id, CustomerID: "c-1",
		Lines: []domainorder.Line{{ProductID: "p-1", Quantity: 2, UnitPriceCents: 250}}, TotalCents: 500, At: at}}, then...)}
}

// states are the provider states the contracts name, as the events that make each hold.
var states = map[string][]stream{
	"customer c-1 registered": {customerOf("c-1")},
	"customer c-2 registered": {customerOf("c-2")},
	"customer c-4 registered": {customerOf("c-4")},
	"customer c-5 erased": {func() stream {
		s := customerOf("c-5")
		s.events = append(s.events, customer.Erased{CustomerID: "c-5", Fields: []string{"email", "name", "shippingAddress"}, Streams: []string{customer.Stream("c-5")}, At: at})
		return s
	}()},
	"product p-1 on sale with 10 in stock":                  {productOf("p-1", 10)},
	"product p-2 on sale":                                   {productOf("p-2", 0)},
	"order o-1 placed by customer c-1 for 2 of product p-1": {customerOf("c-1"), productOf("p-1", 10), orderOf("o-1")},
	"order o-3 of customer c-1 paid": {customerOf("c-1"), productOf("p-1", 10),
		orderOf("o-3", domainorder.Confirmed{OrderID: "o-3", At: at}, domainorder.Paid{OrderID: "o-3", At: at})},
	"order o-4 of customer c-1 shipped": {customerOf("c-1"), productOf("p-1", 10),
		orderOf("o-4", domainorder.Confirmed{OrderID: "o-4", At: at}, domainorder.Paid{OrderID: "o-4", At: at}, domainorder.Shipped{OrderID: "o-4", At: at})},
	"order cancelled-1 of customer c-1 cancelled": {customerOf("c-1"), orderOf("cancelled-1", domainorder.Cancelled{OrderID: "cancelled-1", Reason: "test", At: at})},
	"payment pay-1 authorized":                    {{name: payment.Stream("pay-1"), events: []domain.Event{payment.Authorized{PaymentID: "pay-1", OrderID: "o-1", AmountCents: 500, At: at}}}},
	"payment pay-2 captured": {{name: payment.Stream("pay-2"), events: []domain.Event{payment.Authorized{PaymentID: "pay-2", OrderID: "o-3", AmountCents: 500, At: at},
		payment.Captured{PaymentID: "pay-2", OrderID: "o-3", AmountCents: 500, At: at}}}},
	// A placed order whose id is a number: the orders read model parks it.
	"the orders read model parked an event": {{name: domainorder.Stream("poison"), raw: &eventstore.EventData{ID: uuid.New(), Type: domainorder.TypePlaced,
		Data: []byte(`{"orderId":42,"customerId":"c-1","lines":[],"totalCents":0,"at":"2026-01-02T03:04:05Z"}`)}}},
}
