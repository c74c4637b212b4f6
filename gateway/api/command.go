// Package api is the typed edge of orderflow: each command the REST API and the GraphQL mutations
// offer is one Command value, whose body type and service request type the compiler knows. The
// REST router, the OpenAPI document and the GraphQL resolvers are all built from these values, so
// a command is routed, documented, authorized and sent the same way wherever it comes from.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/wire"
)

// Doc is how a command is routed and documented.
type Doc struct {
	Method, Path, ID, Summary, Tag string
	// Created: answers 201 with a Location, else 200.
	Created bool
	// IDField names the id in the answer ("orderId", …); IDParam is the path parameter, if any.
	IDField, IDParam string
	// NoBody: the command takes no body; OptionalBody: an empty body is allowed.
	NoBody, OptionalBody bool
	// Schema is the JSON schema of the body, Example an example of one.
	Schema  map[string]any
	Example any
	// Errors lists the documented error statuses beyond the ones every command may answer.
	Errors []int
	// ForCustomers: customer tokens may call it on what they own (else: admins only).
	ForCustomers bool
	// Receipt, if set, is the JSON schema of what the service answers (a receipt, such as
	// wire.Erasure, holding a "position"): the REST answer and the mutation's are all of it.
	Receipt map[string]any
}

// Command is one command of the edge: B is its request body, Req what it sends to Endpoint, and
// Resp what Endpoint answers (wire.CommandReply, or a receipt).
type Command[B, Req, Resp any] struct {
	Doc      Doc
	Endpoint wire.Endpoint[Req, Resp]
	// Request turns the path id and the body into the service's request and the id to answer.
	Request func(ctx context.Context, id string, body *B, m wire.CommandMeta) (req Req, answerID string)
	// Customer, if set, lets a customer token call the command on what it owns: it checks (and
	// may scope) the body, or refuses it. Without it, the command is for admins only.
	Customer func(p auth.Principal, id string, body *B) *Problem
}

// Operation is any Command, as the REST router and the OpenAPI document list them.
type Operation interface {
	Describe() Doc
	// NewBody is a pointer to a new body, nil for a command that takes none.
	NewBody() any
	// SendsTo is the endpoint the command goes to.
	SendsTo() string
	// Run decodes a new body with decode (unless the command takes none), then carries it out as
	// Execute does.
	Run(ctx context.Context, e Edge, id string, decode func(body any, optional bool) *Problem, m wire.CommandMeta) (Result, error)
}

// Edge is how a command leaves the edge: the encoded request exchanged with the service of the
// endpoint named (relative to the edge's namespace) for its encoded answer. Send is the typed way
// over it.
type Edge interface {
	Exchange(ctx context.Context, endpoint string, request []byte) ([]byte, error)
}

// Send sends req to endpoint over e and answers the endpoint's answer, and its encoding.
func Send[Req, Resp any](ctx context.Context, e Edge, endpoint wire.Endpoint[Req, Resp], req Req) (Resp, []byte, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, nil, fmt.Errorf("%s: encode the request: %w", endpoint.Name, err)
	}
	answer, err := e.Exchange(ctx, endpoint.Name, data)
	if err != nil {
		return resp, nil, err
	}
	if err := json.Unmarshal(answer, &resp); err != nil {
		return resp, nil, fmt.Errorf("%s: the service's answer: %w", endpoint.Name, err)
	}
	return resp, answer, nil
}

// Result is a carried-out command: the id it names and the log position of its events, and the
// service's whole answer when it is a receipt.
type Result struct {
	ID, Position string
	Receipt      json.RawMessage
}

// Describe returns c's Doc.
func (c *Command[B, Req, Resp]) Describe() Doc { return c.Doc }

// SendsTo implements Operation.
func (c *Command[B, Req, Resp]) SendsTo() string { return c.Endpoint.Name }

// NewBody implements Operation.
func (c *Command[B, Req, Resp]) NewBody() any {
	if c.Doc.NoBody {
		return nil
	}
	return new(B)
}

// Authorize lets an admin do c, and a customer only what c.Customer allows (it may scope body to
// the caller). Without a principal (authentication off) everyone is an admin.
func (c *Command[B, Req, Resp]) Authorize(ctx context.Context, id string, body *B) *Problem {
	p, ok := auth.From(ctx)
	if !ok || p.IsAdmin() {
		return nil
	}
	if c.Customer == nil {
		return Forbidden(c.Doc.Summary + " is for admins")
	}
	return c.Customer(p, id, body)
}

// Execute authorizes body for the caller and sends c's request: a refusal is a *Problem, a
// service's error an *rpc.Error.
func Execute[B, Req, Resp any](ctx context.Context, e Edge, c *Command[B, Req, Resp], id string, body *B, m wire.CommandMeta) (Result, error) {
	if p := c.Authorize(ctx, id, body); p != nil {
		return Result{}, p
	}
	req, answerID := c.Request(ctx, id, body, m)
	_, answer, err := Send(ctx, e, c.Endpoint, req)
	if err != nil {
		return Result{}, err
	}
	var reply struct { // a wire.CommandReply's, or a receipt's (Doc.Receipt)
		Position string `json:"position"`
	}
	if err := json.Unmarshal(answer, &reply); err != nil {
		return Result{}, fmt.Errorf("%s: the service's answer: %w", c.Endpoint.Name, err)
	}
	res := Result{ID: answerID, Position: reply.Position}
	if c.Doc.Receipt != nil {
		res.Receipt = answer
	}
	return res, nil
}

// Run implements Operation.
func (c *Command[B, Req, Resp]) Run(ctx context.Context, e Edge, id string, decode func(body any, optional bool) *Problem, m wire.CommandMeta) (Result, error) {
	body := new(B)
	if c.Doc.NoBody {
		if p := decode(&struct{}{}, true); p != nil {
			return Result{}, p
		}
	} else if p := decode(body, c.Doc.OptionalBody); p != nil {
		return Result{}, p
	}
	return Execute(ctx, e, c, id, body, m)
}

// Problem is an RFC 9457 problem details body: how the edge refuses a request.
type Problem struct {
	Type     string            `json:"type"`
	Title    string            `json:"title"`
	Status   int               `json:"status"`
	Detail   string            `json:"detail,omitempty"`
	Instance string            `json:"instance,omitempty"`
	Field    string            `json:"field,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
}

func (p *Problem) Error() string { return p.Detail }

// Forbidden is the answer to a caller acting beyond its role.
func Forbidden(detail string) *Problem {
	return &Problem{Status: http.StatusForbidden, Type: "forbidden", Title: "Forbidden", Detail: detail}
}
