package wire

import "time"

// Service names of the other contexts.
const (
	ServiceCustomerCommands  = "customer-commands"
	ServiceInventoryCommands = "inventory-commands"
	ServicePaymentCommands   = "payment-commands"
	ServiceCatalogQueries    = "catalog-queries"
	ServiceCustomerQueries   = "customer-queries"
)

// Command endpoints, relative to a Namespace.
const (
	EndpointConfirmOrder  = "order.confirm"
	EndpointMarkOrderPaid = "order.mark_paid"
	EndpointShipOrder     = "order.ship"
	EndpointDeliverOrder  = "order.deliver"

	EndpointRegisterCustomer   = "customer.register"
	EndpointChangeAddress      = "customer.change_address"
	EndpointDeactivateCustomer = "customer.deactivate"

	EndpointAddProduct         = "product.add"
	EndpointChangePrice        = "product.change_price"
	EndpointRestock            = "product.restock"
	EndpointDiscontinueProduct = "product.discontinue"
	EndpointReserveStock       = "stock.reserve"
	// EndpointRouteStock (plus an instance id) is where an inventory instance takes the stock
	// commands of the products it owns from the other instances (ProductStock).
	EndpointRouteStock   = "stock.route"
	EndpointReleaseStock = "stock.release"
	EndpointCommitStock  = "stock.commit"

	EndpointAuthorizePayment = "payment.authorize"
	EndpointCapturePayment   = "payment.capture"
	EndpointVoidPayment      = "payment.void"
	EndpointRefundPayment    = "payment.refund"
	EndpointPaymentProvider  = "payment.provider"
)

// IDCommand is a command that names only its aggregate: confirm, mark paid, ship, deliver,
// deactivate, discontinue, capture, void.
type IDCommand struct {
	Meta CommandMeta `json:"meta"`
	ID   string      `json:"id"`
}

// Address is a shipping address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
}

// RegisterCustomer registers a customer; the e-mail address must be free.
type RegisterCustomer struct {
	Meta       CommandMeta `json:"meta"`
	CustomerID string      `json:"customerId"`
	Name       string      `json:"name"`
	Email      string      `json:"email"`
	Address    Address     `json:"shippingAddress"`
}

// ChangeAddress changes a customer's shipping address.
type ChangeAddress struct {
	Meta       CommandMeta `json:"meta"`
	CustomerID string      `json:"customerId"`
	Address    Address     `json:"shippingAddress"`
}

// AddProduct adds a product to the catalog; the sku must be free.
type AddProduct struct {
	Meta       CommandMeta `json:"meta"`
	ProductID  string      `json:"productId"`
	SKU        string      `json:"sku"`
	Name       string      `json:"name"`
	PriceCents int64       `json:"priceCents"`
}

// ChangePrice sets a product's price.
type ChangePrice struct {
	Meta       CommandMeta `json:"meta"`
	ProductID  string      `json:"productId"`
	PriceCents int64       `json:"priceCents"`
}

// Restock adds units to a product's stock.
type Restock struct {
	Meta      CommandMeta `json:"meta"`
	ProductID string      `json:"productId"`
	Quantity  int64       `json:"quantity"`
}

// ReserveStock reserves every line of an order, all or none.
type ReserveStock struct {
	Meta    CommandMeta `json:"meta"`
	OrderID string      `json:"orderId"`
	Lines   []OrderLine `json:"lines"`
}

// OrderStock names an order's reservation on some products: release or commit it.
type OrderStock struct {
	Meta       CommandMeta `json:"meta"`
	OrderID    string      `json:"orderId"`
	ProductIDs []string    `json:"productIds"`
}

// AuthorizePayment asks the card provider to authorize an order's amount.
type AuthorizePayment struct {
	Meta        CommandMeta `json:"meta"`
	PaymentID   string      `json:"paymentId"`
	OrderID     string      `json:"orderId"`
	AmountCents int64       `json:"amountCents"`
}

// RefundPayment refunds part or all of a captured payment.
type RefundPayment struct {
	Meta        CommandMeta `json:"meta"`
	PaymentID   string      `json:"paymentId"`
	AmountCents int64       `json:"amountCents"`
}

// Saga endpoints.
const (
	ServiceSagas              = "sagas"
	EndpointFulfillment       = "sagas.fulfillment.get"
	EndpointFulfillments      = "sagas.fulfillment.list"
	EndpointFulfillmentsByIDs = "sagas.fulfillment.get_many"
	EndpointFulfillmentCounts = "sagas.fulfillment.counts"
)

// Fulfillment is an order's fulfillment saga, as operators and frontends see it.
type Fulfillment struct {
	OrderID   string     `json:"orderId"`
	Step      string     `json:"step"`
	Outcome   string     `json:"outcome,omitempty"`
	Attempts  int64      `json:"attempts"`
	Deadline  *time.Time `json:"deadline,omitempty"`
	LastError string     `json:"lastError,omitempty"`
	// Retries: re-sends of the current step's commands. Awaiting: compensations sent and not yet
	// done. Stuck: the saga stopped re-sending and waits for an operator.
	Retries           int       `json:"retries,omitempty"`
	Awaiting          []string  `json:"awaiting,omitempty"`
	Stuck             bool      `json:"stuck,omitempty"`
	StockHeld         bool      `json:"stockHeld"`
	PaymentAuthorized bool      `json:"paymentAuthorized"`
	StartedAt         time.Time `json:"startedAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

// FulfillmentByOrder asks for one order's saga.
type FulfillmentByOrder struct {
	OrderID     string `json:"orderId"`
	MinPosition string `json:"minPosition,omitempty"`
}

// FulfillmentsByOrders asks for the sagas of many orders (those that have none are left out).
type FulfillmentsByOrders struct {
	OrderIDs    []string `json:"orderIds"`
	MinPosition string   `json:"minPosition,omitempty"`
}

// ListFulfillments asks for the latest sagas, optionally in one step, optionally only stuck ones.
type ListFulfillments struct {
	Step  string `json:"step,omitempty"`
	First int    `json:"first,omitempty"`
	Stuck bool   `json:"stuck,omitempty"`
}

// FulfillmentCounts are the saga's figures: in flight and finished by outcome.
type FulfillmentCounts struct {
	InFlight    int64 `json:"inFlight"`
	Confirmed   int64 `json:"confirmed"`
	Compensated int64 `json:"compensated"`
	TimedOut    int64 `json:"timedOut"`
	Stuck       int64 `json:"stuck"`
	Outbox      int64 `json:"outbox"`
}

// ProductStock is one product's part of an order's stock command (Kind: reserve, release or
// commit), forwarded to the inventory instance that owns the product's stream.
type ProductStock struct {
	Meta      CommandMeta `json:"meta"`
	Kind      string      `json:"kind"`
	ProductID string      `json:"productId"`
	OrderID   string      `json:"orderId"`
	Quantity  int64       `json:"quantity,omitempty"`
}
