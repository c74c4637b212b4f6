package inventory_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/commands/inventory"
	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/eventstore/memory"
)

// TestQueuedCommandsContracts: the inventory service carries out, or refuses as a business outcome,
// every command its consumers recorded queueing for it.
func TestQueuedCommandsContracts(t *testing.T) {
	contracts.RequireQueued(t, inventory.Handlers{Store: memory.New()}.Jobs())
}

// TestABrokenQueuedCommandNamesTheInteraction: when the fields a consumer sends and the ones the
// provider reads part (here the reservation's orderId arrives under another name, as it would
// after either side renamed it), the provider's contract test fails naming the consumer and the
// interaction.
func TestABrokenQueuedCommandNamesTheInteraction(t *testing.T) {
	renamed := func(endpoint string, msg []byte) []byte {
		if endpoint != "stock.reserve" {
			return msg
		}
		return bytes.Replace(msg, []byte(`"orderId"`), []byte(`"order"`), 1)
	}
	breaks, _ := contracts.VerifyQueued(t.Context(), t, inventory.Handlers{Store: memory.New()}.Jobs(), renamed)
	// Once for this release's saga, once for the released one still running.
	if len(breaks) != 2 {
		t.Fatalf("breaks %q; want two (this release's saga and the released one)", breaks)
	}
	for _, b := range breaks {
		if !strings.Contains(b, "consumer fulfillment-saga") || !strings.Contains(b, "interaction stock.reserve:") {
			t.Errorf("break %q does not name the saga and stock.reserve", b)
		}
	}
}
