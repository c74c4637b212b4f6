package payment

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/target"
)

// Target is the payment-commands target: the payment service over NATS, and the payment commands
// the fulfillment saga queues. It calls the card gateway at providerURL, else the one the
// payment-provider target of its process serves; without either, authorizations wait.
func Target(providerURL string) target.Target {
	return target.Target{Name: "payment-commands", EventStoreConns: 3, Start: func(ctx context.Context, d target.Deps, p *target.Process) error {
		url := providerURL
		if url == "" {
			url, _ = target.Lookup[string](p, target.PaymentProviderURL)
		}
		h := Handlers{Writer: d.Writer}
		if url == "" {
			d.Log.Warn("payment-commands without a card gateway: set PAYMENT_PROVIDER_URL or run the payment-provider target; authorizations wait")
		} else {
			provider := NewHTTPProvider(url, HTTPProviderOptions{OnStateChange: func(from, to string) {
				d.Log.Warn("payment provider circuit breaker", "from", from, "to", to)
			}})
			h.Provider = provider
			breakerMetrics(d.Metrics, provider.BreakerState)
		}
		if _, err := Register(ctx, d.NC, d.Namespace, d.Log, h); err != nil {
			return err
		}
		return jobs.Consume(ctx, d.JS, d.Namespace, "payment-commands", d.Log, h.Jobs())
	}}
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
