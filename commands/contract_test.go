package commands_test

import (
	"testing"

	"github.com/orderflow/orderflow/commands/commandstest"
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
	stock := memory.New()
	for name, handlers := range map[string]map[string]jobs.Handler{
		"order":     order.Handlers{Writer: commandstest.Writer(memory.New())}.Jobs(),
		"inventory": inventory.Handlers{Writer: commandstest.Writer(stock), Store: stock}.Jobs(),
		"payment":   payment.Handlers{Writer: commandstest.Writer(memory.New())}.Jobs(),
	} {
		t.Run(name, func(t *testing.T) { contracts.RequireQueued(t, handlers) })
	}
}
