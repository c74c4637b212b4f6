package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { natstest.Main(m) }

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

// TestAnswersCarryTheirKind: a served handler's answers reach Call as the handler meant them: a
// typed answer, an *Error with its code and field, a classified error, an unclassified one as
// "internal error" (its detail stays in the log), a panic as internal, a malformed request as
// invalid; and the endpoint's figures count them.
func TestAnswersCarryTheirKind(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	errBusy := errors.New("busy")
	type echo struct{ N int }
	svc := rpc.Service{Name: "kinds", Description: "answers of every kind", Namespace: ns, Limits: rpc.QueryLimits,
		Classify: func(err error) *rpc.Error {
			if errors.Is(err, errBusy) {
				return &rpc.Error{Code: rpc.CodeUnavailable, Message: "try later"}
			}
			return nil
		}}
	if _, err := svc.Serve(t.Context(), nc, slog.New(slog.DiscardHandler),
		rpc.On("echo", wire.Endpoint[echo, echo]{Service: "kinds", Name: "kinds.echo"}, func(_ context.Context, req echo) (echo, error) {
			switch req.N {
			case 1:
				return echo{}, &rpc.Error{Code: rpc.CodeNotFound, Field: "n", Message: "no such n"}
			case 2:
				return echo{}, errBusy
			case 3:
				return echo{}, errors.New("secret detail")
			case 4:
				panic("boom")
			}
			return echo{N: req.N * 10}, nil
		})); err != nil {
		t.Fatal(err)
	}
	subject := ns.Subject("kinds.echo")
	call := func(req any) (echo, error) { return rpc.Call[echo](t.Context(), nc, subject, req) }
	if got, err := call(echo{N: 7}); err != nil || got.N != 70 {
		t.Errorf("an answer: %v, %v", got, err)
	}
	for req, want := range map[int]rpc.Error{
		1: {Code: rpc.CodeNotFound, Field: "n", Message: "no such n"},
		2: {Code: rpc.CodeUnavailable, Message: "try later"},
		3: {Code: rpc.CodeInternal, Message: "internal error"},
		4: {Code: rpc.CodeInternal, Message: "internal error"},
	} {
		_, err := call(echo{N: req})
		var got *rpc.Error
		if !errors.As(err, &got) || got.Code != want.Code || got.Field != want.Field || got.Message != want.Message {
			t.Errorf("request %d: %v, want %+v", req, err, want)
		}
	}
	var got *rpc.Error
	if _, err := call(json.RawMessage(`{"N":"seven"}`)); !errors.As(err, &got) || got.Code != rpc.CodeInvalid {
		t.Errorf("a malformed request: %v, want invalid", err)
	}
	// Discovery's figures: 6 requests, 5 of them failed.
	stats, err := rpc.Call[micro.Stats](t.Context(), nc, "$SRV.STATS.kinds", nil)
	if err != nil {
		t.Fatal(err)
	}
	var figures rpc.EndpointStats
	if len(stats.Endpoints) != 1 || json.Unmarshal(stats.Endpoints[0].Data, &figures) != nil || figures.Requests != 6 || figures.Errors != 5 {
		t.Errorf("endpoint figures: %+v; want 6 requests, 5 errors", figures)
	}
}

// TestCallWithoutResponderIsUnavailable: nobody serves the subject, or the connection is closed:
// an *Error the edges answer 503, at once.
func TestCallWithoutResponderIsUnavailable(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	subject := natstest.Namespace(t).Subject("nobody.home")
	start := time.Now()
	var got *rpc.Error
	if _, err := rpc.Call[struct{}](t.Context(), nc, subject, struct{}{}); !errors.As(err, &got) || got.Code != rpc.CodeUnavailable || time.Since(start) > 2*time.Second {
		t.Errorf("no responder: %v after %v", err, time.Since(start))
	}
	nc.Close()
	if _, err := rpc.Call[struct{}](t.Context(), nc, subject, struct{}{}); !errors.As(err, &got) || got.Code != rpc.CodeUnavailable {
		t.Errorf("a closed connection: %v", err)
	}
}

// TestStrictCallsRefuseFieldsTheEndpointDoesNotRead: a field the endpoint does not read is
// ignored, unless the caller asks for strictness (rpc.Strict, as contract tests do), when it is
// invalid.
func TestStrictCallsRefuseFieldsTheEndpointDoesNotRead(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	subject := string(natstest.Namespace(t)) + ".echo"
	srv := rpc.NewServer(t.Context(), nc, slog.New(slog.NewTextHandler(io.Discard, nil)), rpc.Limits{}, nil)
	type req struct {
		Name string `json:"name"`
	}
	if _, err := rpc.Serve(t.Context(), srv, micro.Config{Name: "echo", Version: "0.1.0"}, rpc.Endpoint{Name: "echo", Subject: subject,
		Handler: rpc.Handle(srv, "echo", func(ctx context.Context, r req) (string, error) { return r.Name, nil })}); err != nil {
		t.Fatal(err)
	}
	sent := map[string]string{"name": "ada", "nmae": "typo"}
	if got, err := rpc.Call[string](t.Context(), nc, subject, sent); err != nil || got != "ada" {
		t.Fatalf("lenient: %q, %v", got, err)
	}
	_, err := rpc.Call[string](rpc.Strict(t.Context()), nc, subject, sent)
	if e := (*rpc.Error)(nil); !errors.As(err, &e) || e.Code != rpc.CodeInvalid {
		t.Fatalf("strict: %v, want invalid", err)
	}
	if got, err := rpc.Call[string](rpc.Strict(t.Context()), nc, subject, map[string]string{"name": "ada"}); err != nil || got != "ada" {
		t.Fatalf("strict, known fields only: %q, %v", got, err)
	}
}

// TestAnUnansweredRequestTriesAnotherInstance: of a service's two instances, one takes requests
// and never answers (a frozen process still subscribed). Every call is answered by the other,
// within the caller's budget: a try unanswered in half the budget is sent again, and the queue
// group hands it to an instance at random.
func TestAnUnansweredRequestTriesAnotherInstance(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	subject := string(natstest.Namespace(t)) + ".twice"
	frozen := make(chan struct{})
	defer close(frozen)
	var reached atomic.Int64
	for _, handle := range []nats.MsgHandler{func(*nats.Msg) { reached.Add(1); <-frozen }, func(m *nats.Msg) { _ = m.Respond([]byte(`"ok"`)) }} {
		instance := natstest.Connect(t)
		if _, err := instance.QueueSubscribe(subject, "q", handle); err != nil {
			t.Fatal(err)
		}
		if err := instance.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(rpc.WithTry(t.Context(), 100*time.Millisecond), 5*time.Second)
		got, err := rpc.Call[string](ctx, nc, subject, i)
		cancel()
		if err != nil || got != "ok" {
			t.Fatalf("call %d: %q, %v; want the healthy instance's answer", i, got, err)
		}
	}
	if reached.Load() == 0 {
		t.Fatal("no call reached the frozen instance: nothing was tried again")
	}
}

// TestASlowAnswerStillCounts: the only instance takes longer than a try waits alone; the request
// is sent again meanwhile, but the first try still waits and its answer wins, and the instance
// had the caller's whole budget for it.
func TestASlowAnswerStillCounts(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	subject := string(natstest.Namespace(t)) + ".slowly"
	var received atomic.Int64
	var budgets sync.Map
	instance := natstest.Connect(t)
	if _, err := instance.QueueSubscribe(subject, "q", func(m *nats.Msg) {
		n := received.Add(1)
		budgets.Store(n, m.Header.Get(rpc.BudgetHeader))
		go func() {
			time.Sleep(1500 * time.Millisecond)
			_ = m.Respond([]byte(`"late"`))
		}()
	}); err != nil {
		t.Fatal(err)
	}
	if err := instance.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	got, err := rpc.Call[string](ctx, nc, subject, 1)
	if err != nil || got != "late" {
		t.Fatalf("%q, %v after %s; want the slow instance's answer", got, err, time.Since(start))
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("answered after %s, want the first try's answer at about 1.5s", took)
	}
	if received.Load() < 2 {
		t.Errorf("the request was sent %d times; want it sent again while the first waited", received.Load())
	}
	if b, _ := budgets.Load(int64(1)); b.(string) < "4000" || len(b.(string)) != 4 {
		t.Errorf("the first try's budget was %v ms, want the caller's whole budget (about 5000)", b)
	}
}

// TestCallsInTheProcess: a request from a connection allowed to send it (AllowLocal, its NATS
// permissions) to an endpoint this process serves is carried out without the NATS server (the
// server's connection receives nothing), with the same answers, errors and caller checks; one
// the permissions do not cover, or from a connection never allowed, goes over NATS.
func TestCallsInTheProcess(t *testing.T) {
	ns := natstest.Namespace(t)
	serverConn, caller, stranger := natstest.Connect(t), natstest.Connect(t), natstest.Connect(t)
	rpc.AllowLocal(caller, []string{string(ns) + ".greet.*"})
	t.Cleanup(func() { rpc.ForgetLocal(caller) })
	greet := wire.Endpoint[string, string]{Service: "greeter", Name: "greet.hello"}
	shout := wire.Endpoint[string, string]{Service: "greeter", Name: "shout"}
	answer := func(_ context.Context, name string) (string, error) {
		if name == "" {
			return "", &rpc.Error{Code: rpc.CodeInvalid, Message: "who?"}
		}
		return "hello " + name, nil
	}
	svc := rpc.Service{Name: "greeter", Namespace: ns, Classify: func(err error) *rpc.Error {
		var e *rpc.Error
		errors.As(err, &e)
		return e
	}}
	if _, err := svc.Serve(t.Context(), serverConn, slog.New(slog.NewTextHandler(io.Discard, nil)),
		rpc.On("hello", greet, answer), rpc.On("shout", shout, answer)); err != nil {
		t.Fatal(err)
	}
	if err := serverConn.Flush(); err != nil { // its subscriptions are the server's
		t.Fatal(err)
	}
	received := func() uint64 { return serverConn.Stats().InMsgs }
	before := received()
	for range 20 {
		if got, err := rpc.Ask(t.Context(), caller, ns, greet, "ann"); err != nil || got != "hello ann" {
			t.Fatalf("in the process: %q, %v", got, err)
		}
	}
	var rerr *rpc.Error
	if _, err := rpc.Ask(t.Context(), caller, ns, greet, ""); !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid {
		t.Errorf("a refusal in the process: %v, want invalid", err)
	}
	if n := received() - before; n != 0 {
		t.Errorf("the server's connection received %d messages for calls in the process, want 0", n)
	}
	for _, c := range []struct {
		name string
		nc   *nats.Conn
		to   wire.Endpoint[string, string]
	}{{"a subject the permissions do not cover", caller, shout}, {"a connection never allowed", stranger, greet}} {
		before := received()
		if got, err := rpc.Ask(t.Context(), c.nc, ns, c.to, "bob"); err != nil || got != "hello bob" {
			t.Fatalf("%s: %q, %v", c.name, got, err)
		}
		if received() == before {
			t.Errorf("%s: not sent over NATS", c.name)
		}
	}
}
