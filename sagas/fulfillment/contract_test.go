package fulfillment_test

import (
	"encoding/json"
	"testing"

	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/sagas/fulfillment"
)

// TestQueuedCommandsContract records what the saga queues on paths that send each of its six
// commands (one example message per endpoint): its contract with the command services (contracts/fulfillment-saga-jobs.json),
// which their tests verify on their own.
func TestQueuedCommandsContract(t *testing.T) {
	paths := [][]any{
		{placed, reserved, authorized, confirmed},
		{placed, rejected, cancelled},
		{placed, reserved, declined, cancelled},
		{placed, reserved, cancelled, authorized},
	}
	examples := map[string][]byte{}
	for _, events := range paths {
		var s *fulfillment.State
		for _, e := range events {
			var cmds []fulfillment.Command
			s, cmds = fulfillment.React(s, e, t0, opts)
			for _, c := range cmds {
				if _, seen := examples[c.Endpoint]; seen {
					continue
				}
				b, err := json.Marshal(c.Payload)
				if err != nil {
					t.Fatal(err)
				}
				examples[c.Endpoint] = b
			}
		}
	}
	if len(examples) != 6 {
		t.Fatalf("the paths queue %d kinds of command, want the saga's six", len(examples))
	}
	contracts.Check(t, "fulfillment-saga-jobs.json", contracts.Queued("fulfillment-saga", examples))
}
