package api

import (
	"context"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
)

// Bodies of the commands, as REST decodes them strictly and GraphQL builds them from arguments.
type (
	PlaceOrderBody struct {
		OrderID    string           `json:"orderId"`
		CustomerID string           `json:"customerId"`
		Lines      []wire.PlaceLine `json:"lines"`
	}
	CancelOrderBody struct {
		Reason string `json:"reason"`
	}
	RegisterCustomerBody struct {
		CustomerID string       `json:"customerId"`
		Name       string       `json:"name"`
		Email      string       `json:"email"`
		Address    wire.Address `json:"shippingAddress"`
	}
	AddressBody struct {
		Address wire.Address `json:"shippingAddress"`
	}
	AddProductBody struct {
		ProductID  string `json:"productId"`
		SKU        string `json:"sku"`
		Name       string `json:"name"`
		PriceCents int64  `json:"priceCents"`
	}
	PriceBody struct {
		PriceCents int64 `json:"priceCents"`
	}
	QuantityBody struct {
		Quantity int64 `json:"quantity"`
	}
	AmountBody struct {
		AmountCents int64 `json:"amountCents"`
	}
	// NoBody is the body of a command that takes none.
	NoBody struct{}
)

// Commands are every command of the edge, in the order the OpenAPI document lists them.
var Commands = []Operation{
	PlaceOrder, CancelOrder, ShipOrder, DeliverOrder,
	RegisterCustomer, ChangeAddress, DeactivateCustomer, EraseCustomer,
	AddProduct, ChangePrice, Restock, DiscontinueProduct,
	CapturePayment, RefundPayment,
}

var (
	PlaceOrder = &Command[PlaceOrderBody, wire.PlaceOrder, wire.CommandReply]{
		Doc: Doc{Method: "POST", Path: "/api/v1/orders", ID: "placeOrder", Summary: "Place an order", Tag: "orders", Created: true, IDField: "orderId",
			Schema: object([]string{"customerId", "lines"}, map[string]any{
				"orderId": id("optional: your id for the order; a UUID is made otherwise"), "customerId": id("who orders"),
				"lines": map[string]any{"type": "array", "minItems": 1, "maxItems": order.MaxLines, "items": lineSchema},
			}),
			Example: map[string]any{"customerId": "c-1", "lines": []any{map[string]any{"productId": "p-1", "quantity": 2, "unitPriceCents": 1250}}},
			Errors:  []int{409}, ForCustomers: true},
		Endpoint: wire.EndpointPlaceOrder,
		Request: func(_ context.Context, _ string, b *PlaceOrderBody, m wire.CommandMeta) (wire.PlaceOrder, string) {
			id := newID(b.OrderID, m)
			return wire.PlaceOrder{Meta: m, OrderID: id, CustomerID: b.CustomerID, Lines: b.Lines}, id
		},
		Customer: func(p auth.Principal, _ string, b *PlaceOrderBody) *Problem { return ownCustomerID(p, &b.CustomerID) },
	}
	CancelOrder = &Command[CancelOrderBody, wire.CancelOrder, wire.CommandReply]{
		Doc: Doc{Method: "POST", Path: "/api/v1/orders/{id}/cancel", ID: "cancelOrder", Summary: "Cancel an order", Tag: "orders", IDField: "orderId", IDParam: "id",
			OptionalBody: true, Schema: object(nil, map[string]any{"reason": text("why", order.MaxReasonLength)}),
			Example: map[string]any{"reason": "changed my mind"}, Errors: []int{404, 409}, ForCustomers: true},
		Endpoint: wire.EndpointCancelOrder,
		Request: func(ctx context.Context, id string, b *CancelOrderBody, m wire.CommandMeta) (wire.CancelOrder, string) {
			by := ""
			if p, ok := auth.From(ctx); ok && !p.IsAdmin() {
				by = p.Subject // the order service finds no order of another customer
			}
			return wire.CancelOrder{Meta: m, OrderID: id, Reason: b.Reason, ByCustomer: by}, id
		},
		Customer: func(auth.Principal, string, *CancelOrderBody) *Problem { return nil },
	}
	ShipOrder = idCommand(Doc{Method: "POST", Path: "/api/v1/orders/{id}/ship", ID: "shipOrder", Summary: "Mark an order shipped", Tag: "orders",
		IDField: "orderId", IDParam: "id", Errors: []int{404, 409}}, wire.EndpointShipOrder)
	DeliverOrder = idCommand(Doc{Method: "POST", Path: "/api/v1/orders/{id}/deliver", ID: "deliverOrder", Summary: "Mark an order delivered", Tag: "orders",
		IDField: "orderId", IDParam: "id", Errors: []int{404, 409}}, wire.EndpointDeliverOrder)

	RegisterCustomer = &Command[RegisterCustomerBody, wire.RegisterCustomer, wire.CommandReply]{
		Doc: Doc{Method: "POST", Path: "/api/v1/customers", ID: "registerCustomer", Summary: "Register a customer", Tag: "customers", Created: true, IDField: "customerId",
			Schema: object([]string{"name", "email", "shippingAddress"}, map[string]any{
				"customerId": id("optional: your id for the customer"), "name": text("full name", customer.MaxNameLength),
				"email":           map[string]any{"type": "string", "format": "email", "maxLength": customer.MaxEmailLength, "description": "unique among customers"},
				"shippingAddress": addressSchema,
			}),
			Example: map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "shippingAddress": map[string]any{"line1": "1 Main St", "city": "Paris", "postalCode": "75001", "country": "FR"}},
			Errors:  []int{409}, ForCustomers: true},
		Endpoint: wire.EndpointRegisterCustomer,
		Request: func(_ context.Context, _ string, b *RegisterCustomerBody, m wire.CommandMeta) (wire.RegisterCustomer, string) {
			id := newID(b.CustomerID, m)
			return wire.RegisterCustomer{Meta: m, CustomerID: id, Name: b.Name, Email: b.Email, Address: b.Address}, id
		},
		Customer: func(p auth.Principal, _ string, b *RegisterCustomerBody) *Problem {
			return ownCustomerID(p, &b.CustomerID)
		},
	}
	ChangeAddress = &Command[AddressBody, wire.ChangeAddress, wire.CommandReply]{
		Doc: Doc{Method: "POST", Path: "/api/v1/customers/{id}/address", ID: "changeAddress", Summary: "Change a customer's shipping address", Tag: "customers",
			IDField: "customerId", IDParam: "id", Schema: object([]string{"shippingAddress"}, map[string]any{"shippingAddress": addressSchema}),
			Example: map[string]any{"shippingAddress": map[string]any{"line1": "2 Side St", "city": "Lyon", "postalCode": "69001", "country": "FR"}},
			Errors:  []int{404, 409}, ForCustomers: true},
		Endpoint: wire.EndpointChangeAddress,
		Request: func(_ context.Context, id string, b *AddressBody, m wire.CommandMeta) (wire.ChangeAddress, string) {
			return wire.ChangeAddress{Meta: m, CustomerID: id, Address: b.Address}, id
		},
		Customer: func(p auth.Principal, id string, _ *AddressBody) *Problem { return ownCustomerID(p, &id) },
	}
	DeactivateCustomer = idCommand(Doc{Method: "POST", Path: "/api/v1/customers/{id}/deactivate", ID: "deactivateCustomer", Summary: "Deactivate a customer",
		Tag: "customers", IDField: "customerId", IDParam: "id", Errors: []int{404, 409}}, wire.EndpointDeactivateCustomer)

	AddProduct = &Command[AddProductBody, wire.AddProduct, wire.CommandReply]{
		Doc: Doc{Method: "POST", Path: "/api/v1/products", ID: "addProduct", Summary: "Add a product to the catalog", Tag: "products", Created: true, IDField: "productId",
			Schema: object([]string{"sku", "name", "priceCents"}, map[string]any{
				"productId": id("optional: your id for the product"), "sku": text("unique stock keeping unit, no spaces", inventory.MaxSKULength),
				"name": text("display name", inventory.MaxNameLength), "priceCents": integer("price in cents", 0, inventory.MaxPrice),
			}),
			Example: map[string]any{"sku": "WIDGET-1", "name": "Widget", "priceCents": 1999}, Errors: []int{409}},
		Endpoint: wire.EndpointAddProduct,
		Request: func(_ context.Context, _ string, b *AddProductBody, m wire.CommandMeta) (wire.AddProduct, string) {
			id := newID(b.ProductID, m)
			return wire.AddProduct{Meta: m, ProductID: id, SKU: b.SKU, Name: b.Name, PriceCents: b.PriceCents}, id
		},
	}
	ChangePrice = &Command[PriceBody, wire.ChangePrice, wire.CommandReply]{
		Doc: oneInteger(Doc{Method: "POST", Path: "/api/v1/products/{id}/price", ID: "changePrice", Summary: "Change a product's price", Tag: "products",
			IDField: "productId", IDParam: "id", Errors: []int{404, 409}}, "priceCents", integer("new price in cents", 0, inventory.MaxPrice), 2499),
		Endpoint: wire.EndpointChangePrice,
		Request: func(_ context.Context, id string, b *PriceBody, m wire.CommandMeta) (wire.ChangePrice, string) {
			return wire.ChangePrice{Meta: m, ProductID: id, PriceCents: b.PriceCents}, id
		},
	}
	Restock = &Command[QuantityBody, wire.Restock, wire.CommandReply]{
		Doc: oneInteger(Doc{Method: "POST", Path: "/api/v1/products/{id}/restock", ID: "restock", Summary: "Add units to a product's stock", Tag: "products",
			IDField: "productId", IDParam: "id", Errors: []int{404, 409}}, "quantity", integer("units received", 1, inventory.MaxQuantity), 10),
		Endpoint: wire.EndpointRestock,
		Request: func(_ context.Context, id string, b *QuantityBody, m wire.CommandMeta) (wire.Restock, string) {
			return wire.Restock{Meta: m, ProductID: id, Quantity: b.Quantity}, id
		},
	}
	DiscontinueProduct = idCommand(Doc{Method: "POST", Path: "/api/v1/products/{id}/discontinue", ID: "discontinueProduct", Summary: "Take a product out of sale",
		Tag: "products", IDField: "productId", IDParam: "id", Errors: []int{404}}, wire.EndpointDiscontinueProduct)

	// EraseCustomer answers the erasure's receipt (wire.Erasure).
	EraseCustomer = func() *Command[NoBody, wire.IDCommand, wire.Erasure] {
		c := idCommand(Doc{Method: "POST", Path: "/api/v1/customers/{id}/erase", ID: "eraseCustomer",
			Summary: "Erase a customer's personal data (name, e-mail, address) everywhere: the answer is the receipt", Tag: "customers",
			IDField: "customerId", IDParam: "id", Errors: []int{404}, Receipt: object([]string{"customerId", "erasedAt", "fields", "streams", "keyDestroyedAt", "position"},
				map[string]any{"customerId": id("the customer"), "erasedAt": timestamp("when the erasure was recorded"), "erasedBy": map[string]any{"type": "string", "description": "who asked"},
					"fields": list("the personal fields erased"), "streams": list("the event streams whose events held them: they now read redacted"),
					"keyDestroyedAt": timestamp("when the customer's data key was destroyed"), "readModels": list("the read models that held copies and redacted them"),
					"position": map[string]any{"type": "string", "description": "log position of the erasure's event: a read at or past it holds no personal data of the customer"}})}, wire.EndpointEraseCustomer)
		return c
	}()
	CapturePayment = idCommand(Doc{Method: "POST", Path: "/api/v1/payments/{id}/capture", ID: "capturePayment", Summary: "Capture an authorized payment",
		Tag: "payments", IDField: "paymentId", IDParam: "id", Errors: []int{404, 409}}, wire.EndpointCapturePayment)
	RefundPayment = &Command[AmountBody, wire.RefundPayment, wire.CommandReply]{
		Doc: oneInteger(Doc{Method: "POST", Path: "/api/v1/payments/{id}/refund", ID: "refundPayment", Summary: "Refund part or all of a captured payment", Tag: "payments",
			IDField: "paymentId", IDParam: "id", Errors: []int{404, 409}}, "amountCents", integer("amount to refund in cents", 1, domain.MaxCents), 500),
		Endpoint: wire.EndpointRefundPayment,
		Request: func(_ context.Context, id string, b *AmountBody, m wire.CommandMeta) (wire.RefundPayment, string) {
			return wire.RefundPayment{Meta: m, PaymentID: id, AmountCents: b.AmountCents}, id
		},
	}
)

// idCommand is a command that names only its aggregate, for admins.
func idCommand[Resp any](doc Doc, endpoint wire.Endpoint[wire.IDCommand, Resp]) *Command[NoBody, wire.IDCommand, Resp] {
	doc.NoBody = true
	return &Command[NoBody, wire.IDCommand, Resp]{Doc: doc, Endpoint: endpoint,
		Request: func(_ context.Context, id string, _ *NoBody, m wire.CommandMeta) (wire.IDCommand, string) {
			return wire.IDCommand{Meta: m, ID: id}, id
		}}
}

// newID is the id a command names, or else one derived from the command's id: a retried command
// (the same Idempotency-Key) names the same new aggregate.
func newID(id string, m wire.CommandMeta) string {
	if id == "" {
		return uuid.NewSHA1(uuid.NameSpaceOID, []byte("orderflow:new-id:"+m.CommandID)).String()
	}
	return id
}

// ownCustomerID makes a body's customer id the caller's: empty becomes the caller, another
// customer's is refused.
func ownCustomerID(p auth.Principal, id *string) *Problem {
	switch *id {
	case "":
		*id = p.Subject
	case p.Subject:
	default:
		return Forbidden("a customer acts only for itself: customerId must be your token's subject")
	}
	return nil
}

// JSON schemas of the bodies, with the limits of the domain.
func text(desc string, maxLength int) map[string]any {
	return map[string]any{"type": "string", "maxLength": maxLength, "description": desc}
}
func id(desc string) map[string]any { return text(desc, domain.MaxIDLength) }

// oneInteger is doc with a body of one required integer field, its schema and its example value.
func oneInteger(doc Doc, field string, schema map[string]any, example int64) Doc {
	doc.Schema = object([]string{field}, map[string]any{field: schema})
	doc.Example = map[string]any{field: example}
	return doc
}

func integer(desc string, min, max int64) map[string]any {
	s := map[string]any{"type": "integer", "format": "int64", "minimum": min, "description": desc}
	if max > 0 {
		s["maximum"] = max
	}
	return s
}
func timestamp(desc string) map[string]any {
	return map[string]any{"type": "string", "format": "date-time", "description": desc}
}
func list(desc string) map[string]any {
	return map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": desc}
}
func object(required []string, props map[string]any) map[string]any {
	return map[string]any{"type": "object", "additionalProperties": false, "required": required, "properties": props}
}

var addressSchema = object([]string{"line1", "city", "postalCode", "country"}, map[string]any{
	"line1": text("street and number", customer.MaxAddressLineLength), "line2": text("apartment, floor…", customer.MaxAddressLineLength),
	"city": text("city", customer.MaxCityLength), "postalCode": text("postal code", customer.MaxPostalCodeLength),
	"country": map[string]any{"type": "string", "minLength": 2, "maxLength": 2, "description": "ISO 3166 alpha-2 country code, e.g. FR"},
})

var lineSchema = object([]string{"productId", "quantity"}, map[string]any{
	"productId": id("product ordered"), "quantity": integer("units", 1, order.MaxQuantity),
	"unitPriceCents": integer("optional: the price of one unit you expect to pay, in cents; it must be the catalog's (409 with the current price otherwise); without it the catalog's price is charged", 0, domain.MaxCents),
})
