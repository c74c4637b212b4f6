package telemetry

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// MetricsFromEnv says where metrics go, as the trace export's variables say
// (OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT; /v1/metrics is added to a
// base URL for http/protobuf; the protocol variables), unless OTEL_METRICS_EXPORTER is none.
func MetricsFromEnv(getenv func(string) string) Exporter { return signalFromEnv(getenv, "METRICS") }

// MetricExporter is the OTLP metric exporter exp names (nil, nil without an endpoint).
func MetricExporter(ctx context.Context, exp Exporter) (sdkmetric.Exporter, error) {
	switch {
	case exp.Endpoint == "":
		return nil, nil
	case exp.Protocol == "grpc":
		return otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(exp.Endpoint))
	case exp.Protocol == "http/protobuf" || exp.Protocol == "":
		return otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(exp.Endpoint))
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", exp.Protocol)
}

// PushMetrics sends what reg gathers (the process's Prometheus metrics, the same /metrics
// serves) to exp every interval, as OTLP metrics of service (the process's service: its target
// when it runs one) with the names of the targets it runs (orderflow.targets). Nothing is
// measured twice: the bridge reads the registry at each export. The returned function sends the
// last figures and stops.
func PushMetrics(reg prometheus.Gatherer, exp sdkmetric.Exporter, interval time.Duration, service string, targets []string) func(context.Context) error {
	res := serviceResource(service, attribute.String("orderflow.targets", strings.Join(targets, ",")))
	var opts []sdkmetric.PeriodicReaderOption
	if interval > 0 {
		opts = append(opts, sdkmetric.WithInterval(interval))
	}
	opts = append(opts, sdkmetric.WithProducer(hexIDs{otelprom.NewMetricProducer(otelprom.WithGatherer(reg))}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, opts...)), sdkmetric.WithResource(res))
	return mp.Shutdown
}

// hexIDs makes the exemplars of p's metrics OpenTelemetry's: the bridge copies an exemplar's
// trace_id and span_id labels, the hex Prometheus shows, as the bytes of that text (32 bytes for a
// 16-byte trace id), which OTLP receivers refuse or mangle; they are decoded here.
type hexIDs struct{ sdkmetric.Producer }

func (p hexIDs) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	scopes, err := p.Producer.Produce(ctx)
	for _, sm := range scopes {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[float64]:
				for _, dp := range data.DataPoints {
					decodeIDs(dp.Exemplars)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					decodeIDs(dp.Exemplars)
				}
			}
		}
	}
	return scopes, err
}

// decodeIDs turns each exemplar's hex trace and span ids into their bytes; an id that is not
// hex of the right length is dropped (its exemplar stays, unlinked).
func decodeIDs(exemplars []metricdata.Exemplar[float64]) {
	for i := range exemplars {
		exemplars[i].TraceID = decodeID(exemplars[i].TraceID, 16)
		exemplars[i].SpanID = decodeID(exemplars[i].SpanID, 8)
	}
}

func decodeID(text []byte, size int) []byte {
	if len(text) != 2*size {
		return nil
	}
	id := make([]byte, size)
	if _, err := hex.Decode(id, text); err != nil {
		return nil
	}
	return id
}
