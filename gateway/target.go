package gateway

import (
	"context"
	"time"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/target"
)

// Target is the gateway target: REST, GraphQL (queries, mutations, subscriptions), the OpenAPI
// document and /metrics, as the process's HTTP handler. Each NATS call it makes may wait for
// read-your-writes (the consistency timeout) and then some.
var Target = target.Target{Name: "gateway", Start: func(ctx context.Context, d target.Deps, p *target.Process) error {
	signer, _ := auth.SignerFrom(ctx) // its identity's key, when the process has NATS identities
	keys, err := NewIdempotencyKeys(ctx, d.NC, d.Namespace)
	if err != nil {
		return err
	}
	p.Serve(New(Options{NC: d.NC, Namespace: d.Namespace, Log: d.Log, Ready: p.Ready, Idempotency: keys, Metrics: d.Metrics,
		CallTimeout: d.Settings.ConsistencyTimeout + callMargin, Security: d.Settings.Gateway, Signer: signer}))
	return nil
}}

// callMargin is what a NATS call may take beyond a read-your-writes wait: the query itself.
const callMargin = 2 * time.Second
