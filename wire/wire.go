// Package wire is the contract between orderflow's services and their callers over NATS: per
// service (one file each: orders, customers, inventory and catalog, payments, sagas, projections)
// the subjects and the JSON shapes of requests and answers, and what every service shares
// (namespaces, command metadata and replies, progress notes and their live-query keys). It holds
// plain data, no behaviour, so both sides depend on it and neither on the other.
package wire

import "slices"

// Namespace prefixes every subject of one orderflow installation, so that several (a staging
// and a production, parallel test runs) can share one NATS cluster without answering each
// other's requests. The zero value is DefaultNamespace.
type Namespace string

// DefaultNamespace is the prefix when none is configured.
const DefaultNamespace Namespace = "orderflow"

// Subject returns endpoint e (one of the Endpoint constants) in namespace n.
func (n Namespace) Subject(e string) string {
	if n == "" {
		n = DefaultNamespace
	}
	return string(n) + "." + e
}

// Progress is where the projector of read model name publishes the position it has committed
// (a Progress message) after every batch.
func (n Namespace) Progress(name string) string { return n.Subject(ProgressOf(name)) }

// ProgressOf is Progress relative to a Namespace.
func ProgressOf(name string) string { return "projection." + name + ".progress" }

// Progress announces that a read model reflects the log up to Position.
type Progress struct {
	Projection string `json:"projection"`
	Position   string `json:"position"`
	// Unchanged: the read model's rows are as they were at the previous announcement (the log
	// moved past events it ignores). Caches of its rows stay valid.
	Unchanged bool `json:"unchanged,omitempty"`
	// Changed names what the batch changed, as its read model says (the orders read model:
	// "order:ID" for each order, "customer:ID" for each customer with a new order), so that live
	// queries read again only what moved. Absent: not said (too many, or a read model that does
	// not say); a follower must then assume anything changed.
	Changed []string `json:"changed,omitempty"`
	// Partitions are the partitions (of Of) that reached Position: a read model is split into
	// partitions worked on by several workers, and is as far as its slowest partition. Absent:
	// the whole read model reached it.
	Partitions []int `json:"partitions,omitempty"`
	Of         int   `json:"of,omitempty"`
}

// OrderKey is the live-query key of order id: a projector's Progress.Changed names it when that
// order changed.
func OrderKey(id string) string { return "order:" + id }

// CustomerOrdersKey is the live-query key of customer id's orders: named when that customer has a
// new order.
func CustomerOrdersKey(customerID string) string { return "customer:" + customerID }

// CommandMeta identifies a command; see commands.Meta.
type CommandMeta struct {
	CommandID     string `json:"commandId"`
	CorrelationID string `json:"correlationId,omitempty"`
	// Actor is who asks: "customer:<id>", "admin:<subject>", "saga:fulfillment".
	Actor       string `json:"actor,omitempty"`
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// IDCommand is a command that names only its aggregate: confirm, mark paid, ship, deliver,
// deactivate, discontinue, capture, void.
type IDCommand struct {
	Meta CommandMeta `json:"meta"`
	ID   string      `json:"id"`
}

// CommandReply answers a carried-out command.
type CommandReply struct {
	ID       string `json:"id"`
	Position string `json:"position"`
}

// Endpoint is one endpoint of a service: the service that answers it, its subject relative to a
// Namespace, and the types of its request (Req) and answer (Resp). rpc.On serves one with a
// handler of those types and rpc.Ask calls one with a request of its type: a mismatch between a
// caller and a service does not compile.
type Endpoint[Req, Resp any] struct {
	Service, Name string
}

// In is e's subject in namespace n.
func (e Endpoint[Req, Resp]) In(n Namespace) string { return n.Subject(e.Name) }

// Route is an endpoint without its types: the service that answers it and its subject relative to
// a Namespace.
type Route struct{ Service, Name string }

// Route is e without its types.
func (e Endpoint[Req, Resp]) Route() Route { return Route{e.Service, e.Name} }

// routes are the endpoints declared with endpoint: every endpoint of the wire.
var routes []Route

// endpoint declares an endpoint of service, so that Routes lists it.
func endpoint[Req, Resp any](service, name string) Endpoint[Req, Resp] {
	routes = append(routes, Route{service, name})
	return Endpoint[Req, Resp]{service, name}
}

// Routes are every endpoint of the wire, or those of the services named.
func Routes(services ...string) []Route {
	var out []Route
	for _, r := range routes {
		if len(services) == 0 || slices.Contains(services, r.Service) {
			out = append(out, r)
		}
	}
	return out
}
