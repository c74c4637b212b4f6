// Package auth is who may call the gateway: JWT bearer tokens (HS256 with a shared secret, or
// RS256 with the keys of a JWKS file), each naming a subject and one role.
package auth

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a caller may do.
type Role string

const (
	// Customer sees and changes only its own orders and profile; its subject is its customer id.
	Customer Role = "customer"
	// Admin does everything, projection operations included.
	Admin Role = "admin"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	Role    Role
	// TokenID names the token that authenticated the caller (its jti claim, or a digest of it);
	// Expires is when that token expires. Both are zero for a caller without a token.
	TokenID       string
	Expires       time.Time
	assertedUntil int64 // when the assertion that vouched for it expires (Unix seconds)
}

// IsAdmin reports whether p may do everything.
func (p Principal) IsAdmin() bool { return p.Role == Admin }

// Owns reports whether p may see or change what belongs to customer id.
func (p Principal) Owns(customerID string) bool { return p.IsAdmin() || p.Subject == customerID }

type principalKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From returns the caller in ctx, if any.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Issuer is the iss claim of tokens orderflow issues.
const Issuer = "orderflow"

// ErrInvalid: the token is missing, malformed, expired, badly signed or names no known role.
var ErrInvalid = errors.New("invalid token")

type claims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// Verifier checks bearer tokens. It remembers the tokens it verified (until they expire, at
// most 10,000 of them): a client sends the same token with every request, and checking its
// signature each time is a visible share of a gateway query's CPU (profile `orderflow-bench
// gateway --cpuprofile`).
type Verifier struct {
	secrets [][]byte                  // HS256: the current secret, then those still accepted while tokens of theirs live
	keys    map[string]*rsa.PublicKey // by kid

	mu       sync.Mutex
	verified map[string]verified
}

type verified struct {
	p       Principal
	expires time.Time
}

// HS256 verifies tokens signed with secret, or with one of previous: a rotation keeps the old
// secret accepted until the tokens it signed have expired, so no caller is cut off.
func HS256(secret []byte, previous ...[]byte) (*Verifier, error) {
	v := &Verifier{}
	for _, s := range append([][]byte{secret}, previous...) {
		if len(s) < 32 {
			return nil, fmt.Errorf("an HS256 secret has %d bytes: want at least 32", len(s))
		}
		v.secrets = append(v.secrets, s)
	}
	return v, nil
}

// JWKSFile verifies RS256 tokens with the RSA keys of a JWKS document (RFC 7517) in path.
func JWKSFile(path string) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var doc struct {
		Keys []struct {
			Kty, Kid, Alg, Use, N, E string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("jwks %s: %w", path, err)
	}
	v := &Verifier{keys: map[string]*rsa.PublicKey{}}
	for _, k := range doc.Keys {
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil || len(e) > 4 {
			return nil, fmt.Errorf("jwks %s: key %q: bad modulus or exponent", path, k.Kid)
		}
		v.keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(v.keys) == 0 {
		return nil, fmt.Errorf("jwks %s: no RSA signing key", path)
	}
	return v, nil
}

// Verify returns the caller a token names.
func (v *Verifier) Verify(token string) (Principal, error) {
	v.mu.Lock()
	if got, ok := v.verified[token]; ok && time.Now().Before(got.expires) {
		v.mu.Unlock()
		return got.p, nil
	}
	v.mu.Unlock()
	p, exp, err := v.verify(token)
	if err != nil {
		return Principal{}, err
	}
	v.mu.Lock()
	if v.verified == nil || len(v.verified) >= 10_000 {
		v.verified = map[string]verified{}
	}
	v.verified[token] = verified{p: p, expires: exp}
	v.mu.Unlock()
	return p, nil
}

func (v *Verifier) verify(token string) (Principal, time.Time, error) {
	var c claims
	methods := []string{"HS256"}
	if v.keys != nil {
		methods = []string{"RS256"}
	}
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if v.keys == nil {
			set := jwt.VerificationKeySet{}
			for _, s := range v.secrets {
				set.Keys = append(set.Keys, s)
			}
			return set, nil
		}
		kid, _ := t.Header["kid"].(string)
		if k, ok := v.keys[kid]; ok {
			return k, nil
		}
		if len(v.keys) == 1 && kid == "" {
			for _, k := range v.keys {
				return k, nil
			}
		}
		return nil, fmt.Errorf("no key %q", kid)
	}, jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" {
		return Principal{}, time.Time{}, fmt.Errorf("%w: no subject", ErrInvalid)
	}
	if c.Role != Customer && c.Role != Admin {
		return Principal{}, time.Time{}, fmt.Errorf("%w: role %q: want customer or admin", ErrInvalid, c.Role)
	}
	id := c.ID
	if id == "" {
		sum := sha256.Sum256([]byte(token))
		id = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return Principal{Subject: c.Subject, Role: c.Role, TokenID: id, Expires: c.ExpiresAt.Time}, c.ExpiresAt.Time, nil
}

// Issue signs an HS256 token for sub in role, valid for ttl: development tokens (`orderflow
// token`) and tests. Production tokens come from the identity provider.
func Issue(secret []byte, sub string, role Role, ttl time.Duration) (string, error) {
	if role != Customer && role != Admin {
		return "", fmt.Errorf("role %q: want customer or admin", role)
	}
	if sub == "" {
		return "", errors.New("a token needs a subject")
	}
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject: sub, Issuer: Issuer, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}).SignedString(secret)
}
