// Package commands owns how every command service carries out a command: load the aggregate's
// stream, decide, append with the exact expected revision, retry a bounded number of times on a
// concurrent write, and never append twice for one command id.
package commands

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// Meta identifies a command and the flow it belongs to; it becomes every event's metadata.
// CommandID is required and makes the command idempotent: the same id never appends twice.
type Meta = wire.CommandMeta

// Result is what a carried-out command answers.
type Result struct {
	// Position of the command's last event in $all: read models at or past it show the command.
	Position eventstore.Position
	// Revision of the stream after the command.
	Revision int64
}

// Aggregate tells Execute how to fold and store one kind of stream.
type Aggregate[S any, E any] struct {
	Evolve func(S, E) S
	Decode func(typ string, data []byte) (E, error)
	Encode func(E) (typ string, data []byte, err error)
	// SnapshotVersion, when set, lets a Writer keep snapshots of this aggregate's state (S as
	// JSON) every WriterOptions.SnapshotEvery events and start a cold load from the latest one of
	// the same version. Change it whenever S or Evolve changes: older snapshots are then ignored.
	SnapshotVersion string
}

// MaxAttempts bounds how often a Writer decides a batch again when other writers (another
// process's Writer) keep moving the stream.
const MaxAttempts = 12

// ErrTooBusy: the stream kept changing under the command for MaxAttempts tries. It is transient,
// not a conflict with the state: callers retry (REST answers 503, queued commands are redelivered).
var ErrTooBusy = errors.New("stream too busy, try again")

// Execute carries out one command on stream through w: that stream's one writer decides it on the
// cached state with the commands queued with it and appends their events at once (see Writer).
// If the stream already holds this command's events (a retry, or a duplicate delivery), it
// answers with their position and decides nothing.
func Execute[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream string, meta Meta, decide func(S) ([]E, error)) (Result, error) {
	return execute(ctx, w, agg, stream, meta, decide, false)
}

// execute is Execute; creates says that the command creates its stream (see Decider.Creates).
func execute[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream string, meta Meta, decide func(S) ([]E, error), creates bool) (Result, error) {
	if meta.CommandID == "" {
		return Result{}, domain.Rule("commandId", "is required")
	}
	return executeOn(ctx, w, agg, stream, meta, decide, run{creates: creates})
}

// Read shows look the state of stream as it is now, changing nothing: w's cached state, once w has
// checked that no other writer appended since (one read of the stream's new events, shared by the
// reads and refusals of one batch: see Writer). look may be called more than once: the last call
// saw the answer.
func Read[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream string, look func(S)) error {
	meta := Meta{CommandID: fmt.Sprintf("read:%d", reads.Add(1))} // appends nothing: never remembered
	_, err := executeOn(ctx, w, agg, stream, meta, func(s S) ([]E, error) { look(s); return nil, nil }, run{})
	return err
}

// Look shows look the state of stream as w holds it, and answers the stream's revision it is the
// state at. Proven, it is Read's (checked current); else w's cached state as it is, unchecked
// (the stream is read only when w does not hold it): for an answer that another command's
// append is then conditioned on (eventstore.Condition at that revision), which the store checks.
func Look[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream string, proven bool, look func(S)) (int64, error) {
	meta := Meta{CommandID: fmt.Sprintf("read:%d", reads.Add(1))}
	res, err := executeOn(ctx, w, agg, stream, meta, func(s S) ([]E, error) { look(s); return nil, nil }, run{peek: !proven})
	return res.Revision, err
}

// reads numbers the reads of this process, which a Writer's batch tells apart by command id.
var reads atomic.Int64

func encode[S, E any](ctx context.Context, agg Aggregate[S, E], events []E, meta Meta) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, len(events))
	for i, e := range events {
		typ, data, err := agg.Encode(e)
		if err != nil {
			return nil, err
		}
		out[i] = eventstore.EventData{
			ID: eventstore.DeriveID(meta.CommandID, i), Type: typ, Data: data,
			Metadata: EventMetadata(ctx, meta),
		}
	}
	return out, nil
}

// EventMetadata is the metadata of the events command meta appends: its flow (correlation id),
// its cause (the command id), who asked, and its trace context: the span of ctx (the command's),
// else the command's own traceparent, so that readers of the events continue the trace. Who asked
// is the caller a verified assertion names (auth.Trust), when ctx has one: not the command's word.
func EventMetadata(ctx context.Context, meta Meta) eventstore.Metadata {
	m := eventstore.Metadata{CorrelationID: meta.CorrelationID, CausationID: meta.CommandID, Actor: meta.Actor,
		TraceParent: meta.TraceParent, TraceState: meta.TraceState}
	if p, ok := auth.From(ctx); ok {
		m.Actor = Actor(p)
	}
	if tp, ts := telemetry.TraceParent(ctx); tp != "" {
		m.TraceParent, m.TraceState = tp, ts
	}
	return m
}

// Actor is how events name principal p: "customer:<id>", "admin:<subject>", or a service's own
// name ("saga:fulfillment").
func Actor(p auth.Principal) string {
	if p.Role == auth.Service {
		return p.Subject
	}
	return string(p.Role) + ":" + p.Subject
}

// Classify maps a command's error to the answer a command service sends: invalid commands,
// unknown aggregates and illegal transitions are the caller's to fix; anything else is internal.
func Classify(err error) *rpc.Error {
	var rule *domain.RuleError
	var answer *rpc.Error
	if e := rpc.Forbidden(err); e != nil {
		return e
	}
	switch {
	case errors.As(err, &answer): // another service's answer, passed on
		return answer
	case errors.As(err, &rule):
		return &rpc.Error{Code: rpc.CodeInvalid, Message: rule.Reason, Field: rule.Field}
	case errors.Is(err, domain.ErrNotFound):
		return &rpc.Error{Code: rpc.CodeNotFound, Message: err.Error()}
	case errors.Is(err, domain.ErrConflict):
		return &rpc.Error{Code: rpc.CodeConflict, Message: err.Error()}
	case errors.Is(err, ErrTooBusy), errors.Is(err, eventstore.ErrConditionFailed):
		return &rpc.Error{Code: rpc.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &rpc.Error{Code: rpc.CodeUnavailable, Message: "timed out"}
	}
	return &rpc.Error{Code: rpc.CodeInternal, Message: "internal error"}
}

// Answer carries out a command with Execute and answers as every command service does: the
// aggregate's id and the log position of the command's events.
func Answer[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream, id string, meta Meta, decide func(S) ([]E, error)) (wire.CommandReply, error) {
	return answer(ctx, w, agg, stream, id, meta, decide, false)
}

func answer[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream, id string, meta Meta, decide func(S) ([]E, error), creates bool) (wire.CommandReply, error) {
	res, err := execute(ctx, w, agg, stream, meta, decide, creates)
	if err != nil {
		return wire.CommandReply{}, err
	}
	return wire.CommandReply{ID: id, Position: res.Position.String()}, nil
}

// Service is command service name in namespace ns: commands run within rpc.CommandLimits, and
// their errors are answered as Classify says (an unreachable database: unavailable, retry).
func Service(name, description string, ns wire.Namespace) rpc.Service {
	return rpc.Service{Name: name, Description: description, Namespace: ns, Limits: rpc.CommandLimits, Classify: pgerr.Classify(Classify)}
}

// Decider is a context's command side as its command service uses it: the aggregate, the stream
// of an id, and the domain package's pure Validate and Decide.
type Decider[S, E, C any] struct {
	Aggregate[S, E]
	Stream   func(id string) string
	Validate func(C) error
	Decide   func(S, C, time.Time) ([]E, error)
	// Creates, if set, says which commands create their aggregate (placing an order, authorizing
	// a payment): a Writer then decides them on the empty state without reading the stream, which
	// does not exist but for a retry; the append, expecting no stream, tells it otherwise.
	Creates func(C) bool
}

// NewDecider is the Decider of a context: its codec, Evolve, stream naming, Validate and Decide.
func NewDecider[S any, E domain.Event, C any](codec *domain.Codec[E], evolve func(S, E) S, stream func(id string) string, validate func(C) error, decide func(S, C, time.Time) ([]E, error)) Decider[S, E, C] {
	return Decider[S, E, C]{Aggregate: Aggregate[S, E]{Evolve: evolve, Decode: codec.Decode, Encode: codec.Encode}, Stream: stream, Validate: validate, Decide: decide}
}

// Snapshotted is d keeping snapshots of its state under version (see Aggregate.SnapshotVersion).
func (d Decider[S, E, C]) Snapshotted(version string) Decider[S, E, C] {
	d.SnapshotVersion = version
	return d
}

// Answer validates c before the stream of id is loaded (its name holds the id), then carries it out
// with Answer, decided at now() (time.Now when now is nil).
func (d Decider[S, E, C]) Answer(ctx context.Context, w *Writer, id string, meta Meta, c C, now func() time.Time) (wire.CommandReply, error) {
	return d.AnswerWith(ctx, w, id, meta, c, now, func(s S, at time.Time) ([]E, error) { return d.Decide(s, c, at) })
}

// AnswerWith is Answer deciding with decide, for a handler that does more than Decide (asks a
// card provider first).
func (d Decider[S, E, C]) AnswerWith(ctx context.Context, w *Writer, id string, meta Meta, c C, now func() time.Time, decide func(S, time.Time) ([]E, error)) (wire.CommandReply, error) {
	if err := d.Validate(c); err != nil {
		return wire.CommandReply{}, err
	}
	at := Now(now)
	creates := d.Creates != nil && d.Creates(c)
	return answer(ctx, w, d.Aggregate, d.Stream(id), id, meta, func(s S) ([]E, error) { return decide(s, at) }, creates)
}

// Creating is d with Creates.
func (d Decider[S, E, C]) Creating(creates func(C) bool) Decider[S, E, C] {
	d.Creates = creates
	return d
}

// Read shows look the current state of aggregate id (see Read).
func (d Decider[S, E, C]) Read(ctx context.Context, w *Writer, id string, look func(S)) error {
	return Read(ctx, w, d.Aggregate, d.Stream(id), look)
}

// Look shows look the state of aggregate id and answers its revision (see Look).
func (d Decider[S, E, C]) Look(ctx context.Context, w *Writer, id string, proven bool, look func(S)) (int64, error) {
	return Look(ctx, w, d.Aggregate, d.Stream(id), proven, look)
}

// AnswerIf is Answer for a command decided on what other aggregates said: its events are appended
// only while conds hold (eventstore.AppendIf); else it fails with eventstore.ErrConditionFailed
// and nothing is appended.
func (d Decider[S, E, C]) AnswerIf(ctx context.Context, w *Writer, id string, meta Meta, c C, now func() time.Time, conds []eventstore.Condition) (wire.CommandReply, error) {
	if err := d.Validate(c); err != nil {
		return wire.CommandReply{}, err
	}
	if meta.CommandID == "" {
		return wire.CommandReply{}, domain.Rule("commandId", "is required")
	}
	at := Now(now)
	how := run{creates: d.Creates != nil && d.Creates(c), conds: conds}
	res, err := executeOn(ctx, w, d.Aggregate, d.Stream(id), meta, func(s S) ([]E, error) { return d.Decide(s, c, at) }, how)
	if err != nil {
		return wire.CommandReply{}, err
	}
	return wire.CommandReply{ID: id, Position: res.Position.String()}, nil
}

// Unique is a unique value an aggregate claims before it is created (see Claim): the value's
// stream, the claim's event, and the error a value already taken answers.
type Unique struct {
	Stream string
	Claim  domain.Event
	Taken  error
}

// Create carries out c, which creates aggregate id, once id holds the unique value u: of two
// creations with one value exactly one succeeds. c is decided on an empty state first, so that
// nothing is claimed for a command that would be refused.
func (d Decider[S, E, C]) Create(ctx context.Context, w *Writer, id string, meta Meta, c C, u Unique, now func() time.Time) (wire.CommandReply, error) {
	var empty S
	if _, err := d.Decide(empty, c, Now(now)); err != nil {
		return wire.CommandReply{}, err
	}
	if err := w.Claim(ctx, u.Stream, u.Claim, id, meta, u.Taken); err != nil {
		return wire.CommandReply{}, err
	}
	return d.Answer(ctx, w, id, meta, c, now)
}

// Now is now() when a handler was given a clock, else time.Now().
func Now(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}
