package gateway

import (
	"context"
	"time"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/target"
)

// Target is the gateway target: REST, GraphQL (queries, mutations, subscriptions), the OpenAPI
// document and /metrics, as the process's HTTP handler. Its security is made as it starts
// (security reads the token keys then). Each NATS call it makes may wait for read-your-writes (the
// consistency timeout) and then some.
func Target(security func() (Security, error)) target.Target {
	return target.Target{Name: "gateway", Start: func(ctx context.Context, d target.Deps, p *target.Process) error {
		sec, err := security()
		if err != nil {
			return err
		}
		signer, _ := auth.SignerFrom(ctx) // its identity's key, when the process has NATS identities
		keys, err := NewIdempotencyKeys(ctx, d.NC, d.Namespace)
		if err != nil {
			return err
		}
		p.Serve(New(Options{NC: d.NC, Namespace: d.Namespace, Log: d.Log, Ready: p.Ready, Idempotency: keys, Metrics: d.Metrics,
			CallTimeout: d.ConsistencyTimeout + callMargin, Security: sec, Signer: signer}))
		return nil
	}}
}

// callMargin is what a NATS call may take beyond a read-your-writes wait: the query itself.
const callMargin = 2 * time.Second
