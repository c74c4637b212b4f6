package gateway

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/gateway/api"
)

// handler serves one command over REST: decode strictly, authorize, call the service, answer
// with the id and the log position of the command's events. The router and the OpenAPI document
// are both built from api.Commands, and a test walks the router against the document.
func (g *gateway) handler(op api.Operation) http.HandlerFunc {
	doc := op.Describe()
	return func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetName(doc.Method + " " + doc.Path) // the route, not the ids
		id := ""
		if doc.IDParam != "" {
			var p *problem
			if id, p = pathID(r, doc.IDParam, doc.IDField); p != nil {
				writeProblem(w, r, p)
				return
			}
		}
		decode := func(body any, optional bool) *problem { return decodeBody(w, r, body, optional) }
		res, err := op.Run(r.Context(), g, id, decode, meta(r, doc.ID+":"+id))
		if err != nil {
			var p *problem
			if !errors.As(err, &p) {
				p = problemFor(err)
			}
			writeProblem(w, r, p)
			return
		}
		w.Header().Set("X-Consistency-Position", res.Position)
		status := http.StatusOK
		if doc.Created {
			status = http.StatusCreated
			w.Header().Set("Location", r.URL.Path+"/"+res.ID)
		}
		if res.Receipt != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(res.Receipt)
			return
		}
		writeJSON(w, status, map[string]string{doc.IDField: res.ID, "position": res.Position})
	}
}

// pathID is the path parameter name decoded exactly once, and checked to be an identifier (422 on
// field, the id's name in answers, otherwise). The router matches the raw path when it holds escapes (so that an escaped slash
// stays inside its segment) and then hands the segment over still escaped: "a%2Fb" is the id
// "a/b", refused, never an order literally named "a%2Fb".
func pathID(r *http.Request, name, field string) (string, *problem) {
	id := chi.URLParam(r, name)
	if r.URL.RawPath != "" {
		decoded, err := url.PathUnescape(id)
		if err != nil {
			return "", &problem{Status: http.StatusBadRequest, Type: "malformed", Title: "Malformed path", Field: field, Detail: "the path's " + field + " is not a valid escape sequence"}
		}
		id = decoded
	}
	if err := domain.CheckID(field, id); err != nil {
		var rule *domain.RuleError
		errors.As(err, &rule)
		return "", &problem{Status: http.StatusUnprocessableEntity, Type: "invalid", Title: "Invalid request", Field: field, Detail: rule.Reason}
	}
	return id, nil
}
