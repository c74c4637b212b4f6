// Package order is the order command service: one handler per command, served on NATS micro.
package order

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Handlers carries out order commands against an event store.
type Handlers struct {
	// Writer carries out the commands on orders' streams.
	Writer *commands.Writer
	// Catalog prices an order's lines and Customers says whether its customer may order, as it is
	// placed (Services over NATS).
	Catalog   Catalog
	Customers Customers
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// aggregate is an order's stream; placing it creates it (not read first).
var aggregate = commands.NewDecider(model.Codec, model.Evolve, model.Stream, model.Validate, model.Decide).
	Creating(func(c model.Command) bool { _, ok := c.(model.Place); return ok })

// Register serves the handlers as the order-commands NATS micro service in namespace ns.
// It stops with ctx.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, h Handlers) (micro.Service, error) {
	return commands.Service(wire.ServiceOrderCommands, "places orders and moves them through their lifecycle", ns).Serve(ctx, nc, log,
		rpc.On("place", wire.EndpointPlaceOrder, h.Place),
		rpc.On("cancel", wire.EndpointCancelOrder, h.Cancel),
		rpc.Staff(rpc.On("confirm", wire.EndpointConfirmOrder, h.Confirm)),
		rpc.Staff(rpc.On("mark_paid", wire.EndpointMarkOrderPaid, h.MarkPaid)),
		rpc.Staff(rpc.On("ship", wire.EndpointShipOrder, h.Ship)),
		rpc.Staff(rpc.On("deliver", wire.EndpointDeliverOrder, h.Deliver)),
	)
}

// Jobs are the order commands process managers queue (package jobs).
func (h Handlers) Jobs() map[string]jobs.Handler {
	return commands.Jobs(commands.Classify,
		commands.JobOn(wire.EndpointConfirmOrder, h.Confirm),
		commands.JobOn(wire.EndpointCancelOrder, h.Cancel),
	)
}
