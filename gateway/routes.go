package gateway

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/orderflow/orderflow/internal/wire"
)

// operation is one REST command: how it is routed, documented and turned into a service call.
// The router and the OpenAPI document are both built from the operations table, and a test
// walks the router against the document.
type operation struct {
	method, path, id, summary, tag string
	// created: answers 201 with a Location, else 200.
	created bool
	// idField names the id in the answer ("orderId", …); idParam is the path parameter, if any.
	idField, idParam string
	// body is a pointer to a new request body value, nil for none; empty bodies are allowed when
	// optionalBody.
	body         func() any
	optionalBody bool
	schema       map[string]any // JSON schema of the body
	example      any
	// call turns the request into the service endpoint and its request.
	call func(r *http.Request, id string, body any, meta wire.CommandMeta) (endpoint string, req any, answerID string)
	// errors lists the documented error statuses beyond 400/413/415/422.
	errors []int
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
func integer(desc string, min int64) map[string]any {
	return map[string]any{"type": "integer", "format": "int64", "minimum": min, "description": desc}
}
func object(required []string, props map[string]any) map[string]any {
	return map[string]any{"type": "object", "additionalProperties": false, "required": required, "properties": props}
}

var addressSchema = object([]string{"line1", "city", "postalCode", "country"}, map[string]any{
	"line1": str("street and number"), "line2": str("apartment, floor…"), "city": str("city"),
	"postalCode": str("postal code"), "country": str("ISO 3166 alpha-2 country code, e.g. FR"),
})

var lineSchema = object([]string{"productId", "quantity", "unitPriceCents"}, map[string]any{
	"productId": str("product ordered"), "quantity": integer("units, at least 1", 1),
	"unitPriceCents": integer("price of one unit in cents", 0),
})

type (
	placeOrderBody struct {
		OrderID    string           `json:"orderId"`
		CustomerID string           `json:"customerId"`
		Lines      []wire.OrderLine `json:"lines"`
	}
	cancelOrderBody struct {
		Reason string `json:"reason"`
	}
	registerCustomerBody struct {
		CustomerID string       `json:"customerId"`
		Name       string       `json:"name"`
		Email      string       `json:"email"`
		Address    wire.Address `json:"shippingAddress"`
	}
	addressBody struct {
		Address wire.Address `json:"shippingAddress"`
	}
	addProductBody struct {
		ProductID  string `json:"productId"`
		SKU        string `json:"sku"`
		Name       string `json:"name"`
		PriceCents int64  `json:"priceCents"`
	}
	priceBody struct {
		PriceCents int64 `json:"priceCents"`
	}
	quantityBody struct {
		Quantity int64 `json:"quantity"`
	}
	amountBody struct {
		AmountCents int64 `json:"amountCents"`
	}
)

func newID(id string) string {
	if id == "" {
		return uuid.NewString()
	}
	return id
}

// idCommand is the call of an operation that names only its aggregate.
func idCommand(endpoint string) func(*http.Request, string, any, wire.CommandMeta) (string, any, string) {
	return func(_ *http.Request, id string, _ any, m wire.CommandMeta) (string, any, string) {
		return endpoint, wire.IDCommand{Meta: m, ID: id}, id
	}
}

var operations = []operation{
	{method: "POST", path: "/api/v1/orders", id: "placeOrder", summary: "Place an order", tag: "orders", created: true, idField: "orderId",
		body: func() any { return &placeOrderBody{} },
		schema: object([]string{"customerId", "lines"}, map[string]any{
			"orderId": str("optional: your id for the order; a UUID is made otherwise"), "customerId": str("who orders"),
			"lines": map[string]any{"type": "array", "minItems": 1, "maxItems": 100, "items": lineSchema},
		}),
		example: map[string]any{"customerId": "c-1", "lines": []any{map[string]any{"productId": "p-1", "quantity": 2, "unitPriceCents": 1250}}},
		call: func(_ *http.Request, _ string, b any, m wire.CommandMeta) (string, any, string) {
			body := b.(*placeOrderBody)
			id := newID(body.OrderID)
			return wire.EndpointPlaceOrder, wire.PlaceOrder{Meta: m, OrderID: id, CustomerID: body.CustomerID, Lines: body.Lines}, id
		},
		errors: []int{409}},
	{method: "POST", path: "/api/v1/orders/{id}/cancel", id: "cancelOrder", summary: "Cancel an order", tag: "orders", idField: "orderId", idParam: "id",
		body: func() any { return &cancelOrderBody{} }, optionalBody: true,
		schema:  object(nil, map[string]any{"reason": str("why, at most 500 characters")}),
		example: map[string]any{"reason": "changed my mind"},
		call: func(_ *http.Request, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointCancelOrder, wire.CancelOrder{Meta: m, OrderID: id, Reason: b.(*cancelOrderBody).Reason}, id
		},
		errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/orders/{id}/ship", id: "shipOrder", summary: "Mark an order shipped", tag: "orders", idField: "orderId", idParam: "id",
		call: idCommand(wire.EndpointShipOrder), errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/orders/{id}/deliver", id: "deliverOrder", summary: "Mark an order delivered", tag: "orders", idField: "orderId", idParam: "id",
		call: idCommand(wire.EndpointDeliverOrder), errors: []int{404, 409}},

	{method: "POST", path: "/api/v1/customers", id: "registerCustomer", summary: "Register a customer", tag: "customers", created: true, idField: "customerId",
		body: func() any { return &registerCustomerBody{} },
		schema: object([]string{"name", "email", "shippingAddress"}, map[string]any{
			"customerId": str("optional: your id for the customer"), "name": str("full name"),
			"email": map[string]any{"type": "string", "format": "email", "description": "unique among customers"}, "shippingAddress": addressSchema,
		}),
		example: map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "shippingAddress": map[string]any{"line1": "1 Main St", "city": "Paris", "postalCode": "75001", "country": "FR"}},
		call: func(_ *http.Request, _ string, b any, m wire.CommandMeta) (string, any, string) {
			body := b.(*registerCustomerBody)
			id := newID(body.CustomerID)
			return wire.EndpointRegisterCustomer, wire.RegisterCustomer{Meta: m, CustomerID: id, Name: body.Name, Email: body.Email, Address: body.Address}, id
		},
		errors: []int{409}},
	{method: "POST", path: "/api/v1/customers/{id}/address", id: "changeAddress", summary: "Change a customer's shipping address", tag: "customers", idField: "customerId", idParam: "id",
		body:    func() any { return &addressBody{} },
		schema:  object([]string{"shippingAddress"}, map[string]any{"shippingAddress": addressSchema}),
		example: map[string]any{"shippingAddress": map[string]any{"line1": "2 Side St", "city": "Lyon", "postalCode": "69001", "country": "FR"}},
		call: func(_ *http.Request, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointChangeAddress, wire.ChangeAddress{Meta: m, CustomerID: id, Address: b.(*addressBody).Address}, id
		},
		errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/customers/{id}/deactivate", id: "deactivateCustomer", summary: "Deactivate a customer", tag: "customers", idField: "customerId", idParam: "id",
		call: idCommand(wire.EndpointDeactivateCustomer), errors: []int{404, 409}},

	{method: "POST", path: "/api/v1/products", id: "addProduct", summary: "Add a product to the catalog", tag: "products", created: true, idField: "productId",
		body: func() any { return &addProductBody{} },
		schema: object([]string{"sku", "name", "priceCents"}, map[string]any{
			"productId": str("optional: your id for the product"), "sku": str("unique stock keeping unit, no spaces"),
			"name": str("display name"), "priceCents": integer("price in cents", 0),
		}),
		example: map[string]any{"sku": "WIDGET-1", "name": "Widget", "priceCents": 1999},
		call: func(_ *http.Request, _ string, b any, m wire.CommandMeta) (string, any, string) {
			body := b.(*addProductBody)
			id := newID(body.ProductID)
			return wire.EndpointAddProduct, wire.AddProduct{Meta: m, ProductID: id, SKU: body.SKU, Name: body.Name, PriceCents: body.PriceCents}, id
		},
		errors: []int{409}},
	{method: "POST", path: "/api/v1/products/{id}/price", id: "changePrice", summary: "Change a product's price", tag: "products", idField: "productId", idParam: "id",
		body: func() any { return &priceBody{} }, schema: object([]string{"priceCents"}, map[string]any{"priceCents": integer("new price in cents", 0)}),
		example: map[string]any{"priceCents": 2499},
		call: func(_ *http.Request, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointChangePrice, wire.ChangePrice{Meta: m, ProductID: id, PriceCents: b.(*priceBody).PriceCents}, id
		},
		errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/products/{id}/restock", id: "restock", summary: "Add units to a product's stock", tag: "products", idField: "productId", idParam: "id",
		body: func() any { return &quantityBody{} }, schema: object([]string{"quantity"}, map[string]any{"quantity": integer("units received", 1)}),
		example: map[string]any{"quantity": 10},
		call: func(_ *http.Request, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointRestock, wire.Restock{Meta: m, ProductID: id, Quantity: b.(*quantityBody).Quantity}, id
		},
		errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/products/{id}/discontinue", id: "discontinueProduct", summary: "Take a product out of sale", tag: "products", idField: "productId", idParam: "id",
		call: idCommand(wire.EndpointDiscontinueProduct), errors: []int{404}},

	{method: "POST", path: "/api/v1/payments/{id}/capture", id: "capturePayment", summary: "Capture an authorized payment", tag: "payments", idField: "paymentId", idParam: "id",
		call: idCommand(wire.EndpointCapturePayment), errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/payments/{id}/refund", id: "refundPayment", summary: "Refund part or all of a captured payment", tag: "payments", idField: "paymentId", idParam: "id",
		body: func() any { return &amountBody{} }, schema: object([]string{"amountCents"}, map[string]any{"amountCents": integer("amount to refund in cents", 1)}),
		example: map[string]any{"amountCents": 500},
		call: func(_ *http.Request, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointRefundPayment, wire.RefundPayment{Meta: m, PaymentID: id, AmountCents: b.(*amountBody).AmountCents}, id
		},
		errors: []int{404, 409}},
}

// handler serves one operation: decode strictly, call the service, answer with the id and the
// log position of the command's events.
func (g *gateway) handler(op operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body any
		if op.body != nil {
			body = op.body()
			if p := decodeBody(w, r, body, op.optionalBody); p != nil {
				writeProblem(w, r, p)
				return
			}
		} else if p := decodeBody(w, r, &struct{}{}, true); p != nil {
			writeProblem(w, r, p)
			return
		}
		id := ""
		if op.idParam != "" {
			id = chi.URLParam(r, op.idParam)
		}
		endpoint, req, answerID := op.call(r, id, body, meta(r, op.id+":"+id))
		reply, err := g.command(r.Context(), endpoint, req)
		if err != nil {
			writeProblem(w, r, problemFor(err))
			return
		}
		w.Header().Set("X-Consistency-Position", reply.Position)
		status := http.StatusOK
		if op.created {
			status = http.StatusCreated
			w.Header().Set("Location", r.URL.Path+"/"+answerID)
		}
		writeJSON(w, status, map[string]string{op.idField: answerID, "position": reply.Position})
	}
}
