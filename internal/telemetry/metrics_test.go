package telemetry_test

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/testkit/otelsink"
)

// TestMetricsArePushed: what a process's registry holds (/metrics) is pushed as OTLP metrics of
// the process's service, with the targets it runs, the figures as measured (a counter's value, a
// histogram's count and its exemplar's trace); what was measured after the last period goes at
// shutdown.
func TestMetricsArePushed(t *testing.T) {
	reg := prometheus.NewRegistry()
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_test_jobs_total", Help: "Jobs."}, []string{"outcome"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "orderflow_test_duration_seconds", Help: "Latency.", Buckets: []float64{0.01, 0.1}})
	reg.MustRegister(jobs, latency)
	sink := &otelsink.Metrics{}
	stop := telemetry.PushMetrics(reg, sink, 0, "order-commands", []string{"order-commands"})
	jobs.WithLabelValues("ok").Add(3)
	latency.(prometheus.ExemplarObserver).ObserveWithExemplar(0.05, prometheus.Labels{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	points, exports := sink.Points()
	if exports != 1 {
		t.Errorf("%d exports, want 1 (the last figures at shutdown; the period is a minute)", exports)
	}
	find := func(metric string) otelsink.Point {
		i := slices.IndexFunc(points, func(p otelsink.Point) bool { return p.Metric == metric })
		if i < 0 {
			t.Fatalf("no %s among %+v", metric, points)
		}
		return points[i]
	}
	counter := find("orderflow_test_jobs_total")
	if outcome, _ := counter.Attributes.Value("outcome"); counter.Value != 3 || outcome.AsString() != "ok" || counter.Service != "order-commands" {
		t.Errorf("counter: %+v, want 3 jobs of outcome ok from order-commands", counter)
	}
	targets, _ := counter.Resource.Value("orderflow.targets")
	instance, _ := counter.Resource.Value("service.instance.id")
	if targets.AsString() != "order-commands" || instance.AsString() != telemetry.Instance || instance.AsString() == "" {
		t.Errorf("resource %v: want orderflow.targets and the instance (two instances are two series)", counter.Resource)
	}
	if h := find("orderflow_test_duration_seconds"); h.Value != 1 || !slices.Contains(h.Exemplars, "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("histogram: %+v, want one observation with its trace as exemplar", h)
	}
}
