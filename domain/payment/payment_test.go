package payment_test

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain/domaintest"
	"github.com/orderflow/orderflow/domain/payment"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var authorized = payment.Authorized{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, ProviderRef: "ch_1", At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	captured := []payment.Event{authorized, payment.Captured{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000}}
	tests := []domaintest.Case[payment.Event, payment.Command]{
		{Name: "authorize", When: payment.Authorize{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, Approved: true, ProviderRef: "ch_1"}, Then: []payment.Event{authorized}},
		{Name: "a decline is an event", When: payment.Authorize{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, DeclineReason: "insufficient funds"},
			Then: []payment.Event{payment.Declined{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, Reason: "insufficient funds", At: now}}},
		{Name: "authorize twice", Given: []payment.Event{authorized}, When: payment.Authorize{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, Approved: true}, Err: payment.ErrAlreadyAuthorized},
		{Name: "capture", Given: []payment.Event{authorized}, When: payment.Capture{PaymentID: "pay1"}, Then: []payment.Event{payment.Captured{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, At: now}}},
		{Name: "capture again is a no-op", Given: captured, When: payment.Capture{PaymentID: "pay1"}},
		{Name: "capture unknown", When: payment.Capture{PaymentID: "pay1"}, Err: payment.ErrNotFound},
		{Name: "capture declined", Given: []payment.Event{payment.Declined{PaymentID: "pay1", OrderID: "o1", AmountCents: 1}}, When: payment.Capture{PaymentID: "pay1"}, Err: payment.ErrNotAuthorized},
		{Name: "void", Given: []payment.Event{authorized}, When: payment.Void{PaymentID: "pay1"}, Then: []payment.Event{payment.Voided{PaymentID: "pay1", OrderID: "o1", At: now}}},
		{Name: "void captured", Given: captured, When: payment.Void{PaymentID: "pay1"}, Err: payment.ErrNotAuthorized},
		{Name: "refund part", Given: captured, When: payment.Refund{PaymentID: "pay1", AmountCents: 1000}, Then: []payment.Event{payment.Refunded{PaymentID: "pay1", OrderID: "o1", AmountCents: 1000, At: now}}},
		{Name: "refund too much", Given: append(captured[:2:2], payment.Refunded{AmountCents: 4500}), When: payment.Refund{PaymentID: "pay1", AmountCents: 1000}, Err: payment.ErrRefundTooLarge},
		{Name: "refund uncaptured", Given: []payment.Event{authorized}, When: payment.Refund{PaymentID: "pay1", AmountCents: 1}, Err: payment.ErrNotCaptured},
	}
	domaintest.Run(t, payment.Evolve, payment.Decide, now, tests)
}

func TestFullRefund(t *testing.T) {
	t.Parallel()
	s := payment.State{}
	for _, e := range []payment.Event{authorized, payment.Captured{AmountCents: 5000}, payment.Refunded{AmountCents: 2000}, payment.Refunded{AmountCents: 3000}} {
		s = payment.Evolve(s, e)
	}
	if s.Status != payment.StatusRefunded {
		t.Errorf("status %s after refunding everything", s.Status)
	}
}
