package inventory_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/contracts"
)

// TestABrokenQueuedCommandNamesTheInteraction: when the fields a consumer sends and the ones the
// provider reads part, as they would after either side renamed one, the provider's contract test
// fails naming the consumer and the interaction: a required field (the reservation's orderId,
// which the provider then finds missing) and an optional one (the release's meta.correlationId,
// which the provider would ignore).
func TestABrokenQueuedCommandNamesTheInteraction(t *testing.T) {
	for _, c := range []struct{ endpoint, field string }{{"stock.reserve", `"orderId"`}, {"stock.release", `"correlationId"`}} {
		renamed := func(endpoint string, msg []byte) []byte {
			if endpoint != c.endpoint {
				return msg
			}
			return bytes.Replace(msg, []byte(c.field), []byte(`"renamed"`), 1)
		}
		breaks, _ := contracts.VerifyQueued(t.Context(), t, fresh().Jobs(), renamed)
		// Once for this release's saga, once for the released one still running.
		if len(breaks) != 2 {
			t.Fatalf("%s %s: breaks %q; want two (this release's saga and the released one)", c.endpoint, c.field, breaks)
		}
		for _, b := range breaks {
			if !strings.Contains(b, "consumer fulfillment-saga") || !strings.Contains(b, "interaction "+c.endpoint+":") {
				t.Errorf("break %q does not name the saga and %s", b, c.endpoint)
			}
		}
	}
}
