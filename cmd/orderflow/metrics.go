package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/wire"
)

// sagaMetrics exports the fulfillment saga's figures as gauges, read from its tables at most once
// a second whatever the scrape rate.
func sagaMetrics(reg *prometheus.Registry, counts func(context.Context) (wire.FulfillmentCounts, error)) {
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

// breakerMetrics exports the payment provider's circuit breaker: 1 for its current state.
func breakerMetrics(reg *prometheus.Registry, state func() string) {
	for _, s := range []string{"closed", "half-open", "open"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderflow_payment_provider_breaker", Help: "The payment provider's circuit breaker: 1 for the state it is in.",
			ConstLabels: prometheus.Labels{"state": s},
		}, func() float64 {
			if state() == s {
				return 1
			}
			return 0
		}))
	}
}
