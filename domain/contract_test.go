package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
)

// logCodec is how the log's readers read every context's events: each context's codec, its
// upcasts included, chosen by the event type's prefix.
func logCodec(codecs ...domain.Events) contracts.Codec {
	byPrefix := map[string]domain.Events{}
	for _, c := range codecs {
		for _, typ := range c.Types() {
			prefix, _, _ := strings.Cut(typ, ".")
			byPrefix[prefix] = c
		}
	}
	pick := func(typ string) domain.Events {
		prefix, _, _ := strings.Cut(typ, ".")
		if c, ok := byPrefix[prefix]; ok {
			return c
		}
		return codecs[0]
	}
	return contracts.Codec{
		Decode: func(typ string, data []byte) (domain.Event, error) { return pick(typ).Decode(typ, data) },
		Encode: func(e domain.Event) (string, []byte, error) { return pick(e.EventType()).Encode(e) },
	}
}

// TestEventContracts: every event type a read model consumes is still read by the domain's
// codecs, and the events the domain writes today hold every field the read model reads.
func TestEventContracts(t *testing.T) {
	contracts.RequireEvents(t, logCodec(customer.Codec.Events(), inventory.Codec.Events(), order.Codec.Events(), payment.Codec.Events()))
}

// placedWithoutCustomer is order.placed.v1 as a careless change would leave it: no customerId.
type placedWithoutCustomer struct {
	OrderID    string       `json:"orderId"`
	Lines      []order.Line `json:"lines"`
	TotalCents int64        `json:"totalCents"`
	At         time.Time    `json:"at"`
}

func (placedWithoutCustomer) EventType() string { return order.TypePlaced }

// TestARemovedEventFieldNamesTheReadModel: an order codec whose placed event lost its customerId
// breaks the orders and customers read models' contracts, and the failures name each read model,
// the event type and the field.
func TestARemovedEventFieldNamesTheReadModel(t *testing.T) {
	broken := domain.NewCodec("order", domain.Of[placedWithoutCustomer, domain.Event](), domain.Of[order.Cancelled, domain.Event](),
		domain.Of[order.Confirmed, domain.Event](), domain.Of[order.Paid, domain.Event](), domain.Of[order.Shipped, domain.Event](), domain.Of[order.Delivered, domain.Event]())
	breaks, _ := contracts.VerifyEvents(t, logCodec(customer.Codec.Events(), inventory.Codec.Events(), broken.Events(), payment.Codec.Events()))
	for _, consumer := range []string{"orders-read-model", "customers-read-model"} {
		found := false
		for _, b := range breaks {
			found = found || strings.Contains(b, "consumer "+consumer) && strings.Contains(b, "event order.placed.v1") && strings.Contains(b, "$.customerId is missing")
		}
		if !found {
			t.Errorf("no break names %s, order.placed.v1 and its customerId: %q", consumer, breaks)
		}
	}
	if len(breaks) != 2 {
		t.Errorf("breaks %q: want the two read models that read customerId", breaks)
	}
}

// TestEveryEventWithAnOrderSaysSo: an event type of any context that names an order (an orderId
// field) is a domain.AboutOrder answering it, so that what follows orders (the saga) sees it
// without a type switch to keep up to date.
func TestEveryEventWithAnOrderSaysSo(t *testing.T) {
	n := 0
	for _, c := range []domain.Events{customer.Codec.Events(), inventory.Codec.Events(), order.Codec.Events(), payment.Codec.Events()} {
		for _, typ := range c.Types() {
			e, err := c.Decode(typ, []byte(`{"orderId":"o-9"}`))
			if err != nil {
				t.Fatal(err)
			}
			field, named := reflect.TypeOf(e).FieldByName("OrderID")
			about, ok := e.(domain.AboutOrder)
			switch {
			case named && field.Type.Kind() == reflect.String && (!ok || about.AboutOrder() != "o-9"):
				t.Errorf("%s names an order but does not say which (domain.AboutOrder)", typ)
			case ok && !named:
				t.Errorf("%s says it is about an order but names none", typ)
			case ok:
				n++
			}
		}
	}
	if n < 12 {
		t.Errorf("%d event types about an order, want at least 12", n)
	}
}
