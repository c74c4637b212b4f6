package gateway_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/vektah/gqlparser/v2"
	gqlast "github.com/vektah/gqlparser/v2/ast"

	"github.com/orderflow/orderflow/contracts"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// The gateway's contracts with the services it calls are recorded here, against a double of them
// that answers every endpoint with an example of its answer type (every field filled). What the
// gateway reads of an answer is found by taking it away: a path is read when the gateway's own
// answer changes without it. So a contract holds what the gateway relies on, and changes only
// when the gateway does.

// providerOf is the target that serves an endpoint, by the endpoint's first word.
var providerOf = map[string]string{
	"order": "order-commands", "customer": "customer-commands", "product": "inventory-commands", "payment": "payment-commands",
	"orders": "order-queries", "customers": "customer-queries", "catalog": "catalog-queries",
	"sagas": "fulfillment", "projections": "projector",
}

// answerTypes are the answer types of the endpoints the gateway calls (commands answer
// wire.CommandReply).
var answerTypes = map[string]any{
	wire.EndpointOrderByID.Name: wire.Order{}, wire.EndpointOrdersByIDs.Name: []wire.Order{}, wire.EndpointListOrders.Name: wire.OrderPage{},
	wire.EndpointOrderTimeline.Name: []wire.TimelineEntry{}, wire.EndpointActorActivity.Name: wire.ActivityPage{},
	wire.EndpointCustomerByID.Name: wire.Customer{}, wire.EndpointCustomersByIDs.Name: []wire.Customer{},
	wire.EndpointProductByID.Name: wire.Product{}, wire.EndpointProductsByIDs.Name: []wire.Product{}, wire.EndpointSearchProduct.Name: wire.ProductPage{},
	wire.EndpointLowStock.Name: []wire.Product{}, wire.EndpointPaymentProvider.Name: wire.ProviderStatus{},
	wire.EndpointProjectionsList.Name: []wire.ProjectionStatus{}, wire.EndpointProjectionPause.Name: wire.ProjectionStatus{},
	wire.EndpointProjectionResume.Name: wire.ProjectionStatus{}, wire.EndpointProjectionRebuild.Name: wire.ProjectionStatus{},
	wire.EndpointProjectionParked.Name: []wire.ParkedEvent{}, wire.EndpointProjectionReplay.Name: wire.ReplayResult{},
	wire.EndpointFulfillment.Name: wire.Fulfillment{}, wire.EndpointFulfillments.Name: []wire.Fulfillment{},
	wire.EndpointFulfillmentsByIDs.Name: []wire.Fulfillment{}, wire.EndpointFulfillmentCounts.Name: wire.FulfillmentCounts{},
	wire.EndpointEraseCustomer.Name: wire.Erasure{}, wire.EndpointCustomerErasure.Name: wire.Erasure{},
}

// exampleStrings are the values of the string fields whose values the gateway interprets, and
// the ids of the provider states' world (exampleIDs: the id field of each type).
var exampleStrings = map[string]string{
	"customerId": "c-1", "productId": "p-1", "orderId": "o-1",
	"status": "PLACED", "step": "CONFIRMING", "outcome": "confirmed", "breaker": "closed", "kind": "reserve",
	"position": "7-7", "head": "9-9", "endCursor": "7-7", "startCursor": "7-7", "actor": "customer:c-1",
	"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "type": "order.placed.v1",
}

var exampleIDs = map[reflect.Type]map[string]string{
	reflect.TypeOf(wire.Order{}):            {"id": "o-1"},
	reflect.TypeOf(wire.Product{}):          {"id": "p-1"},
	reflect.TypeOf(wire.Customer{}):         {"id": "c-1"},
	reflect.TypeOf(wire.ProjectionStatus{}): {"name": "orders"},
}

// example is what the double answers a request with: a value of type t with every field filled,
// taking ids (and any field the request names alike) from the request; a list answer to a request
// for ids has one element per id, with that id.
func example(t reflect.Type, req map[string]any) reflect.Value {
	return contracts.Example(t, func(in, t reflect.Type, name string) (reflect.Value, bool) {
		switch t.Kind() {
		case reflect.Slice:
			for key, ids := range req {
				if list, ok := ids.([]any); ok && in == nil && strings.HasSuffix(key, "s") {
					v := reflect.New(t).Elem()
					for _, id := range list {
						v = reflect.Append(v, example(t.Elem(), map[string]any{strings.TrimSuffix(key, "s"): id}))
					}
					return v, true
				}
			}
		case reflect.String:
			s, ok := req[name].(string)
			if !ok || s == "" {
				s, ok = exampleIDs[in][name]
			}
			if !ok {
				s, ok = exampleStrings[name]
			}
			if ok {
				return reflect.ValueOf(s).Convert(t), true
			}
		}
		return reflect.Value{}, false
	})
}

// double answers the services' endpoints under a namespace with examples and records each
// request. Ablate, when set, takes a path away from one endpoint's answers; fail, when set,
// answers one endpoint with an error of that code instead.
type double struct {
	mu     sync.Mutex
	calls  []contracts.Call
	ablate struct{ endpoint, path string }
	fail   struct{ endpoint, code string }
}

// set changes what the double does (under its lock).
func (d *double) set(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f()
}

func startDouble(t *testing.T, nc *nats.Conn, ns wire.Namespace) *double {
	d := &double{}
	sub, err := nc.Subscribe(ns.Subject(">"), func(m *nats.Msg) {
		endpoint := strings.TrimPrefix(m.Subject, ns.Subject(""))
		var req map[string]any
		_ = json.Unmarshal(m.Data, &req)
		call := contracts.Call{Endpoint: endpoint, Request: m.Data}
		reply := nats.NewMsg(m.Reply)
		d.mu.Lock()
		failed := d.fail.endpoint == endpoint
		d.mu.Unlock()
		if failed {
			reply.Header.Set(micro.ErrorCodeHeader, d.fail.code)
			reply.Data, _ = json.Marshal(rpc.Errorf(d.fail.code, "the double fails"))
		} else if code := errorFor(req); code != "" {
			call.Error = code
			reply.Header.Set(micro.ErrorCodeHeader, code)
			reply.Data, _ = json.Marshal(rpc.Errorf(code, "the contract's example"))
		} else {
			typ := reflect.TypeOf(wire.CommandReply{})
			if a, ok := answerTypes[endpoint]; ok {
				typ = reflect.TypeOf(a)
			}
			call.Answer, _ = json.Marshal(example(typ, req).Interface())
			call.Optional = contracts.Optional(typ)
			answer, _ := contracts.Decode(call.Answer)
			d.mu.Lock()
			if d.ablate.endpoint == endpoint {
				answer = contracts.Without(answer, d.ablate.path)
			}
			d.mu.Unlock()
			reply.Data, _ = json.Marshal(answer)
		}
		d.mu.Lock()
		d.calls = append(d.calls, call)
		d.mu.Unlock()
		_ = m.RespondMsg(reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return d
}

// errorFor is the error the double answers a request with: ids that begin "missing-" name
// nothing, "cancelled-" orders and "shipped-" ones conflict with the command.
func errorFor(req map[string]any) string {
	for _, k := range []string{"id", "orderId", "customerId", "productId"} {
		s, _ := req[k].(string)
		switch {
		case strings.HasPrefix(s, "missing-"):
			return rpc.CodeNotFound
		case strings.HasPrefix(s, "cancelled-"):
			return rpc.CodeConflict
		}
	}
	return ""
}

func (d *double) take() []contracts.Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	calls := d.calls
	d.calls = nil
	return calls
}

// exchange is one request to the gateway: a GraphQL operation (its root field selecting every
// field below it), as a caller, with the provider states its answers assume.
type exchange struct {
	field, args string
	// also is more of the operation's root selection (batched with the field).
	also     string
	mutation bool
	caller   string // "admin" or a customer's id
	states   []string
}

// Provider states the exchanges assume: the world in which their examples are answers.
const (
	stateCustomer  = "customer c-1 registered"
	stateCustomer2 = "customer c-2 registered"
	stateProduct   = "product p-1 on sale with 10 in stock"
	stateProduct2  = "product p-2 on sale"
	stateOrder     = "order o-1 placed by customer c-1 for 2 of product p-1"
	stateOrderPaid = "order o-3 of customer c-1 paid"
	stateShipped   = "order o-4 of customer c-1 shipped"
	stateCancelled = "order cancelled-1 of customer c-1 cancelled"
	stateAuthed    = "payment pay-1 authorized"
	stateCaptured  = "payment pay-2 captured"
	stateParked    = "the orders read model parked an event"
	stateCustomer4 = "customer c-4 registered"
	stateErased    = "customer c-5 erased"
)

var exchanges = []exchange{
	{field: "order", args: `id: "o-1"`, states: []string{stateOrder}},
	{field: "order", args: `id: "missing-o"`},
	{field: "order", args: `id: "o-1"`, also: `other: order(id: "o-3") { id status }`, states: []string{stateOrder, stateOrderPaid}},
	{field: "orders", args: `customerId: "c-1", status: PLACED, first: 2`, states: []string{stateOrder}},
	{field: "product", args: `id: "p-1"`, states: []string{stateProduct}},
	{field: "product", args: `id: "missing-p"`},
	{field: "products", args: `query: "", first: 2`, states: []string{stateProduct}},
	{field: "lowStock", args: `threshold: 20, first: 2`, states: []string{stateProduct}},
	{field: "me", caller: "c-1", states: []string{stateCustomer}},
	{field: "customer", args: `id: "c-1"`, states: []string{stateCustomer}},
	{field: "customer", args: `id: "missing-c"`},
	{field: "customerErasure", args: `customerId: "c-5"`, states: []string{stateErased}},
	{field: "customerErasure", args: `customerId: "missing-c"`},
	{field: "projections", states: []string{stateParked}},
	{field: "parkedEvents", args: `projection: "orders"`, states: []string{stateParked}},
	{field: "fulfillmentCounts"},
	{field: "fulfillments", args: `first: 2`, states: []string{stateOrder}},
	{field: "paymentProvider"},
	{field: "actorActivity", args: `actor: "customer:c-1", first: 2`, states: []string{stateOrder}},
	{mutation: true, field: "placeOrder", args: `input: {orderId: "o-2", customerId: "c-1", lines: [{productId: "p-1", quantity: 1, unitPriceCents: 250}]}`, states: []string{stateCustomer, stateProduct}},
	{mutation: true, field: "cancelOrder", args: `id: "o-1", reason: "changed my mind"`, caller: "c-1", states: []string{stateOrder}},
	{mutation: true, field: "cancelOrder", args: `id: "cancelled-1"`, states: []string{stateCancelled}},
	{mutation: true, field: "shipOrder", args: `id: "o-3"`, states: []string{stateOrderPaid}},
	{mutation: true, field: "deliverOrder", args: `id: "o-4"`, states: []string{stateShipped}},
	{mutation: true, field: "registerCustomer", args: `input: {customerId: "c-3", name: "Ada", email: "ada@example.com", shippingAddress: {line1: "1 Main St", city: "Springfield", postalCode: "12345", country: "US"}}`},
	{mutation: true, field: "changeAddress", args: `customerId: "c-1", shippingAddress: {line1: "2 Main St", city: "Springfield", postalCode: "12345", country: "US"}`, caller: "c-1", states: []string{stateCustomer}},
	{mutation: true, field: "deactivateCustomer", args: `customerId: "c-2"`, states: []string{stateCustomer2}},
	{mutation: true, field: "eraseCustomer", args: `customerId: "c-4"`, states: []string{stateCustomer4}},
	{mutation: true, field: "addProduct", args: `input: {productId: "p-3", sku: "SKU-3", name: "Lamp", priceCents: 1999}`},
	{mutation: true, field: "changePrice", args: `productId: "p-1", priceCents: 275`, states: []string{stateProduct}},
	{mutation: true, field: "restock", args: `productId: "p-1", quantity: 5`, states: []string{stateProduct}},
	{mutation: true, field: "discontinueProduct", args: `productId: "p-2"`, states: []string{stateProduct2}},
	{mutation: true, field: "capturePayment", args: `paymentId: "pay-1"`, states: []string{stateAuthed}},
	{mutation: true, field: "refundPayment", args: `paymentId: "pay-2", amountCents: 100`, states: []string{stateCaptured}},
	{mutation: true, field: "pauseProjection", args: `name: "orders"`, states: []string{stateParked}},
	{mutation: true, field: "resumeProjection", args: `name: "orders"`, states: []string{stateParked}},
	{mutation: true, field: "replayParkedEvents", args: `projection: "orders"`, states: []string{stateParked}},
	{mutation: true, field: "rebuildProjection", args: `name: "orders"`, states: []string{stateParked}},
}

// document is e's GraphQL document: its field selecting every field of the schema below it, to
// a depth, except fields with required arguments and discovery's (not a service's contract).
func (e exchange) document(schema *gqlast.Schema) string {
	root := schema.Query
	if e.mutation {
		root = schema.Mutation
	}
	var sel func(typ *gqlast.Type, depth int) string
	sel = func(typ *gqlast.Type, depth int) string {
		def := schema.Types[typ.Name()]
		if def.Kind != gqlast.Object || depth == 0 {
			return ""
		}
		var fields []string
		for _, f := range def.Fields {
			required := slices.ContainsFunc(f.Arguments, func(a *gqlast.ArgumentDefinition) bool { return a.Type.NonNull && a.DefaultValue == nil })
			if strings.HasPrefix(f.Name, "__") || required {
				continue
			}
			if sub := schema.Types[f.Type.Name()]; sub.Kind == gqlast.Object {
				if s := sel(f.Type, depth-1); s != "" {
					fields = append(fields, f.Name+" "+s)
				}
				continue
			}
			fields = append(fields, f.Name)
		}
		if len(fields) == 0 {
			return ""
		}
		return "{ " + strings.Join(fields, " ") + " }"
	}
	f := root.Fields.ForName(e.field)
	args, op := e.args, "query"
	if e.mutation {
		op = "mutation"
		if f.Arguments.ForName("idempotencyKey") != nil { // a retry is the same command: a stable command id
			args = strings.TrimPrefix(args+`, idempotencyKey: "contract-`+e.field+`"`, ", ")
		}
	}
	if args != "" {
		args = "(" + args + ")"
	}
	return op + " { " + e.field + args + " " + sel(f.Type, 4) + " " + e.also + " }"
}

// TestServiceContracts records the gateway's contracts with each service: contracts/gateway-<provider>.json.
func TestServiceContracts(t *testing.T) {
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	d := startDouble(t, nc, ns)
	secret := []byte("contract-test-secret-0123456789abcdef")
	verifier, err := auth.HS256(secret)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet, Security: gateway.Security{Verifier: verifier}}))
	t.Cleanup(srv.Close)
	src, err := os.ReadFile("schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	schema := gqlparser.MustLoadSchema(&gqlast.Source{Name: "schema.graphql", Input: string(src)})

	send := func(e exchange) []byte {
		sub, role := "ops", auth.Admin
		if e.caller != "" {
			sub, role = e.caller, auth.Customer
		}
		tok, err := auth.Issue(secret, sub, role, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"query": e.document(schema)})
		req, _ := http.NewRequest("POST", srv.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Correlation-ID", "contract-"+e.field)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return out.Bytes()
	}

	var calls []contracts.Call
	for _, e := range exchanges {
		baseline := send(e)
		if bytes.Contains(baseline, []byte(`"INTERNAL`)) || !bytes.Contains(baseline, []byte(`"data"`)) {
			t.Errorf("%s(%s): the gateway does not handle the double's answer: %s", e.field, e.args, baseline)
		}
		recorded := d.take()
		if len(recorded) == 0 {
			t.Errorf("%s(%s) calls no service: %s", e.field, e.args, baseline)
		}
		caller := "admin:ops"
		if e.caller != "" {
			caller = "customer:" + e.caller
		}
		for i, c := range recorded {
			c.Caller, c.States = caller, e.states
			if c.Error == "" {
				answer, _ := contracts.Decode(c.Answer)
				for _, leaf := range contracts.Leaves(answer) {
					d.set(func() { d.ablate.endpoint, d.ablate.path = c.Endpoint, leaf })
					if !bytes.Equal(send(e), baseline) {
						c.Reads = append(c.Reads, leaf)
					}
					d.take()
				}
				d.set(func() { d.ablate.endpoint = "" })
				// The error codes the gateway handles in place of the answer: it turns them into
				// an answer of its own (a null, a client error), not an internal error.
				for _, code := range []string{rpc.CodeInvalid, rpc.CodeNotFound, rpc.CodeConflict, rpc.CodeStale, rpc.CodeForbidden, rpc.CodeUnavailable} {
					d.set(func() { d.fail.endpoint, d.fail.code = c.Endpoint, code })
					if !bytes.Contains(send(e), []byte(`"INTERNAL`)) {
						c.Handles = append(c.Handles, code)
					}
					d.take()
				}
				d.set(func() { d.fail.endpoint = "" })
			}
			recorded[i] = c
		}
		calls = append(calls, recorded...)
	}

	byProvider := map[string][]contracts.Call{}
	called := map[string]bool{}
	for _, c := range calls {
		first, _, _ := strings.Cut(c.Endpoint, ".")
		p, ok := providerOf[first]
		if !ok {
			t.Fatalf("no provider serves %s", c.Endpoint)
		}
		byProvider[p] = append(byProvider[p], c)
		called[c.Endpoint] = true
	}
	for _, endpoint := range endpointsNamed(t) {
		if !called[endpoint] {
			t.Errorf("the gateway's code calls %s, and no exchange of this test makes it: add one", endpoint)
		}
	}
	for p, cs := range byProvider {
		contracts.Check(t, "gateway-"+p+".json", contracts.Service("gateway", p, cs))
	}
}

// endpointsNamed are the endpoints the gateway's code names (wire.Endpoint… values), found in its
// sources, and their subjects, found in wire's.
func endpointsNamed(t *testing.T) []string {
	t.Helper()
	values := map[string]string{}
	fset := token.NewFileSet()
	wireFiles, _ := filepath.Glob("../wire/*.go")
	for _, f := range wireFiles {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Values) == len(vs.Names) {
				for i, name := range vs.Names {
					// endpoint[Req, Resp](service, "subject"): the subject is its last argument.
					if c, ok := vs.Values[i].(*ast.CallExpr); ok && len(c.Args) > 0 {
						if lit, ok := c.Args[len(c.Args)-1].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							values[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	set := map[string]bool{}
	for _, dir := range []string{".", "graph", "api"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				if s, ok := n.(*ast.SelectorExpr); ok && strings.HasPrefix(s.Sel.Name, "Endpoint") {
					if x, ok := s.X.(*ast.Ident); ok && x.Name == "wire" {
						if v, ok := values[s.Sel.Name]; ok {
							set[v] = true
						}
					}
				}
				return true
			})
		}
	}
	out := make([]string, 0, len(set))
	for e := range set {
		out = append(out, e)
	}
	slices.Sort(out)
	if len(out) < 10 {
		t.Fatalf("found only %v in the gateway's code", out)
	}
	return out
}
