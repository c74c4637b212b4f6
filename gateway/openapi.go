package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/orderflow/orderflow/gateway/api"
)

// openAPI builds the OpenAPI 3.1 document of the REST API from api.Commands.
func openAPI() map[string]any {
	problemRef := map[string]any{"$ref": "#/components/schemas/Problem"}
	problemResponse := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/problem+json": map[string]any{"schema": problemRef}}}
	}
	errorDesc := map[int]string{
		400: "Malformed request: invalid JSON, wrong types, unknown fields; `field` names the offender",
		404: "No such resource", 409: "The current state forbids this command, or the request with this Idempotency-Key is still running",
		413: "Body over 1 MiB", 415: "Body is not application/json",
		422: "Invalid command (a rule is broken; `field` names it), or an Idempotency-Key reused with another request",
		503: "A service is unavailable; retry",
		401: "No bearer token, or an invalid or expired one",
		403: "The token's role may not do this (customers act only on their own orders and profile)",
		429: "Too many requests from this client; `Retry-After` says when to come back",
	}
	paths := map[string]any{}
	for _, c := range api.Commands {
		op := c.Describe()
		params := []any{map[string]any{"name": "Idempotency-Key", "in": "header", "required": false,
			"description": "Makes a retry safe: the same key with the same request replays the first response for 24 h",
			"schema":      map[string]any{"type": "string", "maxLength": 255}}}
		if op.IDParam != "" {
			params = append(params, map[string]any{"name": op.IDParam, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		status := "200"
		if op.Created {
			status = "201"
		}
		ok := map[string]any{
			"description": "Carried out; `position` is where its events are in the log",
			"headers": map[string]any{"X-Consistency-Position": map[string]any{"description": "Pass to reads to see this command's effects",
				"schema": map[string]any{"type": "string"}}},
			"content": map[string]any{"application/json": map[string]any{"schema": object([]string{op.IDField, "position"},
				map[string]any{op.IDField: str("id of the " + op.Tag[:len(op.Tag)-1]), "position": str("log position of the command's events")})}},
		}
		if op.Receipt != nil {
			ok["description"] = "Carried out; the answer is its receipt"
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": op.Receipt}}
		}
		if op.Created {
			ok["headers"].(map[string]any)["Location"] = map[string]any{"description": "The new resource", "schema": map[string]any{"type": "string"}}
		}
		responses := map[string]any{status: ok}
		for _, code := range append([]int{400, 401, 403, 413, 415, 422, 429, 503}, op.Errors...) {
			responses[strconv.Itoa(code)] = problemResponse(errorDesc[code])
		}
		who := "Admins only."
		if op.ForCustomers {
			who = "Admins, and customers for themselves."
		}
		o := map[string]any{"operationId": op.ID, "summary": op.Summary, "description": who, "tags": []string{op.Tag}, "parameters": params, "responses": responses}
		if !op.NoBody {
			o["requestBody"] = map[string]any{"required": !op.OptionalBody, "content": map[string]any{
				"application/json": map[string]any{"schema": op.Schema, "example": op.Example}}}
		}
		item, _ := paths[op.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.Path] = item
		}
		item[strings.ToLower(op.Method)] = o
	}
	paths["/api/v1/openapi.json"] = map[string]any{"get": map[string]any{"operationId": "openAPI", "summary": "This document", "tags": []string{"meta"},
		"security":  []any{},
		"responses": map[string]any{"200": map[string]any{"description": "The OpenAPI 3.1 document", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}}}}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "orderflow REST API", "version": "1.0.0",
			"description": "Commands of the orderflow platform. Money is in integer cents. Reads are GraphQL, at /graphql."},
		"servers": []any{map[string]any{"url": "/"}},
		"tags": []any{map[string]any{"name": "orders"}, map[string]any{"name": "customers"}, map[string]any{"name": "products"},
			map[string]any{"name": "payments"}, map[string]any{"name": "meta"}},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{"securitySchemes": map[string]any{"bearer": map[string]any{
			"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
			"description": "HS256 or RS256 token with `sub` and `role` (customer: its customer id; admin). `orderflow token` issues development tokens."}},
			"schemas": map[string]any{"Problem": map[string]any{
				"type": "object", "description": "RFC 9457 problem details", "required": []string{"type", "title", "status"},
				"properties": map[string]any{
					"type":  map[string]any{"type": "string", "format": "uri", "description": "stable identifier of the kind of error"},
					"title": str("short summary of the kind"), "status": map[string]any{"type": "integer"}, "detail": str("what happened here"),
					"instance": str("the request path"), "field": str("the offending field, when there is one"),
					"details": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
				},
			}}},
	}
}

var openAPIJSON = sync.OnceValue(func() []byte {
	b, err := json.MarshalIndent(openAPI(), "", "  ")
	if err != nil {
		panic(err) // a literal document that does not marshal is a programming error
	}
	return b
})

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
func object(required []string, props map[string]any) map[string]any {
	return map[string]any{"type": "object", "additionalProperties": false, "required": required, "properties": props}
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIJSON())
}
