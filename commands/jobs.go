package commands

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Queued is a command service's handler of one endpoint's queued commands (see JobOn).
type Queued struct {
	name   string
	handle func(classify func(error) *rpc.Error) jobs.Handler
}

// JobOn carries out endpoint's queued commands with fn, which takes the endpoint's request.
func JobOn[Req, Resp any](endpoint wire.Endpoint[Req, Resp], fn func(context.Context, Req) (Resp, error)) Queued {
	return Queued{name: endpoint.Name, handle: func(classify func(error) *rpc.Error) jobs.Handler { return job(classify, fn) }}
}

// Jobs are the handlers of a command service's queued commands, by endpoint, its errors told
// final or not by classify (see job).
func Jobs(classify func(error) *rpc.Error, queued ...Queued) map[string]jobs.Handler {
	out := make(map[string]jobs.Handler, len(queued))
	for _, q := range queued {
		out[q.name] = q.handle(classify)
	}
	return out
}

// job adapts a handler to a queued command (package jobs): a refusal the sender must live with
// (invalid, unknown, illegal transition, not allowed) is final; anything else is retried by the queue.
func job[Req, Resp any](classify func(error) *rpc.Error, fn func(context.Context, Req) (Resp, error)) jobs.Handler {
	return func(ctx context.Context, data []byte) error {
		var req Req
		dec := json.NewDecoder(bytes.NewReader(data))
		if jobs.IsStrict(ctx) {
			dec.DisallowUnknownFields()
		}
		if err := dec.Decode(&req); err != nil {
			return &rpc.Error{Code: rpc.CodeInvalid, Message: "malformed queued command: " + err.Error()}
		}
		if _, err := fn(ctx, req); err != nil {
			if e := classify(err); rpc.Final(e.Code) {
				return e
			}
			return err
		}
		return nil
	}
}
