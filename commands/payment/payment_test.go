package payment_test

import (
	"context"
	"errors"
	"testing"

	"github.com/orderflow/orderflow/commands/commandstest"
	"github.com/orderflow/orderflow/commands/payment"
	model "github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/wire"
)

// countingProvider approves amounts up to a limit and counts its calls.
type countingProvider struct {
	limit int64
	calls int
}

func (p *countingProvider) Authorize(_ context.Context, id, _ string, amount int64) (payment.Answer, error) {
	p.calls++
	if amount > p.limit {
		return payment.Answer{DeclineReason: "limit exceeded"}, nil
	}
	return payment.Answer{Approved: true, Ref: "ref-" + id}, nil
}

func TestAuthorizeAsksTheProviderOnce(t *testing.T) {
	t.Parallel()
	store := memory.New()
	p := &countingProvider{limit: 10_000}
	h := payment.Handlers{Writer: commandstest.Writer(store), Provider: p}
	req := wire.AuthorizePayment{Meta: wire.CommandMeta{CommandID: "auth-1"}, PaymentID: "pay1", OrderID: "o1", AmountCents: 5000}
	if _, err := h.Authorize(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Authorize(t.Context(), req); err != nil {
		t.Fatalf("retry: %v", err)
	}
	req.Meta.CommandID = "auth-2" // a second authorization of the same payment
	if _, err := h.Authorize(t.Context(), req); !errors.Is(err, model.ErrAlreadyAuthorized) {
		t.Fatalf("second authorization: %v", err)
	}
	if p.calls != 1 {
		t.Errorf("provider asked %d times, want once", p.calls)
	}
	declined := wire.AuthorizePayment{Meta: wire.CommandMeta{CommandID: "auth-3"}, PaymentID: "pay2", OrderID: "o2", AmountCents: 50_000}
	if _, err := h.Authorize(t.Context(), declined); err != nil {
		t.Fatalf("a decline is not an error: %v", err)
	}
	events, _ := store.ReadStream(t.Context(), model.Stream("pay2"), eventstore.ReadStreamOptions{})
	if len(events) != 1 || events[0].Type != model.TypeDeclined {
		t.Fatalf("pay2 events: %+v", events)
	}
	if _, err := h.Capture(t.Context(), wire.IDCommand{Meta: wire.CommandMeta{CommandID: "cap"}, ID: "pay1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Refund(t.Context(), wire.RefundPayment{Meta: wire.CommandMeta{CommandID: "ref"}, PaymentID: "pay1", AmountCents: 6000}); !errors.Is(err, model.ErrRefundTooLarge) {
		t.Fatalf("refund more than captured: %v", err)
	}
}

func TestNoProvider(t *testing.T) {
	t.Parallel()
	h := payment.Handlers{Writer: commandstest.Writer(memory.New())}
	_, err := h.Authorize(t.Context(), wire.AuthorizePayment{Meta: wire.CommandMeta{CommandID: "a"}, PaymentID: "p", OrderID: "o", AmountCents: 1})
	if !errors.Is(err, payment.ErrNoProvider) || payment.Classify(err).Code != "unavailable" {
		t.Fatalf("err = %v", err)
	}
}
