package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
)

// MaxBodyBytes caps a request body; larger ones are 413.
const MaxBodyBytes = 1 << 20

// decodeBody reads one JSON object into v, strictly: unknown fields, wrong types, trailing data
// and oversized bodies are the client's error, answered as a problem naming the field.
// An empty body decodes as {} when allowEmpty.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *problem {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &problem{Status: http.StatusUnsupportedMediaType, Type: "unsupported-media-type", Title: "Unsupported media type", Detail: "send application/json"}
		}
	}
	return decodeJSON(http.MaxBytesReader(w, r.Body, MaxBodyBytes), v, allowEmpty)
}

// decodeJSON is decodeBody's strict decoding, for bodies from elsewhere (GraphQL mutations).
func decodeJSON(in io.Reader, v any, allowEmpty bool) *problem {
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON object")
	}
	if errors.Is(err, io.EOF) && allowEmpty {
		return nil
	}
	if err == nil {
		return nil
	}
	bad := &problem{Status: http.StatusBadRequest, Type: "malformed", Title: "Malformed request body"}
	var (
		tooBig    *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return &problem{Status: http.StatusRequestEntityTooLarge, Type: "too-large", Title: "Request body too large", Detail: fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes)}
	case errors.As(err, &syntax):
		bad.Detail = fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typeError):
		bad.Type, bad.Title = "invalid-type", "Wrong type"
		bad.Field = typeError.Field
		bad.Detail = fmt.Sprintf("%s must be %s, not %s", typeError.Field, jsonKind(typeError.Type.Kind().String()), typeError.Value)
	case errors.Is(err, io.EOF):
		bad.Detail = "the body is empty; send a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		bad.Detail = "the JSON ends too early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		bad.Type, bad.Title = "unknown-field", "Unknown field"
		bad.Field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		bad.Detail = "unknown field " + bad.Field
	default:
		bad.Detail = err.Error()
	}
	return bad
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	}
	return goKind
}

// meta builds a command's identity from the request: Idempotency-Key when given (a retried
// request then appends nothing twice), else a fresh id; correlation and trace context.
func meta(r *http.Request, scope string) wire.CommandMeta {
	m := commandMeta(r.Context(), scope, r.Header.Get("Idempotency-Key"))
	m.TraceParent, m.TraceState = r.Header.Get("traceparent"), r.Header.Get("tracestate")
	return m
}

// commandMeta is a command's identity: with an idempotency key (REST's header, GraphQL's
// argument), the same command id for the same operation, aggregate and key; else a fresh one.
// The command id of a keyed request is the caller's own: two callers that happen to choose one
// key never share a command (one would get the other's answer).
func commandMeta(ctx context.Context, scope, key string) wire.CommandMeta {
	id := uuid.NewString()
	if key != "" {
		id = scope + ":" + callerKey(ctx) + ":" + key
	}
	return wire.CommandMeta{CommandID: id, CorrelationID: correlationID(ctx)}
}

func (g *gateway) command(ctx context.Context, endpoint string, req any) (wire.CommandReply, error) {
	subject := g.opts.Namespace.Subject(endpoint)
	ctx, cancel := context.WithTimeout(ctx, g.opts.CallTimeout)
	defer cancel()
	reply, err := rpc.Call[wire.CommandReply](ctx, g.opts.NC, subject, req)
	if err != nil {
		var rerr *rpc.Error
		if !errors.As(err, &rerr) || rerr.Code == rpc.CodeInternal {
			g.log.Error("command failed", "subject", subject, "err", err, "correlation_id", correlationID(ctx))
		}
	}
	return reply, err
}

// callerKey names the caller of a request (role and subject) in idempotency keys and command ids.
func callerKey(ctx context.Context) string {
	p, ok := auth.From(ctx)
	if !ok {
		p = anonymousAdmin
	}
	return string(p.Role) + "/" + p.Subject
}
