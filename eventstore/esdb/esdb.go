// Package esdb is the EventStoreDB (KurrentDB) event store adapter, through the official Go
// client github.com/EventStore/EventStore-Client-Go/v4.
//
// Mapping to the port:
//   - expected revisions map one to one (Any, NoStream, StreamExists, Exact → Revision); a wrong
//     expected version becomes *eventstore.WrongVersionError with the server's current revision;
//   - positions are EventStoreDB's (commit, prepare) pair, kept opaque;
//   - eventstore.Metadata travels as the event's custom metadata (JSON); data is JSON;
//   - idempotency is the server's: the same event ids at the same expected revision succeed
//     without writing (with Any or StreamExists the server only checks a bounded cache);
//   - $all subscriptions filter on the server (by event type prefix when the filter names types,
//     else by stream prefix, else excluding system events) and again in the client, so a filter
//     on both types and streams, and the exclusion of $-prefixed system events, always hold. The
//     server's checkpoint messages advance a filtered subscriber's position past events it never
//     sees. A dropped subscription is re-established from the last position it delivered, with
//     exponential backoff, without loss or duplicates (subscription starts are exclusive).
//   - ReadAll reads without a server filter (the client's ReadAll has none) and filters in the
//     client; EventStoreDB read starts are inclusive, so the event at the start is skipped.
package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/orderflow/orderflow/eventstore"
)

// Options configure a Store.
type Options struct {
	// Log receives subscription drops and reconnections; default slog.Default().
	Log *slog.Logger
	// MaxBackoff caps the wait between re-subscription attempts; default 5s.
	MaxBackoff time.Duration
}

// Store is an eventstore.Store over EventStoreDB.
type Store struct {
	client *esdb.Client
	opts   Options
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the server at url (esdb://host:2113?tls=false, esdb+discover://…).
func Open(url string, opts Options) (*Store, error) {
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		return nil, fmt.Errorf("eventstoredb url: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	cfg.Logger = clientLogger(opts.Log)
	client, err := esdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("eventstoredb client: %w", err)
	}
	return New(client, opts), nil
}

// clientLogger routes the client's log lines into log. The client reports every subscription
// end as an error, our own Close included; the adapter logs the drops that matter, so the
// client's lines go to debug, but for warnings.
func clientLogger(log *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		if len(args) == 1 { // v4.2.0 passes its arguments as one slice
			if inner, ok := args[0].([]any); ok {
				args = inner
			}
		}
		l := slog.LevelDebug
		if level == esdb.LogWarn {
			l = slog.LevelWarn
		}
		log.Log(context.Background(), l, "eventstoredb client: "+fmt.Sprintf(format, args...))
	}
}

// New returns a store over client.
func New(client *esdb.Client, opts Options) *Store {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	return &Store{client: client, opts: opts}
}

// Close closes the client's connection.
func (s *Store) Close() error { return s.client.Close() }

// Ping checks that the server answers a read.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{Limit: 1})
	return err
}

func expectedRevision(e eventstore.ExpectedRevision) esdb.ExpectedRevision {
	switch {
	case e.IsAny():
		return esdb.Any{}
	case e.IsStreamExists():
		return esdb.StreamExists{}
	}
	r, _ := e.Revision()
	if r == eventstore.NoRevision {
		return esdb.NoStream{}
	}
	return esdb.Revision(uint64(r))
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	data := make([]esdb.EventData, len(events))
	for i, e := range events {
		meta, err := json.Marshal(storedMetadata{Metadata: e.Metadata, Correlation: e.Metadata.CorrelationID, Causation: e.Metadata.CausationID})
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: metadata: %w", stream, err)
		}
		data[i] = esdb.EventData{EventID: e.ID, EventType: e.Type, ContentType: esdb.ContentTypeJson, Data: e.Data, Metadata: meta}
	}
	res, err := s.client.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: expectedRevision(expected)}, data...)
	if err != nil {
		return eventstore.AppendResult{}, translate(ctx, fmt.Sprintf("append to %s", stream), err, stream, expected)
	}
	return eventstore.AppendResult{
		NextRevision: int64(res.NextExpectedVersion),
		Position:     eventstore.Position{Commit: res.CommitPosition, Prepare: res.PreparePosition},
	}, nil
}

// The client reports a wrong expected version only as text: "… expecting 'E' but got 'C'".
var currentRevision = regexp.MustCompile(`but got '([^']*)'`)

// translate turns client errors into the port's.
func translate(ctx context.Context, op string, err error, stream string, expected eventstore.ExpectedRevision) error {
	var e *esdb.Error
	if !errors.As(err, &e) {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	switch e.Code() {
	case esdb.ErrorCodeWrongExpectedVersion:
		actual := eventstore.NoRevision
		if m := currentRevision.FindStringSubmatch(e.Error()); m != nil && m[1] != "no_stream" {
			if n, perr := strconv.ParseInt(m[1], 10, 64); perr == nil {
				actual = n
			}
		}
		return &eventstore.WrongVersionError{Stream: stream, Expected: expected, Actual: actual}
	case esdb.ErrorCodeResourceNotFound:
		return fmt.Errorf("%s: %w", op, eventstore.ErrStreamNotFound)
	case esdb.ErrorCodeStreamDeleted:
		return fmt.Errorf("%s: %w", op, eventstore.ErrStreamDeleted)
	case esdb.ErrorCodeDeadlineExceeded:
		return fmt.Errorf("%s: %w", op, context.DeadlineExceeded)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return fmt.Errorf("%s: %w", op, err)
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	count := uint64(1<<63 - 1)
	if opts.Limit > 0 {
		count = uint64(opts.Limit)
	}
	ro := esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(uint64(max(opts.From, 0)))}
	if opts.Direction == eventstore.Backwards {
		ro.Direction, ro.From = esdb.Backwards, esdb.End{}
		if opts.From >= 0 {
			ro.From = esdb.Revision(uint64(opts.From))
		}
	}
	return s.read(ctx, stream, ro, count)
}

// read reads stream with ro: the events themselves, resolved when ro resolves links (a link to a
// deleted event is left out).
func (s *Store) read(ctx context.Context, stream string, ro esdb.ReadStreamOptions, count uint64) ([]eventstore.RecordedEvent, error) {
	op := "read stream " + stream
	rs, err := s.client.ReadStream(ctx, stream, ro, count)
	if err != nil {
		return nil, translate(ctx, op, err, stream, eventstore.Any())
	}
	defer rs.Close()
	var out []eventstore.RecordedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, translate(ctx, op, err, stream, eventstore.Any())
		}
		if ev.Event == nil {
			continue
		}
		rec, err := recorded(ev.Event)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, rec)
	}
}

// storedMetadata is eventstore.Metadata as an event carries it in EventStoreDB, with the
// $correlationId and $causationId its system projections read: $by_correlation_id keeps the
// $bc-<correlation id> streams that ByCorrelation reads.
type storedMetadata struct {
	eventstore.Metadata
	Correlation string `json:"$correlationId,omitempty"`
	Causation   string `json:"$causationId,omitempty"`
}

// ByCorrelation implements eventstore.Correlations from the $bc-<id> stream of the
// $by_correlation_id system projection (links, resolved), which must run on the server
// (--run-projections=System, and the projection enabled); a flow it has not indexed is empty.
func (s *Store) ByCorrelation(ctx context.Context, id string, limit int) ([]eventstore.RecordedEvent, error) {
	count := uint64(1<<63 - 1)
	if limit > 0 {
		count = uint64(limit)
	}
	events, err := s.read(ctx, "$bc-"+id, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Start{}, ResolveLinkTos: true}, count)
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, nil
	}
	return events, err
}

// Head returns the position of the last event in $all (Start for an empty log): rebuilds
// report their progress against it.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	rs, err := s.client.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return eventstore.Start, translate(ctx, "read the head of $all", err, "$all", eventstore.Any())
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if errors.Is(err, io.EOF) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Start, translate(ctx, "read the head of $all", err, "$all", eventstore.Any())
	}
	return eventstore.Position{Commit: ev.Event.Position.Commit, Prepare: ev.Event.Position.Prepare}, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, opts eventstore.ReadAllOptions) (eventstore.Page, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	start := esdb.AllPosition(esdb.Start{})
	count := uint64(limit)
	if !from.IsZero() {
		start = esdb.Position{Commit: from.Commit, Prepare: from.Prepare}
		count++ // the read starts at from, inclusive
	}
	rs, err := s.client.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Forwards, From: start}, count)
	if err != nil {
		return eventstore.Page{}, translate(ctx, "read $all", err, "$all", eventstore.Any())
	}
	defer rs.Close()
	page := eventstore.Page{Position: from}
	received := uint64(0)
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return eventstore.Page{}, translate(ctx, "read $all", err, "$all", eventstore.Any())
		}
		received++
		e := ev.Event
		pos := eventstore.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
		if pos.Compare(from) <= 0 {
			continue
		}
		page.Position = pos
		if !opts.Filter.Match(e.StreamID, e.EventType) {
			continue
		}
		rec, err := recorded(e)
		if err != nil {
			return eventstore.Page{}, fmt.Errorf("read $all: %w", err)
		}
		page.Events = append(page.Events, rec)
	}
	page.AtEnd = received < count
	return page, nil
}

func recorded(e *esdb.RecordedEvent) (eventstore.RecordedEvent, error) {
	rec := eventstore.RecordedEvent{
		ID: e.EventID, Stream: e.StreamID, Revision: int64(e.EventNumber), Type: e.EventType,
		Data: e.Data, RecordedAt: e.CreatedDate,
		Position: eventstore.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare},
	}
	if len(e.UserMetadata) > 0 {
		if err := json.Unmarshal(e.UserMetadata, &rec.Metadata); err != nil {
			return rec, fmt.Errorf("event %s metadata: %w", e.EventID, err)
		}
	}
	return rec, nil
}

// serverFilter is the part of f EventStoreDB can apply: one kind of filter per subscription.
func serverFilter(f eventstore.Filter) *esdb.SubscriptionFilter {
	switch {
	case len(f.EventTypePrefixes) > 0:
		return &esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: f.EventTypePrefixes}
	case len(f.StreamPrefixes) > 0:
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: f.StreamPrefixes}
	}
	return esdb.ExcludeSystemEventsFilter()
}

// snapshotStream is where stream's snapshots are kept: a stream of snapshot events with $maxCount 1
// (the server keeps the latest), read backwards. No projection's filter selects it.
func snapshotStream(stream string) string { return "snapshot-" + stream }

const snapshotType = "orderflow.snapshot.v1"

// SaveSnapshot implements eventstore.Snapshots: an event on the stream's snapshot stream, unless
// the latest there has a higher revision.
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	old, err := s.LoadSnapshot(ctx, stream)
	if err == nil && old.Revision > snap.Revision {
		return nil
	}
	if errors.Is(err, eventstore.ErrSnapshotNotFound) {
		// The first snapshot of the stream: the server keeps only the latest ($maxCount 1).
		var meta esdb.StreamMetadata
		meta.SetMaxCount(1)
		if _, err := s.client.SetStreamMetadata(ctx, snapshotStream(stream), esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, meta); err != nil {
			return translate(ctx, "snapshot stream metadata of "+stream, err, snapshotStream(stream), eventstore.Any())
		}
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	_, err = s.client.AppendToStream(ctx, snapshotStream(stream), esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}},
		esdb.EventData{EventID: uuid.New(), EventType: snapshotType, ContentType: esdb.ContentTypeJson, Data: data})
	if err != nil {
		return translate(ctx, "save snapshot of "+stream, err, snapshotStream(stream), eventstore.Any())
	}
	return nil
}

// LoadSnapshot implements eventstore.Snapshots.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, error) {
	var snap eventstore.Snapshot
	events, err := s.ReadStream(ctx, snapshotStream(stream), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1, Limit: 1})
	if errors.Is(err, eventstore.ErrStreamNotFound) || (err == nil && len(events) == 0) {
		return snap, fmt.Errorf("%s: %w", stream, eventstore.ErrSnapshotNotFound)
	}
	if err != nil {
		return snap, err
	}
	if err := json.Unmarshal(events[0].Data, &snap); err != nil {
		return snap, fmt.Errorf("snapshot of %s: %w", stream, err)
	}
	return snap, nil
}
