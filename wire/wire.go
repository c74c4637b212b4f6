// Package wire is the contract between the gateway and the services it calls over NATS: the
// subjects and the JSON shapes of requests and answers. It holds plain data, no behaviour, so
// both sides depend on it and neither on the other.
package wire

import "time"

// Service names, as NATS micro discovery lists them.
const (
	ServiceOrderCommands = "order-commands"
	ServiceOrderQueries  = "order-queries"
)

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
func (n Namespace) Progress(name string) string { return n.Subject("projection." + name + ".progress") }

// Endpoints of the order command and query services, relative to a Namespace.
const (
	EndpointPlaceOrder  = "order.place"
	EndpointCancelOrder = "order.cancel"
	EndpointOrderByID   = "orders.get"
	EndpointOrdersByIDs = "orders.get_many"
	EndpointListOrders  = "orders.list"
)

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
}

// CommandMeta identifies a command; see commands.Meta.
type CommandMeta struct {
	CommandID     string `json:"commandId"`
	CorrelationID string `json:"correlationId,omitempty"`
	TraceParent   string `json:"traceparent,omitempty"`
	TraceState    string `json:"tracestate,omitempty"`
}

// OrderLine is one product of an order; money in integer cents.
type OrderLine struct {
	ProductID      string `json:"productId"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
}

// PlaceOrder asks the order service to place an order.
type PlaceOrder struct {
	Meta       CommandMeta `json:"meta"`
	OrderID    string      `json:"orderId"`
	CustomerID string      `json:"customerId"`
	Lines      []OrderLine `json:"lines"`
}

// CancelOrder asks the order service to cancel an order.
type CancelOrder struct {
	Meta    CommandMeta `json:"meta"`
	OrderID string      `json:"orderId"`
	Reason  string      `json:"reason,omitempty"`
	// ByCustomer, when set, is the customer asking (the gateway sets it for customer tokens):
	// another customer's order is not found to it.
	ByCustomer string `json:"byCustomer,omitempty"`
}

// CommandReply answers a carried-out command.
type CommandReply struct {
	ID       string `json:"id"`
	Position string `json:"position"`
}

// OrderByID asks for one order. MinPosition, when set, asks for an answer from a read model at
// or past that position (read your writes).
type OrderByID struct {
	ID          string `json:"id"`
	MinPosition string `json:"minPosition,omitempty"`
}

// OrdersByIDs asks for many orders at once; unknown ids are left out.
type OrdersByIDs struct {
	IDs         []string `json:"ids"`
	MinPosition string   `json:"minPosition,omitempty"`
}

// ListOrders asks for a page of orders, newest first.
type ListOrders struct {
	CustomerID  string `json:"customerId,omitempty"`
	Status      string `json:"status,omitempty"`
	First       int    `json:"first,omitempty"`
	After       string `json:"after,omitempty"`
	MinPosition string `json:"minPosition,omitempty"`
}

// Order is the orders read model's view of an order.
type Order struct {
	ID           string      `json:"id"`
	CustomerID   string      `json:"customerId"`
	Status       string      `json:"status"`
	TotalCents   int64       `json:"totalCents"`
	Lines        []OrderLine `json:"lines"`
	PlacedAt     time.Time   `json:"placedAt"`
	UpdatedAt    time.Time   `json:"updatedAt"`
	CancelledAt  *time.Time  `json:"cancelledAt,omitempty"`
	CancelReason string      `json:"cancelReason,omitempty"`
	// History is every status the order went through, oldest first.
	History []StatusChange `json:"history"`
}

// OrderPage is one page of ListOrders. Cursors[i] is Orders[i]'s cursor.
type OrderPage struct {
	Orders      []Order  `json:"orders"`
	Cursors     []string `json:"cursors"`
	EndCursor   string   `json:"endCursor,omitempty"`
	HasNextPage bool     `json:"hasNextPage"`
}

// StatusChange is one step of an order's history.
type StatusChange struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// Query endpoints of the catalog and customers read models.
const (
	EndpointProductByID    = "catalog.product.get"
	EndpointProductsByIDs  = "catalog.products.get_many"
	EndpointSearchProduct  = "catalog.products.search"
	EndpointLowStock       = "catalog.products.low_stock"
	EndpointCustomerByID   = "customers.get"
	EndpointCustomersByIDs = "customers.get_many"
)

// Product is the catalog's view of a product.
type Product struct {
	ID           string    `json:"id"`
	SKU          string    `json:"sku"`
	Name         string    `json:"name"`
	PriceCents   int64     `json:"priceCents"`
	OnHand       int64     `json:"onHand"`
	Reserved     int64     `json:"reserved"`
	Available    int64     `json:"available"`
	Discontinued bool      `json:"discontinued"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// ProductByID asks for one product; see OrderByID for MinPosition.
type ProductByID struct {
	ID          string `json:"id"`
	MinPosition string `json:"minPosition,omitempty"`
}

// ProductsByIDs asks for many products at once; unknown ids are left out.
type ProductsByIDs struct {
	IDs         []string `json:"ids"`
	MinPosition string   `json:"minPosition,omitempty"`
}

// SearchProducts asks for products whose name or sku starts with Query (case-insensitive),
// by name.
type SearchProducts struct {
	Query       string `json:"query,omitempty"`
	First       int    `json:"first,omitempty"`
	After       string `json:"after,omitempty"`
	MinPosition string `json:"minPosition,omitempty"`
}

// LowStock asks for products on sale with at most Threshold units available, fewest first.
type LowStock struct {
	Threshold   int64  `json:"threshold"`
	First       int    `json:"first,omitempty"`
	MinPosition string `json:"minPosition,omitempty"`
}

// ProductPage is one page of products. Cursors[i] is Products[i]'s cursor.
type ProductPage struct {
	Products    []Product `json:"products"`
	Cursors     []string  `json:"cursors"`
	EndCursor   string    `json:"endCursor,omitempty"`
	HasNextPage bool      `json:"hasNextPage"`
}

// Customer is the customers read model's view of a customer.
type Customer struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	Email              string    `json:"email"`
	Address            Address   `json:"shippingAddress"`
	Active             bool      `json:"active"`
	RegisteredAt       time.Time `json:"registeredAt"`
	OrderCount         int64     `json:"orderCount"`
	LifetimeSpendCents int64     `json:"lifetimeSpendCents"`
}

// CustomersByIDs asks for many customers at once; unknown ids are left out.
type CustomersByIDs struct {
	IDs         []string `json:"ids"`
	MinPosition string   `json:"minPosition,omitempty"`
}

// CustomerByID asks for one customer.
type CustomerByID struct {
	ID          string `json:"id"`
	MinPosition string `json:"minPosition,omitempty"`
}
