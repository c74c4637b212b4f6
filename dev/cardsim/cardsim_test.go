package cardsim

import (
	"fmt"
	"testing"
)

// TestARetryGetsItsFirstAnswerAndMemoryIsBounded: a payment asked again gets the answer it got
// first (here: approved, although its new amount is over the limit), for as long as it is among
// the payments remembered; what the gateway remembers stays within two generations of Remember
// however many payments it sees; a payment forgotten is decided again from its request.
func TestARetryGetsItsFirstAnswerAndMemoryIsBounded(t *testing.T) {
	s := New(Options{Remember: 10})
	first := s.decision(Request{PaymentID: "pay-0", AmountCents: 100})
	if !first.Approved {
		t.Fatalf("pay-0 for 100 cents: %+v, want approved", first)
	}
	for i := 1; i < 15; i++ {
		s.decision(Request{PaymentID: fmt.Sprint("pay-", i), AmountCents: 100})
	}
	if again := s.decision(Request{PaymentID: "pay-0", AmountCents: MaxAmountCents + 1}); again != first {
		t.Errorf("pay-0 asked again (one of the last 20): %+v, want its first answer %+v", again, first)
	}
	for i := 15; i < 1000; i++ {
		s.decision(Request{PaymentID: fmt.Sprint("pay-", i), AmountCents: 100})
	}
	if n := len(s.recent) + len(s.older); n > 20 {
		t.Errorf("%d payments remembered after 1,000, want at most 20", n)
	}
	if again := s.decision(Request{PaymentID: "pay-1", AmountCents: MaxAmountCents + 1}); again.Approved {
		t.Errorf("pay-1, long forgotten, asked again over the limit: %+v, want it decided again (declined)", again)
	}
}
