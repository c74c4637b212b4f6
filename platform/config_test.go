package platform

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestSagaLinger: FULFILLMENT_LINGER sets how long the saga's batches wait for more events (10 ms
// unless set); what is not a duration is refused by name.
func TestSagaLinger(t *testing.T) {
	parse := func(env map[string]string) (Config, error) {
		return ParseFlags("serve", []string{"--target=fulfillment-saga", "--data-dir=" + t.TempDir()}, func(k string) string { return env[k] }, io.Discard)
	}
	for _, c := range []struct {
		env  string
		want time.Duration
	}{{"", 10 * time.Millisecond}, {"50ms", 50 * time.Millisecond}} {
		cfg, err := parse(map[string]string{"FULFILLMENT_LINGER": c.env})
		if err != nil {
			t.Fatalf("FULFILLMENT_LINGER=%q: %v", c.env, err)
		}
		if cfg.SagaLinger != c.want {
			t.Errorf("FULFILLMENT_LINGER=%q: linger %s, want %s", c.env, cfg.SagaLinger, c.want)
		}
	}
	if _, err := parse(map[string]string{"FULFILLMENT_LINGER": "soon"}); err == nil || !strings.Contains(err.Error(), "FULFILLMENT_LINGER") {
		t.Errorf("FULFILLMENT_LINGER=soon: %v, want an error naming it", err)
	}
}
