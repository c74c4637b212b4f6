// Package jobs carries commands that must not be lost over NATS JetStream: a work-queue stream
// per namespace, messages deduplicated by id (a re-sent command is dropped by the server within
// the duplicate window, and by the command service's idempotency after it), one durable consumer
// per command service, redelivery with growing delays while a command fails for a reason that
// may pass (a provider down, a breaker open).
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// DuplicateWindow is how long the stream remembers message ids.
const DuplicateWindow = 10 * time.Minute

// AckWait is how long a consumer that died with a command in hand delays it: the server delivers
// it again after that. Handlers get HandlerTimeout, less, so that a slow one is not redelivered
// while it still runs.
const (
	AckWait        = 10 * time.Second
	HandlerTimeout = 8 * time.Second
)

// StreamName is the JetStream stream of namespace ns's queued commands.
func StreamName(ns wire.Namespace) string {
	if ns == "" {
		ns = wire.DefaultNamespace
	}
	return strings.NewReplacer(".", "_", "-", "_").Replace(string(ns)) + "_jobs"
}

// Subject is where commands for endpoint (a wire.Endpoint…) are queued.
func Subject(ns wire.Namespace, endpoint string) string { return ns.Subject("jobs." + endpoint) }

// Ensure creates or updates the jobs stream of ns.
func Ensure(ctx context.Context, js jetstream.JetStream, ns wire.Namespace) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamName(ns), Description: "commands sent by orderflow process managers",
		Subjects: []string{ns.Subject("jobs.>")}, Retention: jetstream.WorkQueuePolicy,
		Duplicates: DuplicateWindow, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("jobs stream %s (NATS needs JetStream): %w", StreamName(ns), err)
	}
	return nil
}

// Message is one command to queue.
type Message struct {
	Endpoint, ID string
	Data         []byte
	// TraceParent and TraceState continue the trace of the flow that decided the command (its
	// message headers); empty: none. Correlation is the flow's correlation id (its baggage).
	TraceParent, TraceState, Correlation string
}

// PublishAll queues msgs without waiting for each acknowledgement in turn, then waits for them
// all. It returns how many of msgs, from the first, the server stored: a caller deletes those
// from its outbox and keeps the rest.
func PublishAll(ctx context.Context, js jetstream.JetStream, ns wire.Namespace, msgs []Message) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var err error
	var assertion string // who queues them (the saga, about itself), signed for a chunk of them: see auth.Trust
	for i, m := range msgs {
		if i%assertedTogether == 0 {
			chunk := make([]auth.Queued, 0, assertedTogether)
			for _, c := range msgs[i:min(i+assertedTogether, len(msgs))] {
				chunk = append(chunk, auth.Queued{Subject: Subject(ns, c.Endpoint), ID: c.ID})
			}
			tok, ok, aerr := auth.AssertQueued(ctx, chunk)
			if aerr != nil {
				err = aerr
				break
			}
			if assertion = ""; ok {
				assertion = tok
			}
		}
		msg := &nats.Msg{Subject: Subject(ns, m.Endpoint), Data: m.Data, Header: nats.Header{}}
		if m.TraceParent != "" || m.Correlation != "" {
			telemetry.Inject(queued(ctx, m), msg.Header)
		}
		if assertion != "" {
			msg.Header.Set(auth.AssertionHeader, assertion)
		}
		f, perr := js.PublishMsgAsync(msg, jetstream.WithMsgID(m.ID))
		if perr != nil {
			err = perr
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case ferr := <-f.Err():
			return i, fmt.Errorf("queue %s %s: %w", msgs[i].Endpoint, msgs[i].ID, ferr)
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(futures), err
}

// queued returns ctx in the flow of m (its correlation id), under a span that says it was queued
// (a child of the flow's trace, when m carries one).
func queued(ctx context.Context, m Message) context.Context {
	ctx = telemetry.WithCorrelation(ctx, m.Correlation)
	if m.TraceParent != "" {
		var span trace.Span
		ctx, span = telemetry.Tracer().Start(telemetry.WithParent(ctx, m.TraceParent, m.TraceState), "queue "+m.Endpoint,
			trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attribute.String("orderflow.command_id", m.ID)))
		span.End()
	}
	return ctx
}

// assertedTogether is how many messages one caller assertion vouches for: each carries it all,
// a line of about 60 bytes per message.
const assertedTogether = 32

// strictKey marks a context whose queued commands must hold only fields their handler reads.
type strictKey struct{}

// Strict returns ctx under which handlers refuse a command holding a field they do not read
// (contract tests: a field the sender fills and the receiver ignores is one of them renamed). A
// running service accepts such fields, for commands queued by a newer sender.
func Strict(ctx context.Context) context.Context { return context.WithValue(ctx, strictKey{}, true) }

// IsStrict reports whether ctx is Strict.
func IsStrict(ctx context.Context) bool { v, _ := ctx.Value(strictKey{}).(bool); return v }

// delivery is which message a handler carries out: its id and how many times it was delivered.
type delivery struct {
	id string
	n  uint64
}

type deliveryKey struct{}

// Delivered returns ctx as the n-th delivery of the message id (what handlers are given; tests).
func Delivered(ctx context.Context, id string, n uint64) context.Context {
	return context.WithValue(ctx, deliveryKey{}, delivery{id, n})
}

// FirstDelivery reports whether ctx carries out command for the first time: the first delivery
// of the first message that queued it, whose id is the command's own (a sender that queues a
// command again gives the message an id of its own: the command may have been carried out
// already). Nothing an earlier attempt wrote can exist then. False outside a queued command, and
// when the server does not say.
func FirstDelivery(ctx context.Context, command string) bool {
	d, _ := ctx.Value(deliveryKey{}).(delivery)
	return d.n == 1 && d.id == command
}

// Handler carries out one queued command. A *rpc.Error with a code the caller must fix (invalid,
// not found, conflict) is final: the message is acknowledged and logged. Any other error is
// retried later.
type Handler func(ctx context.Context, data []byte) error

// Concurrency is how many queued commands a consumer carries out at once.
const Concurrency = 32

// Consume runs a durable consumer named durable for the given endpoints until ctx ends. Its
// handlers also take commands handed to them in this process (Hand) while they have a worker free.
func Consume(ctx context.Context, js jetstream.JetStream, ns wire.Namespace, durable string, log *slog.Logger, handlers map[string]Handler) error {
	if err := Ensure(ctx, js, ns); err != nil {
		return err
	}
	bySubject, endpoints := map[string]Handler{}, map[string]string{}
	var subjects []string
	for endpoint, h := range handlers {
		bySubject[Subject(ns, endpoint)], endpoints[Subject(ns, endpoint)] = h, endpoint
		subjects = append(subjects, Subject(ns, endpoint))
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamName(ns), jetstream.ConsumerConfig{
		Durable: durable, FilterSubjects: subjects, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: AckWait, MaxDeliver: -1, MaxAckPending: 256,
	})
	if err != nil {
		return fmt.Errorf("jobs consumer %s: %w", durable, err)
	}
	log = log.With("consumer", durable)
	c := &consumer{ctx: ctx, nc: js.Conn(), trust: auth.TrustFrom(ctx), log: log, work: make(chan func())}
	// Long-lived workers, not a goroutine per message: a fresh goroutine grows its stack anew for
	// every command (JSON, pgx and the store go deep), as rpc.NewServer's workers avoid too.
	var started sync.WaitGroup
	started.Add(Concurrency)
	for range Concurrency {
		go func() {
			started.Done()
			for {
				select {
				case job := <-c.work:
					job()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	started.Wait()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		job := func() { c.delivered(m, endpoints[m.Subject()], bySubject[m.Subject()]) }
		select {
		case c.work <- job: // the callback waits while every worker is busy
		case <-ctx.Done():
			_ = m.Nak()
		}
	})
	if err != nil {
		return fmt.Errorf("jobs consumer %s: %w", durable, err)
	}
	serveLocally(ns, handlers, c)
	go func() {
		<-ctx.Done()
		stopServingLocally(ns, handlers, c)
		cc.Stop()
	}()
	return nil
}

// consumer is a running Consume: its workers (work) and what they check callers with.
type consumer struct {
	ctx   context.Context
	nc    *nats.Conn // its connection: a sender must be on the same NATS server (one platform)
	trust *auth.Trust
	log   *slog.Logger
	work  chan func()
}

// delivered carries out a message JetStream delivered, and acknowledges it as carryOut says.
func (c *consumer) delivered(m jetstream.Msg, endpoint string, h Handler) {
	if h == nil {
		_ = m.Term()
		return
	}
	ctx := c.ctx
	if c.trust != nil {
		p, err := c.trust.Verify(m.Headers().Get(auth.AssertionHeader), m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), time.Now())
		if err != nil {
			// Only the saga may queue commands (NATS permissions); one that cannot say so is an
			// intrusion or a misconfigured key, never carried out.
			c.log.Warn("queued command refused: no valid caller assertion", "subject", m.Subject(), "err", err)
			_ = m.Term()
			return
		}
		ctx = auth.With(ctx, p)
	}
	delivered := uint64(0) // unknown
	if md, err := m.Metadata(); err == nil {
		delivered = md.NumDelivered
	}
	ctx = telemetry.Extract(Delivered(ctx, m.Headers().Get(jetstream.MsgIDHeader), delivered), m.Headers())
	switch done, delay := c.carryOut(ctx, m.Subject(), endpoint, h, m.Data(), delivered); {
	case done:
		_ = m.Ack()
	case delay == 0:
		_ = m.Nak() // this consumer is stopping: let another take it now
	default:
		_ = m.NakWithDelay(delay)
	}
}

// carryOut runs h on a command and says what became of it: done (carried out, or refused for
// good), or to be tried again after delay (0: at once, elsewhere: this consumer is stopping).
func (c *consumer) carryOut(ctx context.Context, subject, endpoint string, h Handler, data []byte, delivered uint64) (done bool, delay time.Duration) {
	hctx, cancel := context.WithTimeout(ctx, HandlerTimeout)
	defer cancel()
	hctx, span := telemetry.Tracer().Start(hctx, "job "+subject, trace.WithSpanKind(trace.SpanKindConsumer))
	start, outcome := time.Now(), "retried"
	defer func() { telemetry.Observe(hctx, telemetry.Jobs.WithLabelValues(endpoint, outcome), start) }()
	err := h(hctx, data)
	telemetry.End(span, err)
	if err == nil {
		outcome = "ok"
		if c.log.Enabled(hctx, slog.LevelDebug) { // its arguments cost allocations even when not logged
			c.log.DebugContext(hctx, "queued command done", "subject", subject, "duration_ms", time.Since(start).Milliseconds())
		}
		return true, 0
	}
	if c.ctx.Err() != nil {
		return false, 0
	}
	var rerr *rpc.Error
	if errors.As(err, &rerr) && rpc.Final(rerr.Code) {
		// A refusal (an unknown product, stock short) is a business outcome, recorded as an event:
		// debug, not a line per order at the default level. A malformed command is a bug: info; a
		// command its sender may not give, a warning.
		level := slog.LevelDebug
		switch rerr.Code {
		case rpc.CodeInvalid:
			level = slog.LevelInfo
		case rpc.CodeForbidden:
			level = slog.LevelWarn
		}
		c.log.Log(hctx, level, "queued command refused", "subject", subject, "err", err)
		outcome = "refused"
		return true, 0
	}
	delay = min(time.Duration(1<<min(max(delivered, 1), 6))*250*time.Millisecond, 15*time.Second)
	c.log.WarnContext(hctx, "queued command failed; will retry", "subject", subject, "attempt", delivered, "retry_in", delay, "err", err)
	return false, delay
}

// Commands handed over in the process. A sender (the saga's dispatcher) whose commands a
// consumer of the same process serves (`orderflow dev`, or a process running the saga beside a
// command service) gives them to that consumer's workers at once, rather than through the stream:
// a stored message, its delivery, its acknowledgement and its removal cost the NATS server more
// CPU than most commands cost their service. The command is as safe: the sender keeps it (its
// outbox) until told it is done, and queues it on the stream if it is not (Hand's finished).

// locals are this process's consumers, by namespace and endpoint (several when a test runs two).
var locals = struct {
	sync.Mutex
	by map[localKey][]localHandler
}{by: map[localKey][]localHandler{}}

type localKey struct {
	ns       wire.Namespace
	endpoint string
}

type localHandler struct {
	c *consumer
	h Handler
}

func serveLocally(ns wire.Namespace, handlers map[string]Handler, c *consumer) {
	locals.Lock()
	defer locals.Unlock()
	for endpoint, h := range handlers {
		k := localKey{ns, endpoint}
		locals.by[k] = append(locals.by[k], localHandler{c, h})
	}
}

func stopServingLocally(ns wire.Namespace, handlers map[string]Handler, c *consumer) {
	locals.Lock()
	defer locals.Unlock()
	for endpoint := range handlers {
		k := localKey{ns, endpoint}
		locals.by[k] = slices.DeleteFunc(locals.by[k], func(l localHandler) bool { return l.c == c })
		if len(locals.by[k]) == 0 {
			delete(locals.by, k)
		}
	}
}

// Hand gives each of msgs whose endpoint a consumer of this process serves, with a worker free
// now, to that consumer, as the first delivery of a message with the command's id, from ctx's
// caller (its connection nc: the consumer must be on the same NATS server); and answers which
// it handed. finished is called once for each handed message, from the
// worker, when its handler has returned: done as a delivered message would be acknowledged
// (carried out, or refused for good); not done, the sender queues it (a transient failure, or the
// consumer stopping). A consumer that checks callers takes nothing from a ctx without one.
func Hand(ctx context.Context, nc *nats.Conn, ns wire.Namespace, msgs []Message, finished func(m Message, done bool)) []bool {
	handed := make([]bool, len(msgs))
	p, asserted := auth.From(ctx)
	server := nc.ConnectedServerId()
	locals.Lock()
	defer locals.Unlock()
	for i, m := range msgs {
		for _, l := range locals.by[localKey{ns, m.Endpoint}] {
			// Only a running consumer of the same platform (a test process may run several): on
			// the sender's NATS server, and trusting the sender when it checks callers.
			if (l.c.trust != nil && !asserted) || server == "" || l.c.nc.ConnectedServerId() != server || l.c.ctx.Err() != nil {
				continue
			}
			// The sender's span that queued it, made once a worker took it: the worker waits for it.
			queuedBy := make(chan trace.SpanContext, 1)
			job := func() {
				hctx := l.c.ctx
				if asserted {
					hctx = auth.With(hctx, p)
				}
				hctx = telemetry.WithCorrelation(Delivered(hctx, m.ID, 1), m.Correlation)
				if sc := <-queuedBy; sc.IsValid() {
					hctx = trace.ContextWithRemoteSpanContext(hctx, sc)
				}
				done, _ := l.c.carryOut(hctx, Subject(ns, m.Endpoint), m.Endpoint, l.h, m.Data, 1)
				finished(m, done)
			}
			select {
			case l.c.work <- job:
				handed[i] = true
				queuedBy <- trace.SpanContextFromContext(queued(ctx, m))
			default: // every worker busy
			}
			if handed[i] {
				break
			}
		}
	}
	return handed
}
