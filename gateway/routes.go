package gateway

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
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
	call func(ctx context.Context, id string, body any, meta wire.CommandMeta) (endpoint string, req any, answerID string)
	// errors lists the documented error statuses beyond 400/413/415/422.
	errors []int
	// customer, if set, lets a customer token call the operation on what it owns: it checks (and
	// may scope) the request, or refuses it. Without it, the operation is for admins only.
	customer func(p auth.Principal, id string, body any) *problem
}

// authorize lets an admin do op, and a customer only what op's customer rule allows (it may
// scope body to the caller); REST and GraphQL both ask it.
func (op operation) authorize(ctx context.Context, id string, body any) *problem {
	p, ok := auth.From(ctx)
	if !ok || p.IsAdmin() {
		return nil
	}
	if op.customer == nil {
		return forbidden(op.summary + " is for admins")
	}
	return op.customer(p, id, body)
}

// forbidden is the answer to a customer acting for someone else.
func forbidden(detail string) *problem {
	return &problem{Status: http.StatusForbidden, Type: "forbidden", Title: "Forbidden", Detail: detail}
}

// ownCustomerID makes a body's customer id the caller's: empty becomes the caller, another
// customer's is refused.
func ownCustomerID(p auth.Principal, id *string) *problem {
	switch *id {
	case "":
		*id = p.Subject
	case p.Subject:
	default:
		return forbidden("a customer acts only for itself: customerId must be your token's subject")
	}
	return nil
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

// newID is the id a command names, or else one derived from the command's id: a retried
// command (the same Idempotency-Key) names the same new aggregate.
func newID(id string, m wire.CommandMeta) string {
	if id == "" {
		return uuid.NewSHA1(uuid.NameSpaceOID, []byte("orderflow:new-id:"+m.CommandID)).String()
	}
	return id
}

// idCommand is the call of an operation that names only its aggregate.
func idCommand(endpoint string) func(context.Context, string, any, wire.CommandMeta) (string, any, string) {
	return func(_ context.Context, id string, _ any, m wire.CommandMeta) (string, any, string) {
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
		call: func(_ context.Context, _ string, b any, m wire.CommandMeta) (string, any, string) {
			body := b.(*placeOrderBody)
			id := newID(body.OrderID, m)
			return wire.EndpointPlaceOrder, wire.PlaceOrder{Meta: m, OrderID: id, CustomerID: body.CustomerID, Lines: body.Lines}, id
		},
		customer: func(p auth.Principal, _ string, b any) *problem {
			return ownCustomerID(p, &b.(*placeOrderBody).CustomerID)
		},
		errors: []int{409}},
	{method: "POST", path: "/api/v1/orders/{id}/cancel", id: "cancelOrder", summary: "Cancel an order", tag: "orders", idField: "orderId", idParam: "id",
		body: func() any { return &cancelOrderBody{} }, optionalBody: true,
		schema:  object(nil, map[string]any{"reason": str("why, at most 500 characters")}),
		example: map[string]any{"reason": "changed my mind"},
		call: func(ctx context.Context, id string, b any, m wire.CommandMeta) (string, any, string) {
			by := ""
			if p, ok := auth.From(ctx); ok && !p.IsAdmin() {
				by = p.Subject // the order service finds no order of another customer
			}
			return wire.EndpointCancelOrder, wire.CancelOrder{Meta: m, OrderID: id, Reason: b.(*cancelOrderBody).Reason, ByCustomer: by}, id
		},
		customer: func(auth.Principal, string, any) *problem { return nil },
		errors:   []int{404, 409}},
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
		call: func(_ context.Context, _ string, b any, m wire.CommandMeta) (string, any, string) {
			body := b.(*registerCustomerBody)
			id := newID(body.CustomerID, m)
			return wire.EndpointRegisterCustomer, wire.RegisterCustomer{Meta: m, CustomerID: id, Name: body.Name, Email: body.Email, Address: body.Address}, id
		},
		customer: func(p auth.Principal, _ string, b any) *problem {
			return ownCustomerID(p, &b.(*registerCustomerBody).CustomerID)
		},
		errors: []int{409}},
	{method: "POST", path: "/api/v1/customers/{id}/address", id: "changeAddress", summary: "Change a customer's shipping address", tag: "customers", idField: "customerId", idParam: "id",
		body:    func() any { return &addressBody{} },
		schema:  object([]string{"shippingAddress"}, map[string]any{"shippingAddress": addressSchema}),
		example: map[string]any{"shippingAddress": map[string]any{"line1": "2 Side St", "city": "Lyon", "postalCode": "69001", "country": "FR"}},
		call: func(_ context.Context, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointChangeAddress, wire.ChangeAddress{Meta: m, CustomerID: id, Address: b.(*addressBody).Address}, id
		},
		customer: func(p auth.Principal, id string, _ any) *problem { return ownCustomerID(p, &id) },
		errors:   []int{404, 409}},
	{method: "POST", path: "/api/v1/customers/{id}/deactivate", id: "deactivateCustomer", summary: "Deactivate a customer", tag: "customers", idField: "customerId", idParam: "id",
		call: idCommand(wire.EndpointDeactivateCustomer), errors: []int{404, 409}},

	{method: "POST", path: "/api/v1/products", id: "addProduct", summary: "Add a product to the catalog", tag: "products", created: true, idField: "productId",
		body: func() any { return &addProductBody{} },
		schema: object([]string{"sku", "name", "priceCents"}, map[string]any{
			"productId": str("optional: your id for the product"), "sku": str("unique stock keeping unit, no spaces"),
			"name": str("display name"), "priceCents": integer("price in cents", 0),
		}),
		example: map[string]any{"sku": "WIDGET-1", "name": "Widget", "priceCents": 1999},
		call: func(_ context.Context, _ string, b any, m wire.CommandMeta) (string, any, string) {
			body := b.(*addProductBody)
			id := newID(body.ProductID, m)
			return wire.EndpointAddProduct, wire.AddProduct{Meta: m, ProductID: id, SKU: body.SKU, Name: body.Name, PriceCents: body.PriceCents}, id
		},
		errors: []int{409}},
	{method: "POST", path: "/api/v1/products/{id}/price", id: "changePrice", summary: "Change a product's price", tag: "products", idField: "productId", idParam: "id",
		body: func() any { return &priceBody{} }, schema: object([]string{"priceCents"}, map[string]any{"priceCents": integer("new price in cents", 0)}),
		example: map[string]any{"priceCents": 2499},
		call: func(_ context.Context, id string, b any, m wire.CommandMeta) (string, any, string) {
			return wire.EndpointChangePrice, wire.ChangePrice{Meta: m, ProductID: id, PriceCents: b.(*priceBody).PriceCents}, id
		},
		errors: []int{404, 409}},
	{method: "POST", path: "/api/v1/products/{id}/restock", id: "restock", summary: "Add units to a product's stock", tag: "products", idField: "productId", idParam: "id",
		body: func() any { return &quantityBody{} }, schema: object([]string{"quantity"}, map[string]any{"quantity": integer("units received", 1)}),
		example: map[string]any{"quantity": 10},
		call: func(_ context.Context, id string, b any, m wire.CommandMeta) (string, any, string) {
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
		call: func(_ context.Context, id string, b any, m wire.CommandMeta) (string, any, string) {
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
		if pr := op.authorize(r.Context(), id, body); pr != nil {
			writeProblem(w, r, pr)
			return
		}
		endpoint, req, answerID := op.call(r.Context(), id, body, meta(r, op.id+":"+id))
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

// operationByID finds an operation by its operationId.
func operationByID(id string) (operation, bool) {
	for _, op := range operations {
		if op.id == id {
			return op, true
		}
	}
	return operation{}, false
}
