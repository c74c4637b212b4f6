package fulfillment

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/wire"
)

// Target is the fulfillment-saga target: the saga's projection of the event log into its state
// and outbox, the dispatcher that queues its commands on JetStream, its deadlines, and its query
// endpoints (sagas list, counts), with opts' timeouts.
func Target(opts Options) target.Target {
	return target.Target{Name: "fulfillment-saga", EventStoreConns: 2, Databases: []target.Database{{Schema: Name, Conns: 6}},
		Start: func(ctx context.Context, d target.Deps, p *target.Process) error {
			pool := d.Pool(Name)
			saga := New(pool, opts, d.Log)
			metrics := projections.SharedMetrics(p, d)
			publish := projections.PublishJSON(d.NC.Publish, d.Namespace.Progress(Name))
			pr := projections.New(d.Store, pool, saga, projections.Options{Linger: opts.Linger, Log: d.Log, Metrics: metrics, Publish: func(pr wire.Progress) {
				saga.Committed()
				publish(pr)
			}})
			metrics.Watch(pr, d.Head)
			if err := pr.Migrate(ctx); err != nil {
				return err
			}
			p.Check(func(context.Context) error { return pr.Health() })
			p.Go(ctx, func(ctx context.Context) { _ = pr.Run(ctx) })
			// Its commands say who queues them: the saga itself, signed with its identity's key when the
			// process has one (the command services then carry out no command anyone else queued).
			signer, _ := auth.SignerFrom(ctx)
			p.Go(ctx, func(ctx context.Context) {
				ctx = auth.WithSigner(auth.With(ctx, auth.Principal{Subject: Actor, Role: auth.Service}), signer)
				_ = saga.Dispatch(ctx, d.JS, d.Namespace)
			})
			p.Go(ctx, func(ctx context.Context) { _ = saga.Deadlines(ctx, deadlineTick) })
			w, err := projections.Follow(d.NC, d.Namespace, pool, Name)
			if err != nil {
				return err
			}
			p.OnStop(w.Close)
			q := Queries{Saga: saga, ReadModel: progress.ReadModel{Waiter: w, ConsistencyTimeout: d.ConsistencyTimeout}}
			gauges(d.Metrics, func(ctx context.Context) (wire.FulfillmentCounts, error) { return q.Counts(ctx, struct{}{}) })
			_, err = Register(ctx, d.NC, d.Namespace, d.Log, q)
			return err
		}}
}

// deadlineTick is how often the saga looks for steps past their deadline.
const deadlineTick = 250 * time.Millisecond

// gauges export the saga's figures, read from its tables at most once a second whatever the
// scrape rate.
func gauges(reg *prometheus.Registry, counts func(context.Context) (wire.FulfillmentCounts, error)) {
	var mu sync.Mutex
	var cached wire.FulfillmentCounts
	var at time.Time
	read := func() wire.FulfillmentCounts {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if c, err := counts(ctx); err == nil {
				cached, at = c, time.Now()
			}
		}
		return cached
	}
	for name, f := range map[string]func(wire.FulfillmentCounts) int64{
		"in_flight":   func(c wire.FulfillmentCounts) int64 { return c.InFlight },
		"confirmed":   func(c wire.FulfillmentCounts) int64 { return c.Confirmed },
		"compensated": func(c wire.FulfillmentCounts) int64 { return c.Compensated },
		"timed_out":   func(c wire.FulfillmentCounts) int64 { return c.TimedOut },
		"stuck":       func(c wire.FulfillmentCounts) int64 { return c.Stuck },
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderflow_fulfillment_sagas", Help: "Fulfillment sagas by state: in flight, finished by outcome, or stuck (parked for an operator).",
			ConstLabels: prometheus.Labels{"state": name},
		}, func() float64 { return float64(f(read())) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orderflow_fulfillment_outbox", Help: "Saga commands decided and not yet queued.",
	}, func() float64 { return float64(read().Outbox) }))
}
