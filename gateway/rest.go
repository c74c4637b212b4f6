package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// MaxBodyBytes caps a request body; larger ones are 413.
const MaxBodyBytes = 1 << 20

// decodeBody reads one JSON object into v, strictly: a body without a JSON Content-Type (415),
// unknown fields, field names in another case, a field given twice, wrong types, trailing data,
// bytes that are not UTF-8 and oversized bodies are the client's error, answered as a problem
// naming the field. An empty body decodes as {} when allowEmpty.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *problem {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &problem{Status: http.StatusRequestEntityTooLarge, Type: "too-large", Title: "Request body too large", Detail: fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return &problem{Status: http.StatusBadRequest, Type: "malformed", Title: "Malformed request body", Detail: err.Error()}
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && len(bytes.TrimSpace(data)) > 0 {
		return &problem{Status: http.StatusUnsupportedMediaType, Type: "unsupported-media-type", Title: "Unsupported media type", Detail: "say Content-Type: application/json"}
	}
	if ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &problem{Status: http.StatusUnsupportedMediaType, Type: "unsupported-media-type", Title: "Unsupported media type", Detail: "send application/json"}
		}
	}
	if !utf8.Valid(data) {
		return &problem{Status: http.StatusBadRequest, Type: "malformed", Title: "Malformed request body", Detail: "the body must be UTF-8"}
	}
	if loneSurrogate(data) {
		return &problem{Status: http.StatusBadRequest, Type: "malformed", Title: "Malformed request body", Detail: `a string escapes half of a UTF-16 surrogate pair ("\ud800") on its own`}
	}
	if p := checkKeys(data, reflect.TypeOf(v)); p != nil {
		return p
	}
	return decodeJSON(bytes.NewReader(data), v, allowEmpty)
}

// checkKeys refuses what encoding/json lets through silently: a key given twice in one object
// (the last would win) and a key that matches a field only in another case ("customerid" for
// "customerId"). Malformed JSON passes here, for decodeJSON to describe.
func checkKeys(data []byte, t reflect.Type) *problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	p, _ := checkValue(dec, t, "")
	return p
}

func checkValue(dec *json.Decoder, t reflect.Type, path string) (*problem, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := tok.(string)
			field := strings.TrimPrefix(path+"."+key, ".")
			if seen[strings.ToLower(key)] {
				return &problem{Status: http.StatusBadRequest, Type: "duplicate-field", Title: "Field given twice", Field: field,
					Detail: field + " is given more than once (in some case)"}, nil
			}
			seen[strings.ToLower(key)] = true
			var ft reflect.Type
			if fields != nil {
				var ok bool
				if ft, ok = fields[key]; !ok {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return &problem{Status: http.StatusBadRequest, Type: "unknown-field", Title: "Unknown field", Field: field,
								Detail: fmt.Sprintf("unknown field %s: field names are case-sensitive (%s)", field, name)}, nil
						}
					}
				}
			} else if t != nil && t.Kind() == reflect.Map {
				ft = t.Elem()
			}
			if p, err := checkValue(dec, ft, field); p != nil || err != nil {
				return p, err
			}
		}
		_, err = dec.Token()
		return nil, err
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for dec.More() {
			if p, err := checkValue(dec, et, path); p != nil || err != nil {
				return p, err
			}
		}
		_, err = dec.Token()
		return nil, err
	}
	return nil, nil
}

// jsonFields maps the JSON names of a struct's fields (embedded structs' included) to their types,
// worked out once per type (every command body is checked with it).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldsByType.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	f := structFields(t)
	fieldsByType.Store(t, f)
	return f
}

var fieldsByType sync.Map // reflect.Type → map[string]reflect.Type

func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, structFields(f.Type))
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// decodeJSON is decodeBody's strict decoding of the bytes read.
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
	return commandMeta(r.Context(), scope, r.Header.Get("Idempotency-Key"))
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
	p, ok := auth.From(ctx)
	if !ok {
		p = anonymousAdmin
	}
	m := wire.CommandMeta{CommandID: id, CorrelationID: correlationID(ctx), Actor: string(p.Role) + ":" + p.Subject}
	m.TraceParent, m.TraceState = telemetry.TraceParent(ctx) // the request's span: its trace goes on in the services
	return m
}

// Exchange carries a command to its service (api.Edge), within the call timeout; a failure
// inside the platform is logged.
func (g *gateway) Exchange(ctx context.Context, endpoint string, request []byte) ([]byte, error) {
	subject := g.opts.Namespace.Subject(endpoint)
	ctx, cancel := context.WithTimeout(ctx, g.opts.CallTimeout)
	defer cancel()
	reply, err := rpc.Exchange(ctx, g.opts.NC, subject, request)
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
