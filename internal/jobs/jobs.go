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
	"strings"
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
			pctx := telemetry.WithCorrelation(ctx, m.Correlation)
			if m.TraceParent != "" {
				var span trace.Span
				pctx, span = telemetry.Tracer().Start(telemetry.WithParent(pctx, m.TraceParent, m.TraceState), "queue "+m.Endpoint,
					trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attribute.String("orderflow.command_id", m.ID)))
				span.End()
			}
			telemetry.Inject(pctx, msg.Header)
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

// Consume runs a durable consumer named durable for the given endpoints until ctx ends.
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
	trust := auth.TrustFrom(ctx)
	// Long-lived workers, not a goroutine per message: a fresh goroutine grows its stack anew for
	// every command (JSON, pgx and the store go deep), as rpc.NewServer's workers avoid too.
	msgs := make(chan jetstream.Msg)
	for range Concurrency {
		go func() {
			for {
				select {
				case m := <-msgs:
					handle(ctx, trust, m, endpoints[m.Subject()], bySubject[m.Subject()], log)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m: // the callback waits while every worker is busy, as the semaphore did
		case <-ctx.Done():
			_ = m.Nak()
		}
	})
	if err != nil {
		return fmt.Errorf("jobs consumer %s: %w", durable, err)
	}
	go func() {
		<-ctx.Done()
		cc.Stop()
	}()
	return nil
}

func handle(ctx context.Context, trust *auth.Trust, m jetstream.Msg, endpoint string, h Handler, log *slog.Logger) {
	if h == nil {
		_ = m.Term()
		return
	}
	if trust != nil {
		p, err := trust.Verify(m.Headers().Get(auth.AssertionHeader), m.Subject(), m.Headers().Get(jetstream.MsgIDHeader), time.Now())
		if err != nil {
			// Only the saga may queue commands (NATS permissions); one that cannot say so is an
			// intrusion or a misconfigured key, never carried out.
			log.Warn("queued command refused: no valid caller assertion", "subject", m.Subject(), "err", err)
			_ = m.Term()
			return
		}
		ctx = auth.With(ctx, p)
	}
	delivered := uint64(0) // unknown
	if md, err := m.Metadata(); err == nil {
		delivered = md.NumDelivered
	}
	hctx, cancel := context.WithTimeout(Delivered(ctx, m.Headers().Get(jetstream.MsgIDHeader), delivered), HandlerTimeout)
	defer cancel()
	hctx, span := telemetry.Tracer().Start(telemetry.Extract(hctx, m.Headers()), "job "+m.Subject(), trace.WithSpanKind(trace.SpanKindConsumer))
	start, outcome := time.Now(), "retried"
	defer func() { telemetry.Observe(hctx, telemetry.Jobs.WithLabelValues(endpoint, outcome), start) }()
	err := h(hctx, m.Data())
	telemetry.End(span, err)
	if err == nil {
		outcome = "ok"
	}
	if err == nil {
		_ = m.Ack()
		if log.Enabled(hctx, slog.LevelDebug) { // its arguments cost allocations even when not logged
			log.DebugContext(hctx, "queued command done", "subject", m.Subject(), "duration_ms", time.Since(start).Milliseconds())
		}
		return
	}
	if ctx.Err() != nil {
		_ = m.Nak() // this consumer is stopping: let another take it now
		return
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
		log.Log(hctx, level, "queued command refused", "subject", m.Subject(), "err", err)
		outcome = "refused"
		_ = m.Ack()
		return
	}
	delay := min(time.Duration(1<<min(max(delivered, 1), 6))*250*time.Millisecond, 15*time.Second)
	log.WarnContext(hctx, "queued command failed; will retry", "subject", m.Subject(), "attempt", delivered, "retry_in", delay, "err", err)
	_ = m.NakWithDelay(delay)
}
