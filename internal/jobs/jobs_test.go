package jobs_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
)

func TestMain(m *testing.M) { natstest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// outcomes collects what Hand's finished reports, by message id.
type outcomes struct {
	mu   sync.Mutex
	done map[string]bool
	seen chan string
}

func newOutcomes() *outcomes { return &outcomes{done: map[string]bool{}, seen: make(chan string, 16)} }

func (o *outcomes) finished(m jobs.Message, done bool) {
	o.mu.Lock()
	o.done[m.ID] = done
	o.mu.Unlock()
	o.seen <- m.ID
}

func (o *outcomes) wait(t *testing.T, n int) map[string]bool {
	t.Helper()
	for range n {
		select {
		case <-o.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("a handed command never finished")
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.done
}

// TestCommandsHandedInTheProcess: a consumer of this process carries out the commands handed to
// it without the stream holding them; a transient failure is reported not done (the sender
// queues it), a refusal done; an endpoint nobody here serves, or a consumer that stopped, takes
// nothing.
func TestCommandsHandedInTheProcess(t *testing.T) {
	nc := natstest.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Namespace(t)
	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	var got []string
	handlers := map[string]jobs.Handler{"work": func(ctx context.Context, data []byte) error {
		mu.Lock()
		got = append(got, string(data))
		mu.Unlock()
		switch string(data) {
		case "flaky":
			return errors.New("a provider is down")
		case "invalid":
			return &rpc.Error{Code: rpc.CodeInvalid, Message: "no"}
		}
		if !jobs.FirstDelivery(ctx, "c-ok") && string(data) == "ok" {
			t.Error("a handed command is not its first delivery")
		}
		return nil
	}}
	if err := jobs.Consume(ctx, js, ns, "workers", quiet, handlers); err != nil {
		t.Fatal(err)
	}
	o := newOutcomes()
	// A worker takes a command handed only while it waits for one: the first may not wait yet.
	probe := []jobs.Message{{Endpoint: "work", ID: "c-probe", Data: []byte("probe")}}
	for deadline := time.Now().Add(5 * time.Second); !jobs.Hand(context.Background(), nc, ns, probe, o.finished)[0]; {
		if time.Now().After(deadline) {
			t.Fatal("no worker ever took a command handed to it")
		}
		time.Sleep(time.Millisecond)
	}
	o.wait(t, 1)
	msgs := []jobs.Message{{Endpoint: "work", ID: "c-ok", Data: []byte("ok")}, {Endpoint: "work", ID: "c-flaky", Data: []byte("flaky")},
		{Endpoint: "work", ID: "c-invalid", Data: []byte("invalid")}, {Endpoint: "elsewhere", ID: "c-else", Data: []byte("ok")}}
	handed := jobs.Hand(context.Background(), nc, ns, msgs, o.finished)
	if want := []bool{true, true, true, false}; !slices.Equal(handed, want) {
		t.Fatalf("handed %v, want %v", handed, want)
	}
	done := o.wait(t, 3)
	if !done["c-ok"] || done["c-flaky"] || !done["c-invalid"] {
		t.Errorf("done %v: want the carried out and the refused done, the failed one not", done)
	}
	stream, err := js.Stream(ctx, jobs.StreamName(ns))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 0 || info.State.LastSeq != 0 {
		t.Errorf("the stream holds %+v (%v), want nothing ever stored", info.State, err)
	}
	stop()
	if handed := jobs.Hand(context.Background(), nc, ns, msgs[:1], o.finished); handed[0] {
		t.Error("a stopped consumer was handed a command")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Errorf("handlers ran %d times (%v), want 4 (the probe and three)", len(got), got)
	}
}
