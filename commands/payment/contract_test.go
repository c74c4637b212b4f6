package payment_test

import (
	"testing"

	"github.com/orderflow/orderflow/commands/payment"
	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/eventstore/memory"
)

// TestQueuedCommandsContracts: the payment service carries out, or refuses as a business outcome,
// every command its consumers recorded queueing for it.
func TestQueuedCommandsContracts(t *testing.T) {
	breaks, replayed := contracts.VerifyQueued(t.Context(), t, payment.Handlers{Store: memory.New()}.Jobs(), nil)
	for _, b := range breaks {
		t.Error(b)
	}
	if replayed == 0 {
		t.Fatal("no recorded command names the payment service's queued endpoints")
	}
}
