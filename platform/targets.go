package platform

import (
	customercmd "github.com/orderflow/orderflow/commands/customer"
	inventorycmd "github.com/orderflow/orderflow/commands/inventory"
	ordercmd "github.com/orderflow/orderflow/commands/order"
	paymentcmd "github.com/orderflow/orderflow/commands/payment"
	"github.com/orderflow/orderflow/dev/cardsim"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/projections/activity"
	catalogrm "github.com/orderflow/orderflow/projections/catalog"
	customersrm "github.com/orderflow/orderflow/projections/customers"
	orderrm "github.com/orderflow/orderflow/projections/orders"
	catalogqueries "github.com/orderflow/orderflow/queries/catalog"
	customerqueries "github.com/orderflow/orderflow/queries/customers"
	orderqueries "github.com/orderflow/orderflow/queries/orders"
	"github.com/orderflow/orderflow/sagas/fulfillment"
	"github.com/orderflow/orderflow/target"
)

// ReadModels are the platform's rebuildable read models: the projector target runs them, and
// `orderflow projections` operates on them. Each lives in the schema of its name.
var ReadModels = []projections.Projection{orderrm.Projection{}, catalogrm.Projection{}, customersrm.Projection{}, activity.Projection{}}

// Targets are every target a process can run: the platform's own, each with cfg's settings of it,
// in the order a process starts them (the card gateway before the payment service that calls it;
// the gateway last, once what it calls serves), then Plugins.
func Targets(cfg Config) []target.Target {
	return append(own(cfg), Plugins...)
}

func own(cfg Config) []target.Target {
	return []target.Target{
		ordercmd.Target, customercmd.Target, inventorycmd.Target, cardsim.Target(cfg.PaymentProvider), paymentcmd.Target(cfg.PaymentProviderURL),
		projections.Target(ReadModels...), orderqueries.Target, catalogqueries.Target, customerqueries.Target,
		fulfillment.Target(fulfillment.Options{PaymentTimeout: cfg.PaymentTimeout, StepTimeout: cfg.StepTimeout, Linger: cfg.SagaLinger}), gateway.Target(cfg.security),
	}
}

// Plugins are targets a process can run besides the platform's own, when named: an embedder's,
// or a test's probe.
var Plugins []target.Target

// TargetNames are the names of Targets.
func TargetNames() []string {
	var names []string
	for _, t := range Targets(Config{}) {
		names = append(names, t.Name)
	}
	return names
}

// ReadModel finds a read model by name.
func ReadModel(name string) (projections.Projection, bool) {
	for _, rm := range ReadModels {
		if rm.Name() == name {
			return rm, true
		}
	}
	return nil, false
}
