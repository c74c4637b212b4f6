package gateway

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/testkit/natstest"
)

// TestAClaimLeftInProgressIsTakenOver: a request whose gateway lost its answer (NATS away while it
// stored or forgot it) leaves its key in progress; a retry gets 409 only while the first could
// still be running (the request timeout), then takes the key over and runs.
func TestAClaimLeftInProgressIsTakenOver(t *testing.T) {
	t.Parallel()
	keys, err := NewIdempotencyKeys(t.Context(), natstest.Connect(t), natstest.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, existing, err := keys.begin(t.Context(), "k", "f", time.Minute); err != nil || existing != nil {
		t.Fatalf("first claim: %v %+v", err, existing)
	}
	if _, existing, err := keys.begin(t.Context(), "k", "f", time.Minute); err != nil || existing == nil || existing.Done {
		t.Fatalf("retry while the first may still run: %v %+v; want the record in progress", err, existing)
	}
	if _, existing, err := keys.begin(t.Context(), "k", "f", 0); err != nil || existing != nil {
		t.Fatalf("retry after the first's request timeout: %v %+v; want the key taken over", err, existing)
	}
}
