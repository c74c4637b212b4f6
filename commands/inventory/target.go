package inventory

import (
	"context"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/target"
)

// Target is the inventory-commands target: the inventory service over NATS, and the stock
// commands the fulfillment saga queues. Several instances share out the products: each product's
// stock commands go to its owner (Router); alone, an instance owns them all.
var Target = target.Target{Name: "inventory-commands", EventStoreConns: 6, Start: func(ctx context.Context, d target.Deps, _ *target.Process) error {
	h := Handlers{Writer: d.Writer, Store: d.Store, Router: NewRouter(d.NC, d.Namespace, d.Log)}
	if _, err := Register(ctx, d.NC, d.Namespace, d.Log, h); err != nil {
		return err
	}
	return jobs.Consume(ctx, d.JS, d.Namespace, "inventory-commands", d.Log, h.Jobs())
}}
