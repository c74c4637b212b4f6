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
	contracts.RequireQueued(t, order.Handlers{Store: memory.New()}.Jobs())
}
