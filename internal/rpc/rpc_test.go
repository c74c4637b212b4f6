package rpc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/dev/natstest"
	"github.com/orderflow/orderflow/internal/rpc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	natstest.Stop()
	os.Exit(code)
}

// TestASaturatedServerSheds: with its one worker busy and one request waiting, a server answers
// the next request "unavailable" at once instead of letting it wait for its caller's timeout;
// the running and the waiting one are answered.
func TestASaturatedServerSheds(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	subject := string(natstest.Namespace(t)) + ".slow"
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	srv := rpc.NewServer(t.Context(), nc, slog.New(slog.NewTextHandler(io.Discard, nil)), rpc.Limits{Concurrency: 1, Timeout: 10 * time.Second}, nil)
	if _, err := rpc.Serve(t.Context(), srv, micro.Config{Name: "slow", Version: "0.1.0"}, rpc.Endpoint{Name: "slow", Subject: subject,
		Handler: rpc.Handle(srv, "slow", func(ctx context.Context, _ struct{}) (string, error) {
			started <- struct{}{}
			<-release
			return "done", nil
		})}); err != nil {
		t.Fatal(err)
	}
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := rpc.Call[string](ctx, nc, subject, struct{}{})
		return err
	}
	first := make(chan error, 1)
	go func() { first <- call() }()
	<-started // the worker is busy
	// Two more at once: one waits in the queue, the other is shed, whichever comes first.
	type answer struct {
		err error
		at  time.Time
	}
	answers := make(chan answer, 2)
	start := time.Now()
	for range 2 {
		go func() { err := call(); answers <- answer{err, time.Now()} }()
	}
	shed := <-answers
	var rerr *rpc.Error
	if !errors.As(shed.err, &rerr) || rerr.Code != rpc.CodeUnavailable || shed.at.Sub(start) > 2*time.Second {
		t.Fatalf("a request to a saturated server: %v after %v; want unavailable at once", shed.err, shed.at.Sub(start))
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the running request: %v", err)
	}
	if queued := <-answers; queued.err != nil {
		t.Errorf("the queued request: %v", queued.err)
	}
}
