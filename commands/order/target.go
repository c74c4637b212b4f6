package order

import (
	"context"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/target"
)

// Target is the order-commands target: the order service over NATS, and the order commands the
// fulfillment saga queues (confirm, cancel).
var Target = target.Target{Name: "order-commands", EventStoreConns: 6, Start: func(ctx context.Context, d target.Deps, _ *target.Process) error {
	ask := Services{NC: d.NC, Namespace: d.Namespace}
	h := Handlers{Writer: d.Writer, Catalog: ask, Customers: ask}
	if _, err := Register(ctx, d.NC, d.Namespace, d.Log, h); err != nil {
		return err
	}
	return jobs.Consume(ctx, d.JS, d.Namespace, "order-commands", d.Log, h.Jobs())
}}
