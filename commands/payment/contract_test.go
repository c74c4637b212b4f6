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
	contracts.RequireQueued(t, payment.Handlers{Store: memory.New()}.Jobs())
}
