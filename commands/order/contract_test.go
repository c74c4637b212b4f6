package order_test

import (
	"testing"

	"github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/eventstore/memory"
)

// TestQueuedCommandsContracts: the order service carries out, or refuses as a business outcome,
// every command its consumers recorded queueing for it (the saga's confirm and cancel).
func TestQueuedCommandsContracts(t *testing.T) {
	breaks, replayed := contracts.VerifyQueued(t.Context(), t, order.Handlers{Store: memory.New()}.Jobs(), nil)
	for _, b := range breaks {
		t.Error(b)
	}
	if replayed == 0 {
		t.Fatal("no recorded command names the order service's queued endpoints")
	}
}
