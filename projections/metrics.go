package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/eventstore"
)

// Metrics are the projectors' Prometheus figures; one set per process, labelled by projection.
type Metrics struct {
	applied *prometheus.CounterVec
	batch   *prometheus.HistogramVec
	reg     prometheus.Registerer
}

// NewMetrics registers the projector metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_projection_events_applied_total", Help: "Events applied to a read model."}, []string{"projection"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "orderflow_projection_batch_seconds", Help: "Time to apply and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"projection"}),
		reg: reg,
	}
	reg.MustRegister(m.applied, m.batch)
	return m
}

// Watch exports p's lag behind the head of the log (in events and in seconds: this worker's, of
// the partitions it holds), the partitions it holds and its parked events. head returns the log's last position; nil leaves lag out.
func (m *Metrics) Watch(p *Projector, head func(context.Context) (eventstore.Position, error)) {
	name := prometheus.Labels{"projection": p.proj.Name()}
	if head != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_projection_lag_events", Help: "Log positions between the head and the read model.", ConstLabels: name},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				h, err := head(ctx)
				pos := p.Position()
				if err != nil || pos.Prepare == 0 || h.Prepare <= pos.Prepare { // a horizon position: caught up
					return 0
				}
				return float64(h.Prepare - pos.Prepare)
			}))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_projection_lag_seconds", Help: "Time since the read model last moved while it was behind; 0 when caught up.", ConstLabels: name},
		func() float64 {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.caughtUp || p.movedAt.IsZero() {
				return 0
			}
			return time.Since(p.movedAt).Seconds()
		}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_projection_partitions_held", Help: "Partitions of the read model this worker holds (of Options.Partitions).", ConstLabels: name},
		func() float64 { return float64(len(p.heldParts())) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_projection_parked", Help: "Events parked by a read model.", ConstLabels: name},
		func() float64 { return float64(countParked(p.pool, p.proj.Name())) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "orderflow_projection_up", Help: "1 while the projection runs without error (or stands by), 0 otherwise.", ConstLabels: name},
		func() float64 {
			if p.Health() != nil {
				return 0
			}
			return 1
		}))
}

func countParked(pool *pgxpool.Pool, name string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n int64
	_ = pool.QueryRow(ctx, `select count(*) from projection_parked where name = $1`, name).Scan(&n)
	return n
}
