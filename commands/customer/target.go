package customer

import (
	"context"

	"github.com/orderflow/orderflow/target"
)

// Target is the customer-commands target: the customer service over NATS.
var Target = target.Target{Name: "customer-commands", EventStoreConns: 3, Start: func(ctx context.Context, d target.Deps, _ *target.Process) error {
	_, err := Register(ctx, d.NC, d.Namespace, d.Log, Handlers{Writer: d.Writer, Store: d.Store, Keys: d.Keys})
	return err
}}
