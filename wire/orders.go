package wire

import "time"

// The order services and their endpoints, relative to a Namespace.
const (
	ServiceOrderCommands = "order-commands"
	ServiceOrderQueries  = "order-queries"
)

var (
	EndpointPlaceOrder    = endpoint[PlaceOrder, CommandReply](ServiceOrderCommands, "order.place")
	EndpointCancelOrder   = endpoint[CancelOrder, CommandReply](ServiceOrderCommands, "order.cancel")
	EndpointConfirmOrder  = endpoint[IDCommand, CommandReply](ServiceOrderCommands, "order.confirm")   // ID: the order; queued by the saga
	EndpointMarkOrderPaid = endpoint[IDCommand, CommandReply](ServiceOrderCommands, "order.mark_paid") // ID: the order
	EndpointShipOrder     = endpoint[IDCommand, CommandReply](ServiceOrderCommands, "order.ship")      // ID: the order
	EndpointDeliverOrder  = endpoint[IDCommand, CommandReply](ServiceOrderCommands, "order.deliver")   // ID: the order

	EndpointOrderByID     = endpoint[OrderByID, Order](ServiceOrderQueries, "orders.get")
	EndpointOrdersByIDs   = endpoint[OrdersByIDs, []Order](ServiceOrderQueries, "orders.get_many")
	EndpointListOrders    = endpoint[ListOrders, OrderPage](ServiceOrderQueries, "orders.list")
	EndpointOrderTimeline = endpoint[OrderByID, []TimelineEntry](ServiceOrderQueries, "orders.timeline")  // empty: no such order
	EndpointActorActivity = endpoint[ActorActivity, ActivityPage](ServiceOrderQueries, "orders.activity") // admins only
)

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
	Lines      []PlaceLine `json:"lines"`
}

// PlaceLine is one product of an order to place. UnitPriceCents, when given, is the price the
// customer expects to pay per unit: it must be the catalog's (the order is refused with the
// current price otherwise); without it, the order is priced from the catalog.
type PlaceLine struct {
	ProductID      string `json:"productId"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents *int64 `json:"unitPriceCents,omitempty"`
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

// TimelineEntry is one event of an order's life, wherever it was recorded: the order's stream, its
// stock reservations, its payment, the products it reserved.
type TimelineEntry struct {
	At            time.Time `json:"at"`
	Stream        string    `json:"stream"`
	Type          string    `json:"type"`
	Position      string    `json:"position"`
	CorrelationID string    `json:"correlationId,omitempty"`
	CausationID   string    `json:"causationId,omitempty"`
	// TraceID is the W3C trace id of the request whose flow recorded the event.
	TraceID string `json:"traceId,omitempty"`
	// Actor is who asked: "customer:<id>", "admin:<subject>", "saga:fulfillment".
	Actor string `json:"actor,omitempty"`
	// Summary says what happened, in a few words.
	Summary string `json:"summary"`
}

// ActorActivity asks what an actor ("customer:<id>", "admin:<subject>", "saga:fulfillment") did,
// newest first: First events (default 50, at most 500) before the position Before (a page's
// EndCursor; empty: from the newest).
type ActorActivity struct {
	Actor       string `json:"actor"`
	First       int    `json:"first,omitempty"`
	Before      string `json:"before,omitempty"`
	MinPosition string `json:"minPosition,omitempty"`
}

// ActivityEntry is one event an actor caused.
type ActivityEntry struct {
	Position      string    `json:"position"`
	Stream        string    `json:"stream"`
	Type          string    `json:"type"`
	CorrelationID string    `json:"correlationId,omitempty"`
	At            time.Time `json:"at"`
}

// ActivityPage is a page of an actor's activity; EndCursor continues it (nil: the last page).
type ActivityPage struct {
	Entries   []ActivityEntry `json:"entries"`
	EndCursor *string         `json:"endCursor,omitempty"`
}
