package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/orderflow/orderflow/gateway/api"
	"github.com/orderflow/orderflow/internal/rpc"
)

// problemBase prefixes every problem type: one stable URI per kind of error (RFC 9457).
const problemBase = "https://orderflow.dev/problems/"

// problem is an RFC 9457 problem details body (api.Problem: commands refuse with it too).
type problem = api.Problem

func internalProblem() *problem {
	return &problem{Status: http.StatusInternalServerError, Type: "internal", Title: "Internal error", Detail: "internal error"}
}

// problemFor is the one place that maps a service error to HTTP. Internal errors say only
// "internal error"; the detail was logged where it happened.
func problemFor(err error) *problem {
	var e *rpc.Error
	if !errors.As(err, &e) {
		return internalProblem()
	}
	p := &problem{Detail: e.Message, Field: e.Field, Details: e.Details}
	switch e.Code {
	case rpc.CodeInvalid:
		p.Status, p.Type, p.Title = http.StatusUnprocessableEntity, "invalid", "Invalid request"
	case rpc.CodeNotFound:
		p.Status, p.Type, p.Title = http.StatusNotFound, "not-found", "Not found"
	case rpc.CodeConflict:
		p.Status, p.Type, p.Title = http.StatusConflict, "conflict", "Conflict with the current state"
	case rpc.CodeForbidden: // a service refused the caller the gateway let through
		p.Status, p.Type, p.Title = http.StatusForbidden, "forbidden", "Forbidden"
	case rpc.CodeStale:
		p.Status, p.Type, p.Title = http.StatusGatewayTimeout, "stale-read", "Read model behind the requested position"
	case rpc.CodeUnavailable:
		p.Status, p.Type, p.Title = http.StatusServiceUnavailable, "unavailable", "Service unavailable"
	default:
		return internalProblem()
	}
	return p
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	p.Type = problemBase + p.Type
	if p.Instance == "" {
		p.Instance = r.URL.EscapedPath() // escaped: a control or bidi character of a path is not echoed
	}
	w.Header().Set("Content-Type", "application/problem+json")
	if p.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1") // every 503 is an outage that passes: say when to retry
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
