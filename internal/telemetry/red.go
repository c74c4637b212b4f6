package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// RED metrics of every endpoint: rate (the histograms' counts), errors (the outcome label) and
// duration, per NATS endpoint, queued command, REST route and GraphQL operation. They are
// process-wide collectors (every platform of a process counts into them); Register adds them to
// a process's registry. An observation made inside a sampled span carries its trace id as an
// exemplar (served in the OpenMetrics format).
var (
	// NATSRequests: the services' requests, by service, endpoint and outcome ("ok" or an error code).
	NATSRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_nats_request_duration_seconds", Help: "Requests a service handled over NATS, by service, endpoint and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"service", "endpoint", "outcome"})
	// Jobs: queued commands carried out, by endpoint and outcome (ok, refused, retried).
	Jobs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_job_duration_seconds", Help: "Queued commands a service carried out, by endpoint and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"endpoint", "outcome"})
	// HTTPRequests: the gateway's requests, by route (REST operation or /graphql), method and status.
	HTTPRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_http_request_duration_seconds", Help: "Requests the gateway answered, by route, method and status.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route", "method", "status"})
	// GraphQLOperations: GraphQL operations, by operation name ("anonymous" without one), type and
	// outcome (ok, or the first error's code).
	GraphQLOperations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_graphql_operation_duration_seconds", Help: "GraphQL operations the gateway answered, by name, type and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"operation", "type", "outcome"})
)

// Register adds the RED collectors to reg (once per registry).
func Register(reg prometheus.Registerer) {
	for _, c := range []prometheus.Collector{NATSRequests, Jobs, HTTPRequests, GraphQLOperations} {
		if err := reg.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); !dup {
				panic(err)
			}
		}
	}
}

// Observe records how long since start took, with ctx's trace id as exemplar when its span is
// sampled.
func Observe(ctx context.Context, o prometheus.Observer, start time.Time) {
	d := time.Since(start).Seconds()
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(d)
}
