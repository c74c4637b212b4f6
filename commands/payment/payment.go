// Package payment is the payment command service: authorize (through a card provider), capture,
// void, refund. Served on NATS micro.
package payment

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands"
	model "github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Answer is a card provider's decision.
type Answer struct {
	Approved      bool
	DeclineReason string
	Ref           string
}

// Provider authorizes amounts with a card provider. It must be idempotent by payment id: the
// service may ask again for a payment after a crash.
type Provider interface {
	Authorize(ctx context.Context, paymentID, orderID string, amountCents int64) (Answer, error)
}

// ErrNoProvider: this process has no card provider to authorize with.
var ErrNoProvider = errors.New("no payment provider configured")

// Handlers carries out payment commands.
type Handlers struct {
	// Writer carries out the commands on payments' streams.
	Writer *commands.Writer
	// Provider authorizes payments; nil refuses Authorize with ErrNoProvider.
	Provider Provider
	Now      func() time.Time
}

// aggregate is a payment's stream; its authorization creates it (not read first).
var aggregate = commands.NewDecider(model.Codec, model.Evolve, model.Stream, model.Validate, model.Decide).
	Creating(func(c model.Command) bool { _, ok := c.(model.Authorize); return ok })

func (h Handlers) command(ctx context.Context, id string, meta commands.Meta, c model.Command) (wire.CommandReply, error) {
	return aggregate.AnswerWith(ctx, h.Writer, id, meta, c, h.Now, func(s model.State, now time.Time) ([]model.Event, error) { return model.Decide(s, c, now) })
}

// Authorize asks the provider for the amount, unless the payment was already decided, and
// records its answer: Authorized, or Declined (an event, not an error).
func (h Handlers) Authorize(ctx context.Context, req wire.AuthorizePayment) (wire.CommandReply, error) {
	c := model.Authorize{PaymentID: req.PaymentID, OrderID: req.OrderID, AmountCents: req.AmountCents}
	return aggregate.AnswerWith(ctx, h.Writer, req.PaymentID, req.Meta, c, h.Now, func(s model.State, now time.Time) ([]model.Event, error) {
		if s.Status != model.StatusNone {
			return model.Decide(s, c, now) // already decided: the domain says so, the provider is not asked
		}
		if _, err := model.Decide(s, model.Authorize{PaymentID: c.PaymentID, OrderID: c.OrderID, AmountCents: c.AmountCents, Approved: true}, now); err != nil {
			return nil, err
		}
		if h.Provider == nil {
			return nil, ErrNoProvider
		}
		a, err := h.Provider.Authorize(ctx, req.PaymentID, req.OrderID, req.AmountCents)
		if err != nil {
			return nil, err
		}
		c.Approved, c.DeclineReason, c.ProviderRef = a.Approved, a.DeclineReason, a.Ref
		return model.Decide(s, c, now)
	})
}

// Capture captures an authorized payment. Capturing twice changes nothing.
func (h Handlers) Capture(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.command(ctx, req.ID, req.Meta, model.Capture{PaymentID: req.ID})
}

// Void releases an authorization.
func (h Handlers) Void(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.command(ctx, req.ID, req.Meta, model.Void{PaymentID: req.ID})
}

// Refund refunds part or all of a captured payment.
func (h Handlers) Refund(ctx context.Context, req wire.RefundPayment) (wire.CommandReply, error) {
	return h.command(ctx, req.PaymentID, req.Meta, model.Refund{PaymentID: req.PaymentID, AmountCents: req.AmountCents})
}

// Classify adds the payment service's own errors to commands.Classify.
func Classify(err error) *rpc.Error {
	if errors.Is(err, ErrNoProvider) || errors.Is(err, ErrProviderUnavailable) {
		return &rpc.Error{Code: rpc.CodeUnavailable, Message: err.Error()}
	}
	return commands.Classify(err)
}

// Status reports the provider's breaker.
func (h Handlers) Status(context.Context, struct{}) (wire.ProviderStatus, error) {
	p, ok := h.Provider.(interface{ BreakerState() string })
	if !ok {
		return wire.ProviderStatus{Configured: h.Provider != nil}, nil
	}
	return wire.ProviderStatus{Configured: true, Breaker: p.BreakerState()}, nil
}

// authorizeTimeout bounds a payment command: an authorization calls the card gateway (each call
// bounded by HTTPProviderOptions.Timeout, retried with backoff), so it gets longer than the
// other commands' rpc.CommandLimits.
const authorizeTimeout = 30 * time.Second

// Register serves the handlers as the payment-commands NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, h Handlers) (micro.Service, error) {
	svc := commands.Service(wire.ServicePaymentCommands, "authorizes, captures and refunds payments", ns)
	svc.Limits.Timeout = authorizeTimeout
	svc.Classify = pgerr.Classify(Classify) // the card provider's outages are outages too
	return svc.Serve(ctx, nc, log,
		rpc.Staff(rpc.On("authorize", wire.EndpointAuthorizePayment, h.Authorize)),
		rpc.Staff(rpc.On("capture", wire.EndpointCapturePayment, h.Capture)),
		rpc.Staff(rpc.On("void", wire.EndpointVoidPayment, h.Void)),
		rpc.Staff(rpc.On("refund", wire.EndpointRefundPayment, h.Refund)),
		rpc.Staff(rpc.On("provider", wire.EndpointPaymentProvider, h.Status)),
	)
}

// Jobs are the payment commands process managers queue (package jobs). While the provider is
// unavailable (down, breaker open) an authorization is retried later: the payment stays pending.
func (h Handlers) Jobs() map[string]jobs.Handler {
	return commands.Jobs(Classify,
		commands.JobOn(wire.EndpointAuthorizePayment, h.Authorize),
		commands.JobOn(wire.EndpointVoidPayment, h.Void),
	)
}
