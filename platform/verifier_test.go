package platform

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/auth"
)

// TestJWTSecretRotation: with ORDERFLOW_JWT_PREVIOUS_SECRET set to the old secret, the gateway
// accepts tokens of the old and of the new secret.
func TestJWTSecretRotation(t *testing.T) {
	old, current := strings.Repeat("o", 32), strings.Repeat("n", 32)
	env := map[string]string{"ORDERFLOW_JWT_SECRET": current, "ORDERFLOW_JWT_PREVIOUS_SECRET": old}
	cfg, err := ParseFlags("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{old, current} {
		tok, _ := auth.Issue([]byte(secret), "c", auth.Customer, time.Hour)
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("a token of the %s secret: %v", map[string]string{old: "previous", current: "current"}[secret], err)
		}
	}
}
