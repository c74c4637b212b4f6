// Package eventstore owns the event store port: appending to streams with an expected revision,
// reading streams, and reading and subscribing to the global log ($all) from a position.
//
// Three adapters implement Store: eventstore/memory (unit tests), eventstore/postgres (a fresh
// machine, CI) and, later, eventstore/esdb (production). All of them pass the contract suite in
// eventstore/storetest, which is the executable form of the rules written on this page.
//
// Ordering and positions. Every committed event has a Position in $all. Positions are totally
// ordered (Compare), opaque to callers, and stable: a subscriber that stores the Position of the
// last event it handled and resumes from it receives every later event exactly once. The log
// never shows an event at a position lower than one it has already shown, which is what makes a
// stored position a safe checkpoint.
package eventstore

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Errors every adapter returns, wrapped with the stream or operation. Callers test with errors.Is.
var (
	// ErrWrongVersion: the stream's revision is not the one the append expected. Reload and
	// decide again (bounded), or report a conflict.
	ErrWrongVersion = errors.New("wrong expected version")
	// ErrStreamNotFound: reading a stream that has no events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrDuplicateEvent: some of the appended event ids are stored in the stream already, but not
	// as the retry of one append (other ids with them, or at another revision).
	ErrDuplicateEvent = errors.New("duplicate event id")
	// ErrStreamDeleted: the stream was deleted for good (an EventStoreDB tombstone).
	ErrStreamDeleted = errors.New("stream deleted")
	// ErrInvalid: the call itself is malformed (empty stream name, no events, bad ids).
	ErrInvalid = errors.New("invalid event store request")
)

// WrongVersionError says which revision the stream was at when an append was refused.
// It matches ErrWrongVersion with errors.Is.
type WrongVersionError struct {
	Stream   string
	Expected ExpectedRevision
	// Actual is the stream's revision when the append was refused, -1 for no stream.
	Actual int64
}

func (e *WrongVersionError) Error() string {
	return fmt.Sprintf("append to %s: %v: expected %s, stream is at %d", e.Stream, ErrWrongVersion, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongVersion) true.
func (e *WrongVersionError) Is(target error) bool { return target == ErrWrongVersion }

// Revision is a stream's version: the zero-based index of its last event, NoRevision when empty.
const NoRevision int64 = -1

// ExpectedRevision is the concurrency check of an append.
type ExpectedRevision struct {
	kind     expectKind
	revision int64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Any appends whatever the stream's revision. Idempotency of such an append is guaranteed only
// for retries that reach the store while the first append's events are still the stream's latest
// (EventStoreDB checks a bounded cache): give exact revisions when retries matter.
func Any() ExpectedRevision { return ExpectedRevision{kind: expectAny} }

// NoStream appends only if the stream has no events.
func NoStream() ExpectedRevision { return ExpectedRevision{kind: expectNoStream} }

// StreamExists appends only if the stream has at least one event.
func StreamExists() ExpectedRevision { return ExpectedRevision{kind: expectStreamExists} }

// Exact appends only if the stream's last event has revision r. Exact(NoRevision) is NoStream.
func Exact(r int64) ExpectedRevision {
	if r < 0 {
		return NoStream()
	}
	return ExpectedRevision{kind: expectExact, revision: r}
}

// Check reports whether a stream at revision actual satisfies the expectation.
func (e ExpectedRevision) Check(actual int64) bool {
	switch e.kind {
	case expectNoStream:
		return actual == NoRevision
	case expectStreamExists:
		return actual != NoRevision
	case expectExact:
		return actual == e.revision
	default:
		return true
	}
}

// Revision returns the exact revision expected and true, or false for Any and StreamExists.
// NoStream is exact: NoRevision.
func (e ExpectedRevision) Revision() (int64, bool) {
	switch e.kind {
	case expectNoStream:
		return NoRevision, true
	case expectExact:
		return e.revision, true
	}
	return 0, false
}

// IsAny reports whether the expectation is Any.
func (e ExpectedRevision) IsAny() bool { return e.kind == expectAny }

// IsStreamExists reports whether the expectation is StreamExists.
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return "revision " + strconv.FormatInt(e.revision, 10)
	}
	return "any"
}

// Position is a place in $all. Commit and Prepare mirror EventStoreDB's pair; the postgres adapter
// stores its transaction id in Commit and the row's global sequence in Prepare. Positions compare
// lexicographically on (Commit, Prepare). The zero Position is the start of the log.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start is the position before the first event.
var Start = Position{}

// Compare returns -1, 0 or +1 as p is before, at or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Prepare < q.Prepare:
		return -1
	case p.Prepare > q.Prepare:
		return 1
	}
	return 0
}

// IsZero reports whether p is the start of the log.
func (p Position) IsZero() bool { return p == Position{} }

// String formats p as "commit-prepare", the form ParsePosition reads and APIs show.
func (p Position) String() string {
	return strconv.FormatUint(p.Commit, 10) + "-" + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition reads the form String writes. An empty string is Start.
func ParsePosition(s string) (Position, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Start, nil
	}
	c, p, ok := strings.Cut(s, "-")
	if !ok {
		return Position{}, fmt.Errorf("position %q: want commit-prepare", s)
	}
	commit, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: commit: %w", s, err)
	}
	prepare, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: prepare: %w", s, err)
	}
	return Position{Commit: commit, Prepare: prepare}, nil
}

// Metadata travels with every event: who caused it and which trace it belongs to.
type Metadata struct {
	// CorrelationID is shared by every message of one business flow (one REST call, one saga).
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the id of the command or event that caused this event.
	CausationID string `json:"causationId,omitempty"`
	// Actor is who asked for the command: "customer:<id>", "admin:<subject>", or a process
	// manager ("saga:fulfillment").
	Actor string `json:"actor,omitempty"`
	// TraceParent and TraceState are W3C trace context headers.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	// Extra holds any other metadata keys; adapters round-trip them unchanged.
	Extra map[string]string `json:"extra,omitempty"`
}

// EventData is an event to append. ID makes appends idempotent: derive it deterministically
// from the command that produced the event (see DeriveID) so a retried command appends nothing twice.
type EventData struct {
	ID       uuid.UUID
	Type     string
	Data     []byte // JSON
	Metadata Metadata
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	ID         uuid.UUID
	Stream     string
	Revision   int64
	Type       string
	Data       []byte
	Metadata   Metadata
	Position   Position
	RecordedAt time.Time
}

// AppendResult tells where an append landed.
type AppendResult struct {
	// NextRevision is the stream's revision after the append: the last appended event's revision.
	NextRevision int64
	// Position is the $all position of the last appended event; pass it to read models to read
	// your own writes.
	Position Position
}

// Direction of a stream read.
type Direction uint8

const (
	Forwards Direction = iota
	Backwards
)

// ReadStreamOptions select a slice of one stream.
type ReadStreamOptions struct {
	Direction Direction
	// From is the first revision returned, inclusive. Backwards reads with From < 0 start at the end.
	From int64
	// Limit caps the number of events; 0 means all.
	Limit int
}

// Filter selects events of $all. An event passes when it matches any of the prefixes given for
// each non-empty list. Stream names beginning with "$" are system streams and never delivered.
type Filter struct {
	EventTypePrefixes []string
	StreamPrefixes    []string
	// Partition, if set, asks for the events of some partitions only (a partitioned reader's
	// share). A store may read only those (PostgreSQL does, in its pages of $all) or not (Match
	// does not look at it): a reader still checks each event's partition.
	Partition *Partition
}

// Partition is a share of the partitions of a log: the events whose key (By) falls into one of
// Parts, of Of partitions (PartitionOf).
type Partition struct {
	By    PartitionKey
	Of    int
	Parts []int
}

// PartitionKey is what an event's partition is computed from.
type PartitionKey int

const (
	// ByStream: the event's stream (an aggregate's events together).
	ByStream PartitionKey = iota
	// ByOrder: the order the payload names (its "orderId" field), else the stream: an order's
	// events of every context (its placement, its stock, its payment) together.
	ByOrder
)

// Of is the key of e.
func (k PartitionKey) Of(e RecordedEvent) string {
	if k == ByOrder {
		var v struct {
			OrderID string `json:"orderId"`
		}
		if json.Unmarshal(e.Data, &v) == nil && v.OrderID != "" {
			return v.OrderID
		}
	}
	return e.Stream
}

// PartitionOf is the partition of key among n: the first four bytes of its MD5, big-endian,
// modulo n. (A function PostgreSQL computes too, so that its reads can select partitions:
// ('x' || left(md5(key), 8))::bit(32)::bigint % n.)
func PartitionOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	sum := md5.Sum([]byte(key))
	return int(binary.BigEndian.Uint32(sum[:4]) % uint32(n))
}

// Match reports whether e passes the filter.
func (f Filter) Match(stream, eventType string) bool {
	if strings.HasPrefix(stream, "$") || strings.HasPrefix(eventType, "$") {
		return false
	}
	return matchAny(f.EventTypePrefixes, eventType) && matchAny(f.StreamPrefixes, stream)
}

func matchAny(prefixes []string, s string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ReadAllOptions select a page of $all.
type ReadAllOptions struct {
	Filter Filter
	// Limit caps the page; 0 means the adapter's default page.
	Limit int
}

// Page is one read of $all.
type Page struct {
	// Events are in log order, all after the position the read started from.
	Events []RecordedEvent
	// Position is where the next read continues from. It is at or past the last event's position
	// and may be further on when the read skipped events the filter excluded: store it as the
	// checkpoint even when Events is empty.
	Position Position
	// AtEnd reports that the read reached the committed end of the log.
	AtEnd bool
}

// Store is the event store port. Implementations are safe for concurrent use.
type Store interface {
	// Append adds events to the end of stream if its revision satisfies expected, atomically:
	// all or none. Appending the same event ids a stream already holds, with the same expected
	// revision, succeeds without writing and returns the original result (an idempotent retry).
	// Event ids identify retries; stores do not promise to refuse an id they hold elsewhere.
	// Errors: *WrongVersionError (ErrWrongVersion), ErrDuplicateEvent, ErrInvalid.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events []EventData) (AppendResult, error)

	// ReadStream returns a stream's events. Errors: ErrStreamNotFound when the stream has none.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)

	// ReadAll returns committed events after position from, in log order, that pass the filter.
	// It never returns an event that a later call could show before one it returned.
	ReadAll(ctx context.Context, from Position, opts ReadAllOptions) (Page, error)

	// SubscribeAll follows $all after position from: first the events already committed
	// (catch-up), then new ones as they commit (live). The subscription ends with ctx.
	SubscribeAll(ctx context.Context, from Position, opts SubscribeOptions) (Subscription, error)
}

// SubscribeOptions configure a subscription to $all.
type SubscribeOptions struct {
	Filter Filter
	// BatchSize caps the events of one Batch; 0 means the adapter's default.
	BatchSize int
	// Linger is how long a batch that has events may wait for more before it is delivered: fewer,
	// larger batches (one transaction of a projector each) for that much latency. Adapters that
	// cannot wait cheaply ignore it.
	Linger time.Duration
}

// Subscription delivers $all in log order, in batches.
type Subscription interface {
	// Next blocks until there are new events or the subscription's position advanced past
	// filtered-out events, and returns them. It returns ctx's error when ctx ends, and the
	// adapter's error if the subscription cannot continue (resume from the last Batch.Position).
	Next(ctx context.Context) (Batch, error)
	// Close releases the subscription. Safe to call more than once.
	Close()
}

// Batch is what a subscription delivers at once.
type Batch struct {
	Events []RecordedEvent
	// Position is the checkpoint after this batch: resume from it to continue exactly here.
	Position Position
	// CaughtUp reports that the batch reaches what was committed when it was read.
	CaughtUp bool
}

// eventIDNamespace roots the deterministic event ids of DeriveID.
var eventIDNamespace = uuid.MustParse("6f1d0a6e-3c0c-4a43-9c59-5bb0f1d1c2a1")

// DeriveID returns the id of the i-th event produced by the command with id commandID. The same
// command always yields the same ids, which is what makes a retried command append nothing twice.
func DeriveID(commandID string, i int) uuid.UUID {
	return uuid.NewSHA1(eventIDNamespace, []byte(commandID+"#"+strconv.Itoa(i)))
}

// ValidateAppend checks an append's arguments the way every adapter must: a stream name, at
// least one event, unique non-nil ids, non-empty types and JSON data. Errors match ErrInvalid.
func ValidateAppend(stream string, events []EventData) error {
	if stream == "" {
		return fmt.Errorf("append: empty stream name: %w", ErrInvalid)
	}
	if len(events) == 0 {
		return fmt.Errorf("append to %s: no events: %w", stream, ErrInvalid)
	}
	seen := make(map[uuid.UUID]bool, len(events))
	for _, e := range events {
		if e.ID == uuid.Nil || e.Type == "" || seen[e.ID] {
			return fmt.Errorf("append to %s: every event needs a unique id and a type: %w", stream, ErrInvalid)
		}
		if !json.Valid(e.Data) {
			return fmt.Errorf("append to %s: event %s: data is not JSON: %w", stream, e.ID, ErrInvalid)
		}
		seen[e.ID] = true
	}
	return nil
}
