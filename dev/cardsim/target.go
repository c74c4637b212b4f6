package cardsim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/target"
)

// Settings configure the simulated card gateway of the payment-provider target.
type Settings struct {
	// Addr is where it listens.
	Addr string
	Options
}

// Target is the payment-provider target: the simulated card gateway, an HTTP service of its own
// at c.Addr. The payment-commands target of the same process calls it unless
// PAYMENT_PROVIDER_URL names another.
func Target(c Settings) target.Target {
	return target.Target{Name: "payment-provider", Start: func(_ context.Context, d target.Deps, p *target.Process) error {
		ln, err := net.Listen("tcp", c.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s (PAYMENT_PROVIDER_ADDR): %w", c.Addr, err)
		}
		h := telemetry.Targeted("payment-provider")(otelhttp.NewHandler(New(c.Options).Handler(), "card gateway"))
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		p.OnStop(func() { _ = srv.Close() })
		addr := ln.Addr().String()
		if host, port, err := net.SplitHostPort(addr); err == nil && (host == "0.0.0.0" || host == "::") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		p.Provide(target.PaymentProviderURL, "http://"+addr)
		d.Log.Info("payment provider (simulated card gateway) listening", "url", "http://"+addr)
		return nil
	}}
}
