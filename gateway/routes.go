package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

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
			id = chi.URLParam(r, doc.IDParam)
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

// Send carries a command to its service (api.Edge).
func (g *gateway) Send(ctx context.Context, endpoint string, req any) (json.RawMessage, error) {
	return g.command(ctx, endpoint, req)
}
