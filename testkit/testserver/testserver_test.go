package testserver_test

import (
	"testing"

	"github.com/orderflow/orderflow/testkit/testserver"
)

func TestTheEnvironmentsServerIsUsedAndNoneStarted(t *testing.T) {
	t.Setenv("TESTSERVER_TEST_URL", "nats://example:4222")
	s := testserver.Shared{Env: "TESTSERVER_TEST_URL", Needs: "a server", Start: func() (string, error) {
		t.Fatal("started a server although the environment names one")
		return "", nil
	}}
	if got := s.URL(t); got != "nats://example:4222" {
		t.Fatalf("URL %q", got)
	}
}

func TestAServerIsStartedOnceForAllItsTests(t *testing.T) {
	starts := 0
	s := testserver.Shared{Env: "TESTSERVER_TEST_UNSET", Needs: "a server", Start: func() (string, error) {
		starts++
		return "postgres://started", nil
	}}
	if s.Known() != "" {
		t.Fatalf("known before any test asked: %q", s.Known())
	}
	for range 3 {
		t.Run("test", func(t *testing.T) {
			if got := s.URL(t); got != "postgres://started" {
				t.Fatalf("URL %q", got)
			}
		})
	}
	if starts != 1 || s.Known() != "postgres://started" {
		t.Fatalf("%d starts, known %q", starts, s.Known())
	}
}
