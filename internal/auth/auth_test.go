package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/orderflow/orderflow/internal/auth"
)

var secret = []byte(strings.Repeat("s", 32))

func TestHS256(t *testing.T) {
	v, err := auth.HS256(secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Issue(secret, "c-1", auth.Customer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(tok); err != nil || p.Subject != "c-1" || p.Role != auth.Customer || p.TokenID == "" || time.Until(p.Expires) < 59*time.Minute {
		t.Fatalf("verify: %+v %v; want customer c-1 with the token's id and expiry", p, err)
	}
	other, _ := auth.Issue([]byte(strings.Repeat("x", 32)), "c-1", auth.Admin, time.Hour)
	expired, _ := auth.Issue(secret, "c-1", auth.Customer, -time.Hour)
	noRole, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "c-1", "role": "root", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "c-1", "role": "admin"}).SignedString(secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "c-1", "role": "admin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, bad := range map[string]string{"another secret": other, "expired": expired, "unknown role": noRole, "no expiry": noExp, "alg none": none, "garbage": "a.b.c"} {
		if _, err := v.Verify(bad); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := auth.HS256([]byte("short")); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

func TestJWKSFile(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.JWKSFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(kid string, k *rsa.PrivateKey, method jwt.SigningMethod, signWith any) string {
		tok := jwt.NewWithClaims(method, jwt.MapClaims{"sub": "ops", "role": "admin", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(signWith)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if p, err := v.Verify(sign("k1", key, jwt.SigningMethodRS256, key)); err != nil || !p.IsAdmin() || p.Subject != "ops" {
		t.Fatalf("RS256 token: %+v %v", p, err)
	}
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := v.Verify(sign("k1", stranger, jwt.SigningMethodRS256, stranger)); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("a token of another key: %v", err)
	}
	if _, err := v.Verify(sign("k2", key, jwt.SigningMethodRS256, key)); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("an unknown kid: %v", err)
	}
	// An HS256 token "signed" with the public key's bytes (the classic confusion) is refused.
	if _, err := v.Verify(sign("k1", key, jwt.SigningMethodHS256, key.N.Bytes())); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("an HS256 token against RS256 keys: %v", err)
	}
}

// TestHS256Rotation: while a rotation is under way, tokens of the previous secret and of the new
// one both verify; once the previous secret is dropped, its tokens no longer do.
func TestHS256Rotation(t *testing.T) {
	old, current := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	byOld, _ := auth.Issue(old, "c-1", auth.Customer, time.Hour)
	byNew, _ := auth.Issue(current, "c-2", auth.Customer, time.Hour)
	rotating, err := auth.HS256(current, old)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{byOld, byNew} {
		if _, err := rotating.Verify(tok); err != nil {
			t.Errorf("during the rotation: %v", err)
		}
	}
	done, _ := auth.HS256(current)
	if _, err := done.Verify(byOld); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("after the rotation, an old token: %v, want ErrInvalid", err)
	}
	if _, err := done.Verify(byNew); err != nil {
		t.Errorf("after the rotation, a new token: %v", err)
	}
	if _, err := auth.HS256(current, []byte("short")); err == nil {
		t.Error("a short previous secret was accepted")
	}
}
