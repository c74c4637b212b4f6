package auth_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/orderflow/orderflow/internal/auth"
)

func newKey(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return kp, pub
}

func TestCallerAssertions(t *testing.T) {
	gwKey, gwPub := newKey(t)
	sagaKey, sagaPub := newKey(t)
	strangerKey, _ := newKey(t)
	trust, err := auth.NewTrust(
		auth.Asserter{Identity: "gateway", Keys: []string{gwPub}},
		auth.Asserter{Identity: "fulfillment-saga", Keys: []string{sagaPub}, Subject: "saga:fulfillment", Role: auth.Service})
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := auth.NewSigner("gateway", gwKey)
	saga, _ := auth.NewSigner("fulfillment-saga", sagaKey)
	stranger, _ := auth.NewSigner("gateway", strangerKey) // claims to be the gateway, with another key
	now := time.Now()
	ada := auth.Principal{Subject: "c-1", Role: auth.Customer, TokenID: "tok-1", Expires: now.Add(time.Hour)}
	sign := func(s *auth.Signer, p auth.Principal, aud, id string, ttl time.Duration) string {
		tok, err := s.Sign(p, aud, id, ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	got, err := trust.Verify(sign(gw, ada, "orderflow.order.place", "", auth.AssertionTTL), "orderflow.order.place", "", now)
	if err != nil || got.Subject != "c-1" || got.Role != auth.Customer || got.TokenID != "tok-1" || !got.Expires.Equal(ada.Expires.Truncate(time.Second)) {
		t.Fatalf("the gateway's assertion of a customer: %+v, %v", got, err)
	}
	if got, err := trust.Verify(sign(saga, auth.Principal{Subject: "saga:fulfillment", Role: auth.Service}, "orderflow.jobs.stock.reserve", "m-1", auth.QueuedAssertionTTL),
		"orderflow.jobs.stock.reserve", "m-1", now.Add(time.Hour)); err != nil || got.Role != auth.Service {
		t.Fatalf("the saga's assertion of itself for a queued command: %+v, %v", got, err)
	}

	tampered := sign(gw, ada, "a", "", time.Minute)
	parts := strings.Split(tampered, ".")
	admin := sign(gw, auth.Principal{Subject: "c-1", Role: auth.Admin}, "a", "", time.Minute)
	parts[1] = strings.Split(admin, ".")[1] // the claims of another assertion, the signature of this one
	refused := map[string]struct {
		token, audience, id string
		at                  time.Time
	}{
		"another endpoint":         {sign(gw, ada, "orderflow.order.place", "", time.Minute), "orderflow.order.cancel", "", now},
		"expired":                  {sign(gw, ada, "a", "", time.Minute), "a", "", now.Add(2 * time.Minute)},
		"past the token's expiry":  {sign(gw, auth.Principal{Subject: "c-1", Role: auth.Customer, Expires: now.Add(time.Second)}, "a", "", time.Minute), "a", "", now.Add(5 * time.Second)},
		"an untrusted key":         {sign(stranger, ada, "a", "", time.Minute), "a", "", now},
		"the saga as a customer":   {sign(saga, ada, "a", "", time.Minute), "a", "", now},
		"the gateway as a service": {sign(gw, auth.Principal{Subject: "saga:fulfillment", Role: auth.Service}, "a", "", time.Minute), "a", "", now},
		"another queued message":   {sign(saga, auth.Principal{Subject: "saga:fulfillment", Role: auth.Service}, "a", "m-1", time.Minute), "a", "m-2", now},
		"claims swapped":           {strings.Join(parts, "."), "a", "", now},
		"no assertion":             {"", "a", "", now},
		"not a JWT":                {"a.b.c", "a", "", now},
		"an unknown role":          {sign(gw, auth.Principal{Subject: "x", Role: "root"}, "a", "", time.Minute), "a", "", now},
	}
	for name, c := range refused {
		if p, err := trust.Verify(c.token, c.audience, c.id, c.at); !errors.Is(err, auth.ErrForbidden) {
			t.Errorf("%s: verified as %+v (%v); want ErrForbidden", name, p, err)
		}
	}
}

func TestAssertFromContext(t *testing.T) {
	kp, pub := newKey(t)
	s, _ := auth.NewSigner("gateway", kp)
	trust, _ := auth.NewTrust(auth.Asserter{Identity: "gateway", Keys: []string{pub}})
	ctx := context.Background()
	if _, ok, _ := auth.AssertRequest(auth.WithSigner(ctx, s), "a"); ok {
		t.Error("asserted a caller from a context without one")
	}
	if _, ok, _ := auth.AssertRequest(auth.With(ctx, auth.Principal{Subject: "c-1", Role: auth.Customer}), "a"); ok {
		t.Error("asserted without a signer")
	}
	tok, ok, err := auth.AssertRequest(auth.WithSigner(auth.With(ctx, auth.Principal{Subject: "c-1", Role: auth.Customer}), s), "a")
	if !ok || err != nil {
		t.Fatalf("assert: %v %v", ok, err)
	}
	if p, err := trust.Verify(tok, "a", "", time.Now()); err != nil || p.Subject != "c-1" {
		t.Fatalf("verify: %+v %v", p, err)
	}
}

func TestCustomerScopes(t *testing.T) {
	ctx := context.Background()
	customer := auth.With(ctx, auth.Principal{Subject: "c-1", Role: auth.Customer})
	admin := auth.With(ctx, auth.Principal{Subject: "ops", Role: auth.Admin})
	saga := auth.With(ctx, auth.Principal{Subject: "saga:fulfillment", Role: auth.Service})
	if auth.Act(customer, "c-1") != nil || !errors.Is(auth.Act(customer, "c-2"), auth.ErrForbidden) {
		t.Error("a customer acts for itself only")
	}
	if auth.Act(admin, "c-2") != nil || auth.Act(saga, "c-2") != nil || auth.Act(ctx, "c-2") != nil {
		t.Error("staff, and calls from inside the process, act for anyone")
	}
	if !errors.Is(auth.Staff(customer), auth.ErrForbidden) || auth.Staff(admin) != nil || auth.Staff(saga) != nil {
		t.Error("staff: admins and services, not customers")
	}
	if auth.CustomerScope(customer) != "c-1" || auth.CustomerScope(admin) != "" || auth.CustomerScope(ctx) != "" {
		t.Error("customer scope")
	}
}

// TestOneAssertionForABatchOfQueuedCommands: a batch's assertion vouches for each of its messages
// on its own subject, and for nothing else: not another message id, not the same id on another
// subject, not a request; a changed byte breaks it; it expires.
func TestOneAssertionForABatchOfQueuedCommands(t *testing.T) {
	t.Parallel()
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	s, _ := auth.NewSigner("fulfillment-saga", kp)
	trust, _ := auth.NewTrust(auth.Asserter{Identity: "fulfillment-saga", Keys: []string{pub}, Subject: "saga:fulfillment", Role: auth.Service})
	saga := auth.Principal{Subject: "saga:fulfillment", Role: auth.Service}
	msgs := []auth.Queued{{Subject: "of.jobs.stock.reserve", ID: "f:o-1:reserve"}, {Subject: "of.jobs.payment.authorize", ID: "f:o-2:authorize"}}
	now := time.Now()
	tok, err := s.SignQueued(saga, msgs, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		for range 2 { // the second from what the first verification remembered
			if p, err := trust.Verify(tok, m.Subject, m.ID, now); err != nil || p.Subject != saga.Subject || p.Role != saga.Role {
				t.Errorf("%s %s: %+v %v", m.Subject, m.ID, p, err)
			}
		}
	}
	for name, tt := range map[string]struct{ subject, id string }{
		"another message":              {"of.jobs.stock.reserve", "f:o-3:reserve"},
		"a message on another subject": {"of.jobs.order.confirm", "f:o-1:reserve"},
		"a request":                    {"of.jobs.stock.reserve", ""},
	} {
		if _, err := trust.Verify(tok, tt.subject, tt.id, now); !errors.Is(err, auth.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
	}
	forged := tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[tok[len(tok)-2:] != "AA"]
	if _, err := trust.Verify(forged, msgs[0].Subject, msgs[0].ID, now); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("a changed signature: %v, want ErrForbidden", err)
	}
	if _, err := trust.Verify(tok, msgs[0].Subject, msgs[0].ID, now.Add(2*time.Hour)); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("an expired batch: %v, want ErrForbidden", err)
	}
}

// BenchmarkAssertion is what a call's assertion costs: the gateway signs, the service verifies.
// "fresh" is a queued command's signed alone (a signature and a verification); "batch-of-32" a
// saga batch's, per message; "reused" a
// client's next request to the same endpoint (the assertion and its verification remembered).
func BenchmarkAssertion(b *testing.B) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	s, _ := auth.NewSigner("gateway", kp)
	trust, _ := auth.NewTrust(auth.Asserter{Identity: "gateway", Keys: []string{pub}})
	p := auth.Principal{Subject: "c-1", Role: auth.Customer, TokenID: "t", Expires: time.Now().Add(time.Hour)}
	b.Run("fresh", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			id := strconv.Itoa(i)
			tok, err := s.Sign(p, "orderflow.jobs.stock.reserve", id, auth.QueuedAssertionTTL, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := trust.Verify(tok, "orderflow.jobs.stock.reserve", id, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch-of-32", func(b *testing.B) { // a saga's batch: one signature, one verification per consumer
		i := 0
		for b.Loop() {
			msgs := make([]auth.Queued, 32)
			for k := range msgs {
				i++
				msgs[k] = auth.Queued{Subject: "orderflow.jobs.stock.reserve", ID: strconv.Itoa(i)}
			}
			tok, err := s.SignQueued(p, msgs, auth.QueuedAssertionTTL, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range msgs {
				if _, err := trust.Verify(tok, m.Subject, m.ID, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/message")
	})
	b.Run("reused", func(b *testing.B) {
		for b.Loop() {
			tok, err := s.Assertion(p, "orderflow.orders.get", time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := trust.Verify(tok, "orderflow.orders.get", "", time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
