package commands

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
)

// Job adapts a handler to a queued command (package jobs): a refusal the sender must live with
// (invalid, unknown, illegal transition, not allowed) is final; anything else is retried by the queue.
func Job[Req, Resp any](classify func(error) *rpc.Error, fn func(context.Context, Req) (Resp, error)) jobs.Handler {
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
