package wire

import "time"

// The inventory and catalog services and their endpoints, relative to a Namespace.
const (
	ServiceInventoryCommands = "inventory-commands"
	// EndpointRouteStock (plus an instance id) is where an inventory instance takes the stock
	// commands of the products it owns from the other instances (ProductStock).
	EndpointRouteStock    = "stock.route"
	ServiceCatalogQueries = "catalog-queries"
)

var (
	EndpointAddProduct         = endpoint[AddProduct, CommandReply](ServiceInventoryCommands, "product.add")
	EndpointChangePrice        = endpoint[ChangePrice, CommandReply](ServiceInventoryCommands, "product.change_price")
	EndpointRestock            = endpoint[Restock, CommandReply](ServiceInventoryCommands, "product.restock")
	EndpointDiscontinueProduct = endpoint[IDCommand, CommandReply](ServiceInventoryCommands, "product.discontinue") // ID: the product
	EndpointReserveStock       = endpoint[ReserveStock, CommandReply](ServiceInventoryCommands, "stock.reserve")    // queued by the saga
	EndpointReleaseStock       = endpoint[OrderStock, CommandReply](ServiceInventoryCommands, "stock.release")      // queued by the saga
	EndpointCommitStock        = endpoint[OrderStock, CommandReply](ServiceInventoryCommands, "stock.commit")
	// EndpointQuoteProducts is where the order service learns the catalog's prices of an order's
	// products as it places it (QuoteProducts → Quote); services only.
	EndpointQuoteProducts = endpoint[QuoteProducts, Quote](ServiceInventoryCommands, "product.quote")

	EndpointProductByID   = endpoint[ProductByID, Product](ServiceCatalogQueries, "catalog.product.get")
	EndpointProductsByIDs = endpoint[ProductsByIDs, []Product](ServiceCatalogQueries, "catalog.products.get_many")
	EndpointSearchProduct = endpoint[SearchProducts, ProductPage](ServiceCatalogQueries, "catalog.products.search")
	EndpointLowStock      = endpoint[LowStock, []Product](ServiceCatalogQueries, "catalog.products.low_stock")
)

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

// QuoteProducts asks the catalog's current price of each product. Proven asks for prices checked
// current against the event store; without it, the service may answer from what it holds, and the
// caller conditions its append on the quote's Basis.
type QuoteProducts struct {
	ProductIDs []string `json:"productIds"`
	Proven     bool     `json:"proven,omitempty"`
}

// Quote is the catalog's answer to QuoteProducts: the products it knows, with their price now;
// unknown ones are left out. Basis is what it was answered from: each product's stream at its
// revision.
type Quote struct {
	Products []QuotedProduct `json:"products"`
	Basis    []StreamAt      `json:"basis,omitempty"`
}

// StreamAt is what an answer was decided on: a stream of the event store at a revision (-1: no
// events), as far as events of Types go (those that would change the answer; none: any event).
// An append that depends on the answer holds only while the stream has no such event after
// Revision (eventstore.Condition).
type StreamAt struct {
	Stream   string   `json:"stream"`
	Revision int64    `json:"revision"`
	Types    []string `json:"types,omitempty"`
}

// QuotedProduct is one product of a Quote.
type QuotedProduct struct {
	ProductID    string `json:"productId"`
	PriceCents   int64  `json:"priceCents"`
	Discontinued bool   `json:"discontinued,omitempty"`
}

// OrderStock names an order's reservation on some products: release or commit it.
type OrderStock struct {
	Meta       CommandMeta `json:"meta"`
	OrderID    string      `json:"orderId"`
	ProductIDs []string    `json:"productIds"`
}

// ProductStock is one product's part of an order's stock command (Kind: reserve, release or
// commit), forwarded to the inventory instance that owns the product's stream.
type ProductStock struct {
	Meta      CommandMeta `json:"meta"`
	Kind      string      `json:"kind"`
	ProductID string      `json:"productId"`
	OrderID   string      `json:"orderId"`
	Quantity  int64       `json:"quantity,omitempty"`
	// UnitPriceCents is what the order charges per unit of a reservation.
	UnitPriceCents int64 `json:"unitPriceCents,omitempty"`
}

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
