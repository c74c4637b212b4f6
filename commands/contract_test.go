package commands_test

import (
	"testing"

	"github.com/orderflow/orderflow/commands/inventory"
	"github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/commands/payment"
	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/internal/jobs"
)

// TestQueuedCommandsContracts: each command service's queued handlers, alone, carry out or refuse
// as a business outcome every command its consumers recorded queueing for it (the saga's).
func TestQueuedCommandsContracts(t *testing.T) {
	for name, handlers := range map[string]map[string]jobs.Handler{
		"order":     order.Handlers{Store: memory.New()}.Jobs(),
		"inventory": inventory.Handlers{Store: memory.New()}.Jobs(),
		"payment":   payment.Handlers{Store: memory.New()}.Jobs(),
	} {
		t.Run(name, func(t *testing.T) { contracts.RequireQueued(t, handlers) })
	}
}
