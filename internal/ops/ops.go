// Package ops serves what operators and orchestrators probe: /healthz (the process lives),
// /readyz (it can do its work) and /metrics (Prometheus), on every target, gateway or not.
package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Healthz answers 200 while the process can answer at all.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	write(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readyz answers 200 when ready returns nil within 2 s, else 503 with the reason.
func Readyz(ready func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := ready(ctx); err != nil {
				write(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
				return
			}
		}
		write(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// Handler serves /healthz, /readyz and, with a registry, /metrics: the HTTP face of a target
// without the gateway.
func Handler(ready func(context.Context) error, metrics *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	mux.Handle("GET /readyz", Readyz(ready))
	if metrics != nil {
		mux.Handle("GET /metrics", Metrics(metrics))
	}
	return mux
}

// Metrics serves a registry in the Prometheus text format, or OpenMetrics (with the exemplars
// that point from a latency to its trace) to scrapers that ask for it.
func Metrics(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
