package payment_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain/payment"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

var authorized = payment.Authorized{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, ProviderRef: "ch_1", At: now}

func TestDecide(t *testing.T) {
	t.Parallel()
	captured := []payment.Event{authorized, payment.Captured{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000}}
	tests := []struct {
		name  string
		given []payment.Event
		when  payment.Command
		then  []payment.Event
		err   error
	}{
		{name: "authorize", when: payment.Authorize{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, Approved: true, ProviderRef: "ch_1"}, then: []payment.Event{authorized}},
		{name: "a decline is an event", when: payment.Authorize{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, DeclineReason: "insufficient funds"},
			then: []payment.Event{payment.Declined{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, Reason: "insufficient funds", At: now}}},
		{name: "authorize twice", given: []payment.Event{authorized}, when: payment.Authorize{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, Approved: true}, err: payment.ErrAlreadyAuthorized},
		{name: "capture", given: []payment.Event{authorized}, when: payment.Capture{PaymentID: "pay1"}, then: []payment.Event{payment.Captured{PaymentID: "pay1", OrderID: "o1", AmountCents: 5000, At: now}}},
		{name: "capture again is a no-op", given: captured, when: payment.Capture{PaymentID: "pay1"}},
		{name: "capture unknown", when: payment.Capture{PaymentID: "pay1"}, err: payment.ErrNotFound},
		{name: "capture declined", given: []payment.Event{payment.Declined{PaymentID: "pay1", OrderID: "o1", AmountCents: 1}}, when: payment.Capture{PaymentID: "pay1"}, err: payment.ErrNotAuthorized},
		{name: "void", given: []payment.Event{authorized}, when: payment.Void{PaymentID: "pay1"}, then: []payment.Event{payment.Voided{PaymentID: "pay1", OrderID: "o1", At: now}}},
		{name: "void captured", given: captured, when: payment.Void{PaymentID: "pay1"}, err: payment.ErrNotAuthorized},
		{name: "refund part", given: captured, when: payment.Refund{PaymentID: "pay1", AmountCents: 1000}, then: []payment.Event{payment.Refunded{PaymentID: "pay1", OrderID: "o1", AmountCents: 1000, At: now}}},
		{name: "refund too much", given: append(captured[:2:2], payment.Refunded{AmountCents: 4500}), when: payment.Refund{PaymentID: "pay1", AmountCents: 1000}, err: payment.ErrRefundTooLarge},
		{name: "refund uncaptured", given: []payment.Event{authorized}, when: payment.Refund{PaymentID: "pay1", AmountCents: 1}, err: payment.ErrNotCaptured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s payment.State
			for _, e := range tt.given {
				s = payment.Evolve(s, e)
			}
			got, err := payment.Decide(s, tt.when, now)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.then, got); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
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
