package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nkeys"
)

// Service is the role of a platform service acting on its own (the fulfillment saga queueing its
// commands): it may carry out the commands of its job, nothing a customer's token could ask.
const Service Role = "service"

// IsStaff reports whether p acts for the platform (an admin, or a service on its own).
func (p Principal) IsStaff() bool { return p.Role == Admin || p.Role == Service }

// AssertionHeader is the NATS header that carries a caller assertion: who asks, as the gateway
// verified it (or a service, about itself), signed so that the service answering can check it
// again instead of trusting a field of the request.
const AssertionHeader = "Orderflow-Caller"

// AssertionTTL bounds a request's assertion: long enough for the call, short enough that a copy is
// soon useless. QueuedAssertionTTL bounds a queued command's: it may wait in the queue through an
// outage; it names its message id, so it vouches for that command only.
const (
	AssertionTTL       = 30 * time.Second
	QueuedAssertionTTL = 7 * 24 * time.Hour
)

// ErrForbidden: the caller may not do this, or no valid assertion says who it is.
var ErrForbidden = errors.New("forbidden")

// Signer signs caller assertions with an identity's nkey (the Ed25519 key its NATS connection
// authenticates with): the gateway about its callers, the saga about itself.
type Signer struct {
	identity string
	kp       nkeys.KeyPair
	header   string // the JWT header, naming the key

	mu     sync.Mutex
	recent map[signed]recentAssertion // request assertions made lately, reused for half their life
}

// signed is what a request assertion says; recentAssertion one made, and until when it is reused.
type signed struct {
	p        Principal
	audience string
}

type recentAssertion struct {
	token string
	until time.Time
}

// NewSigner signs as identity with kp.
func NewSigner(identity string, kp nkeys.KeyPair) (*Signer, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer %s: %w", identity, err)
	}
	header, _ := json.Marshal(jwtHeader{Alg: "EdDSA", Typ: "JWT", Kid: pub})
	return &Signer{identity: identity, kp: kp, header: base64.RawURLEncoding.EncodeToString(header)}, nil
}

// assertion is the claims of a caller assertion (a JWT, EdDSA).
type assertion struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Role     Role   `json:"role"`
	Audience string `json:"aud"`
	ID       string `json:"jti,omitempty"`
	TokenID  string `json:"tid,omitempty"`
	TokenExp int64  `json:"texp,omitempty"`
	Issued   int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	// Messages, in an assertion of queued commands (SignQueued), are the messages it vouches for,
	// each "<subject> <message id>": one signature for a batch, and each message only for itself.
	Messages []string `json:"msgs,omitempty"`
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"` // the signer's public nkey
}

// Assertion is Sign for a request (no message id, AssertionTTL), reusing for half its life the
// assertion made for the same caller and audience: a client's next requests cost no signature
// (Ed25519 signing and verifying cost ~0.1 ms together on a 2-core machine; see BenchmarkAssertion).
func (s *Signer) Assertion(p Principal, audience string, now time.Time) (string, error) {
	key := signed{p, audience}
	s.mu.Lock()
	r, ok := s.recent[key]
	s.mu.Unlock()
	if ok && now.Before(r.until) {
		return r.token, nil
	}
	tok, err := s.Sign(p, audience, "", AssertionTTL, now)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.recent == nil || len(s.recent) >= maxRemembered {
		s.recent = map[signed]recentAssertion{}
	}
	s.recent[key] = recentAssertion{token: tok, until: now.Add(AssertionTTL / 2)}
	s.mu.Unlock()
	return tok, nil
}

// maxRemembered bounds the assertions a Signer reuses and a Trust remembers verifying; past it,
// they start again from none.
const maxRemembered = 10_000

// Sign asserts p to audience (the subject the assertion travels to) until ttl has passed or p's
// token expires, whichever comes first. id, if set, is the one message the assertion vouches for.
func (s *Signer) Sign(p Principal, audience, id string, ttl time.Duration, now time.Time) (string, error) {
	return s.seal(assertion{Subject: p.Subject, Role: p.Role, Audience: audience, ID: id, TokenID: p.TokenID}, p, ttl, now)
}

// seal completes a with its issuer and times (until ttl has passed or p's token expires) and
// signs it.
func (s *Signer) seal(a assertion, p Principal, ttl time.Duration, now time.Time) (string, error) {
	exp := now.Add(ttl)
	if !p.Expires.IsZero() && p.Expires.Before(exp) {
		exp = p.Expires
	}
	a.Issuer, a.Issued, a.Expires = s.identity, now.Unix(), exp.Unix()
	if !p.Expires.IsZero() {
		a.TokenExp = p.Expires.Unix()
	}
	claims, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	input := s.header + "." + base64.RawURLEncoding.EncodeToString(claims)
	sig, err := s.kp.Sign([]byte(input))
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Queued is a queued message an assertion vouches for: the subject it is queued on and its id.
type Queued struct{ Subject, ID string }

func (q Queued) claim() string { return q.Subject + " " + q.ID }

// SignQueued asserts p for msgs, queued commands, as Sign does: one signature for all of
// them, each of which carries the whole assertion and is vouched for only by its own subject and
// id in it. (A signature per message was most of what queueing a command cost: Ed25519 signs and
// verifies in ~0.1 ms together, a saga's batch is a few dozen commands.)
func (s *Signer) SignQueued(p Principal, msgs []Queued, ttl time.Duration, now time.Time) (string, error) {
	a := assertion{Subject: p.Subject, Role: p.Role, TokenID: p.TokenID}
	for _, m := range msgs {
		a.Messages = append(a.Messages, m.claim())
	}
	return s.seal(a, p, ttl, now)
}

// Asserter is an identity whose assertions a service accepts: its public nkeys (more than one while
// its seed is rotated) and whom it may vouch for. The gateway vouches for any customer or admin its
// tokens name; another issuer (the saga, the operator's CLI) only for itself, as Subject in Role.
type Asserter struct {
	Identity string
	Keys     []string
	// Subject and Role, if set, are the only principal the issuer may assert.
	Subject string
	Role    Role
}

// Trust verifies caller assertions: which issuers a service believes, and about whom.
type Trust struct {
	byKey map[string]Asserter

	mu       sync.Mutex
	verified map[verifiedKey]Principal  // request assertions verified, until they expire
	queued   map[string]queuedAssertion // assertions of queued commands verified, by token
}

type verifiedKey struct{ token, audience string }

// queuedAssertion is an assertion of queued commands verified once: whom it vouches for, and
// for which messages.
type queuedAssertion struct {
	p        Principal
	messages map[string]bool
}

// NewTrust trusts asserters.
func NewTrust(asserters ...Asserter) (*Trust, error) {
	t := &Trust{byKey: map[string]Asserter{}}
	for _, is := range asserters {
		for _, k := range is.Keys {
			if !nkeys.IsValidPublicUserKey(k) {
				return nil, fmt.Errorf("trust %s: %q is not a public user nkey", is.Identity, k)
			}
			t.byKey[k] = is
		}
	}
	return t, nil
}

// Verify returns the principal assertion vouches for, if a trusted issuer signed it for
// audience (and, when id is set, for that message) and it has not expired at now. A request
// assertion (no id) verified once is remembered until it expires: a client's requests reuse one.
func (t *Trust) Verify(token, audience, id string, now time.Time) (Principal, error) {
	if id != "" {
		return t.verifyQueued(token, audience, id, now)
	}
	key := verifiedKey{token, audience}
	t.mu.Lock()
	p, ok := t.verified[key]
	t.mu.Unlock()
	if ok && now.Unix() <= p.assertedUntil {
		return p, nil
	}
	p, exp, err := t.verify(token, audience, id, now)
	if err != nil {
		return Principal{}, err
	}
	p.assertedUntil = exp
	t.mu.Lock()
	if t.verified == nil || len(t.verified) >= maxRemembered {
		t.verified = map[verifiedKey]Principal{}
	}
	t.verified[key] = p
	t.mu.Unlock()
	return p, nil
}

// verifyQueued verifies the assertion of queued message id on subject audience: one signed for
// this message alone (Sign with an id), or for a batch it is part of (SignQueued), whose
// signature is checked once and remembered until it expires.
func (t *Trust) verifyQueued(token, audience, id string, now time.Time) (Principal, error) {
	t.mu.Lock()
	q, ok := t.queued[token]
	t.mu.Unlock()
	if !ok {
		p, a, err := t.check(token, now)
		if err != nil {
			return Principal{}, err
		}
		if len(a.Messages) == 0 { // one message's own assertion
			return t.vouch(p, a, audience, id, now)
		}
		if _, err := t.vouch(p, a, "", "", now); err != nil {
			return Principal{}, err
		}
		q = queuedAssertion{p: p, messages: make(map[string]bool, len(a.Messages))}
		q.p.assertedUntil = a.Expires
		for _, m := range a.Messages {
			q.messages[m] = true
		}
		t.mu.Lock()
		if t.queued == nil || len(t.queued) >= maxRemembered {
			t.queued = map[string]queuedAssertion{}
		}
		t.queued[token] = q
		t.mu.Unlock()
	}
	switch {
	case now.Unix() > q.p.assertedUntil:
		return Principal{}, fmt.Errorf("%w: caller assertion expired", ErrForbidden)
	case !q.messages[Queued{Subject: audience, ID: id}.claim()]:
		return Principal{}, fmt.Errorf("%w: caller assertion for other messages", ErrForbidden)
	}
	return q.p, nil
}

func (t *Trust) verify(token, audience, id string, now time.Time) (Principal, int64, error) {
	p, a, err := t.check(token, now)
	if err != nil {
		return Principal{}, 0, err
	}
	p, err = t.vouch(p, a, audience, id, now)
	return p, a.Expires, err
}

// check verifies token's signature by a trusted key and decodes its claims.
func (t *Trust) check(token string, now time.Time) (Principal, assertion, error) {
	malformed := fmt.Errorf("%w: malformed caller assertion", ErrForbidden)
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Principal{}, assertion{}, malformed
	}
	var h jwtHeader
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &h) != nil || h.Alg != "EdDSA" {
		return Principal{}, assertion{}, malformed
	}
	is, ok := t.byKey[h.Kid]
	if !ok {
		return Principal{}, assertion{}, fmt.Errorf("%w: caller assertion signed by an untrusted key", ErrForbidden)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return Principal{}, assertion{}, malformed
	}
	pub, err := nkeys.FromPublicKey(h.Kid)
	if err != nil || pub.Verify([]byte(parts[0]+"."+parts[1]), sig) != nil {
		return Principal{}, assertion{}, fmt.Errorf("%w: caller assertion with a bad signature", ErrForbidden)
	}
	var a assertion
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &a) != nil {
		return Principal{}, assertion{}, malformed
	}
	switch {
	case a.Issuer != is.Identity:
		return Principal{}, assertion{}, fmt.Errorf("%w: caller assertion issued as %q by the key of %s", ErrForbidden, a.Issuer, is.Identity)
	case now.Unix() > a.Expires:
		return Principal{}, assertion{}, fmt.Errorf("%w: caller assertion expired", ErrForbidden)
	case a.Subject == "" || (a.Role != Customer && a.Role != Admin && a.Role != Service):
		return Principal{}, assertion{}, fmt.Errorf("%w: caller assertion names no caller", ErrForbidden)
	case is.Subject != "" && (a.Subject != is.Subject || a.Role != is.Role):
		return Principal{}, assertion{}, fmt.Errorf("%w: %s may not vouch for %s %s", ErrForbidden, is.Identity, a.Role, a.Subject)
	case is.Subject == "" && a.Role == Service:
		return Principal{}, assertion{}, fmt.Errorf("%w: %s may not vouch for a service", ErrForbidden, is.Identity)
	}
	p := Principal{Subject: a.Subject, Role: a.Role, TokenID: a.TokenID}
	if a.TokenExp != 0 {
		p.Expires = time.Unix(a.TokenExp, 0)
	}
	return p, a, nil
}

// vouch checks that assertion a (already checked) is for audience and, when id is set, for that
// one message; for a batch's assertion (audience and id empty), that it is one.
func (t *Trust) vouch(p Principal, a assertion, audience, id string, now time.Time) (Principal, error) {
	switch {
	case audience == "" && id == "":
		if len(a.Messages) == 0 {
			return Principal{}, fmt.Errorf("%w: caller assertion for no message", ErrForbidden)
		}
	case a.Audience != audience:
		return Principal{}, fmt.Errorf("%w: caller assertion for %q, not this endpoint", ErrForbidden, a.Audience)
	case id != "" && a.ID != id:
		return Principal{}, fmt.Errorf("%w: caller assertion for another message", ErrForbidden)
	}
	return p, nil
}

type signerKey struct{}

// WithSigner returns ctx in which calls assert the caller of ctx (From) with s.
func WithSigner(ctx context.Context, s *Signer) context.Context {
	return context.WithValue(ctx, signerKey{}, s)
}

// SignerFrom returns the signer of ctx, if any.
func SignerFrom(ctx context.Context) (*Signer, bool) {
	s, ok := ctx.Value(signerKey{}).(*Signer)
	return s, ok && s != nil
}

// AssertRequest returns the assertion of ctx's caller for a request to audience, signed with
// ctx's signer (Signer.Assertion: reused while fresh); false when ctx has no signer or no caller
// (a call that then asserts no one).
func AssertRequest(ctx context.Context, audience string) (string, bool, error) {
	s, p, ok := asserting(ctx)
	if !ok {
		return "", false, nil
	}
	tok, err := s.Assertion(p, audience, time.Now())
	return tok, err == nil, err
}

// AssertQueued asserts ctx's caller for queued commands msgs with ctx's signer, in one signature
// (Signer.SignQueued), valid for QueuedAssertionTTL; false when ctx has no signer or no caller.
func AssertQueued(ctx context.Context, msgs []Queued) (string, bool, error) {
	s, p, ok := asserting(ctx)
	if !ok {
		return "", false, nil
	}
	tok, err := s.SignQueued(p, msgs, QueuedAssertionTTL, time.Now())
	return tok, err == nil, err
}

func asserting(ctx context.Context) (*Signer, Principal, bool) {
	s, ok := SignerFrom(ctx)
	if !ok {
		return nil, Principal{}, false
	}
	p, ok := From(ctx)
	return s, p, ok
}

// Act checks that ctx's caller may act for customer id: that customer, or staff. A context without
// a caller is a call from inside the process (or a platform whose services do not check callers):
// allowed.
func Act(ctx context.Context, customerID string) error {
	if p, ok := From(ctx); ok && !p.IsStaff() && p.Subject != customerID {
		return fmt.Errorf("%w: %s %s may not act for customer %q", ErrForbidden, p.Role, p.Subject, customerID)
	}
	return nil
}

// Staff checks that ctx's caller is an admin or a service; see Act for a context without one.
func Staff(ctx context.Context) error {
	if p, ok := From(ctx); ok && !p.IsStaff() {
		return fmt.Errorf("%w: only an admin may do this", ErrForbidden)
	}
	return nil
}

// CustomerScope is the customer ctx's caller is limited to: its subject for a customer, "" for
// staff and for a context without a caller (see Act).
func CustomerScope(ctx context.Context) string {
	if p, ok := From(ctx); ok && !p.IsStaff() {
		return p.Subject
	}
	return ""
}

type trustKey struct{}

// WithTrust returns ctx under which a process's services check their callers' assertions with t
// (rpc.NewServer and jobs.Consume read it): a process sets it once, on the context its targets
// start under.
func WithTrust(ctx context.Context, t *Trust) context.Context {
	return context.WithValue(ctx, trustKey{}, t)
}

// TrustFrom returns the trust of ctx; nil: callers are not checked (a development platform
// without NATS identities).
func TrustFrom(ctx context.Context) *Trust {
	t, _ := ctx.Value(trustKey{}).(*Trust)
	return t
}
