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

// TestEachSignalFromTheEnvironment: one endpoint sends traces, logs and metrics each to its path
// (http/protobuf), a signal's own endpoint wins, and OTEL_<SIGNAL>_EXPORTER=none turns that one off.
func TestEachSignalFromTheEnvironment(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9000/in"}
	getenv := func(k string) string { return env[k] }
	for name, got := range map[string]telemetry.Exporter{"traces": telemetry.ExporterFromEnv(getenv), "logs": telemetry.LogsFromEnv(getenv), "metrics": telemetry.MetricsFromEnv(getenv)} {
		want := map[string]string{"traces": "http://collector:4318/v1/traces", "logs": "http://logs:9000/in", "metrics": "http://collector:4318/v1/metrics"}[name]
		if got.Endpoint != want || got.Protocol != "http/protobuf" {
			t.Errorf("%s: %+v, want %s over http/protobuf", name, got, want)
		}
	}
	env["OTEL_METRICS_EXPORTER"], env["OTEL_TRACES_EXPORTER"] = "none", "none"
	if e := telemetry.MetricsFromEnv(getenv); e.Endpoint != "" {
		t.Errorf("metrics with OTEL_METRICS_EXPORTER=none: %+v", e)
	}
	if e := telemetry.ExporterFromEnv(getenv); e.Endpoint != "" {
		t.Errorf("traces with OTEL_TRACES_EXPORTER=none: %+v", e)
	}
	if e := telemetry.LogsFromEnv(getenv); e.Endpoint == "" {
		t.Error("logs turned off with the others")
	}
}
