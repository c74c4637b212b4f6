// Package otelsink keeps what an OpenTelemetry SDK exports, for tests: where OTLP export would
// send metrics, a Metrics sink takes them in memory.
package otelsink

import (
	"context"
	"encoding/hex"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Point is one data point exported: its resource's service, its metric, its attributes, its
// value (a sum or gauge's value; a histogram's count) and the trace ids of its exemplars.
type Point struct {
	Service, Metric string
	Resource        attribute.Set
	Attributes      attribute.Set
	Value           float64
	Exemplars       []string
}

// Metrics is an sdkmetric.Exporter that keeps every point it is given (copied: a reader reuses
// what it exports).
type Metrics struct {
	mu      sync.Mutex
	points  []Point
	exports int
}

func (m *Metrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (m *Metrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (m *Metrics) ForceFlush(context.Context) error { return nil }
func (m *Metrics) Shutdown(context.Context) error   { return nil }

func (m *Metrics) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	service, _ := rm.Resource.Set().Value(semconv.ServiceNameKey)
	var points []Point
	add := func(metric string, attrs attribute.Set, value float64, exemplars []metricdata.Exemplar[float64]) {
		p := Point{Service: service.AsString(), Metric: metric, Resource: *rm.Resource.Set(), Attributes: attrs, Value: value}
		for _, e := range exemplars {
			p.Exemplars = append(p.Exemplars, hex.EncodeToString(e.TraceID))
		}
		points = append(points, p)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, metric := range sm.Metrics {
			switch data := metric.Data.(type) {
			case metricdata.Sum[float64]:
				for _, dp := range data.DataPoints {
					add(metric.Name, dp.Attributes, dp.Value, dp.Exemplars)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range data.DataPoints {
					add(metric.Name, dp.Attributes, dp.Value, dp.Exemplars)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					add(metric.Name, dp.Attributes, float64(dp.Count), dp.Exemplars)
				}
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.points = append(m.points, points...)
	m.exports++
	return nil
}

// Points are the points exported so far, and how many exports brought them.
func (m *Metrics) Points() ([]Point, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Point(nil), m.points...), m.exports
}

var _ sdkmetric.Exporter = (*Metrics)(nil)
