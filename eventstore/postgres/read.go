package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/eventstore"
)

// Reading: a stream, a flow's events, $all up to the horizon, and subscriptions; snapshots.

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	limit := int64(opts.Limit)
	if limit <= 0 {
		limit = 1<<63 - 1
	}
	query, from := s.sql.readFwd, max(opts.From, 0)
	// A forward read from revision n > 0 reads from n-1 too: that event, when there, proves the
	// stream exists, so a read past the end (a writer asking for what is new) costs one statement.
	// Revisions have no holes: a stream without n-1 holds fewer than n events, or none.
	proof := opts.Direction != eventstore.Backwards && from > 0
	if proof {
		from--
		if limit < 1<<63-1 {
			limit++
		}
	}
	if opts.Direction == eventstore.Backwards {
		query, from = s.sql.readBack, opts.From
		if from < 0 {
			from = 1<<63 - 1
		}
	}
	rows, err := s.pool.Query(ctx, query, stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if proof && len(events) > 0 && events[0].Revision == from {
		return events[1:], nil
	}
	if len(events) == 0 && opts.Direction != eventstore.Backwards && from == 0 {
		return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrStreamNotFound) // no revision 0: no stream
	}
	if len(events) == 0 {
		var head int64
		if err := s.pool.QueryRow(ctx, s.sql.head, stream).Scan(&head); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if head == eventstore.NoRevision {
			return nil, fmt.Errorf("read stream %s: %w", stream, eventstore.ErrStreamNotFound)
		}
	}
	return events, nil
}

// ByCorrelation implements eventstore.Correlations (index events_correlation).
func (s *Store) ByCorrelation(ctx context.Context, id string, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1<<31 - 1
	}
	rows, err := s.pool.Query(ctx, s.sql.byCorrelation, id, limit)
	if err != nil {
		return nil, fmt.Errorf("events of correlation %s: %w", id, err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events of correlation %s: %w", id, err)
	}
	return events, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, opts eventstore.ReadAllOptions) (eventstore.Page, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 1000
	}
	types, streams := opts.Filter.EventTypePrefixes, opts.Filter.StreamPrefixes
	if types == nil {
		types = []string{}
	}
	if streams == nil {
		streams = []string{}
	}
	query := s.sql.readAllOldest
	if s.opts.FenceAfter < 0 || s.oldest.held(time.Now(), s.opts.FenceAfter) {
		query = s.sql.readAll
	}
	parts, of, byOrder := []int{}, 1, false
	if p := opts.Filter.Partition; p != nil && p.Of > 1 {
		parts, of, byOrder = p.Parts, p.Of, p.By == eventstore.ByOrder
		if parts == nil {
			parts = []int{-1} // none: an empty list would mean every one
		}
	}
	rows, err := queryGeneric(ctx, s.pool, s.sql.genericRead, query, strconv.FormatUint(from.Commit, 10), int64(from.Prepare), types, streams, limit, parts, of, byOrder)
	if err != nil {
		return eventstore.Page{}, fmt.Errorf("read $all from %s: %w", from, err)
	}
	var h horizon
	events, err := scanAll(rows, &h)
	if err != nil {
		return eventstore.Page{}, fmt.Errorf("read $all from %s: %w", from, err)
	}
	s.oldest.saw(h, time.Now())
	horizon := h.at
	page := eventstore.Page{Events: events, Position: from}
	if len(events) > 0 {
		page.Position = events[len(events)-1].Position
	}
	if len(events) < limit {
		// Everything committed below the horizon after from has been read.
		page.AtEnd = true
		if end := (eventstore.Position{Commit: horizon}); end.Compare(page.Position) > 0 {
			page.Position = end
		}
	}
	return page, nil
}

// SubscribeAll implements eventstore.Store: near the end of the log, from the events the store's
// subscriptions share (Options.TailEvents).
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	if s.tail != nil {
		return s.tail.Subscribe(from, opts), nil
	}
	return eventstore.NewPollingSubscription(s.ReadAll, from, opts, &s.wake, s.opts.PollInterval), nil
}

// horizon is what a read of $all read below: at, and the cluster's oldest running transaction
// (xmin) and next one (xmax) in the read's snapshot.
type horizon struct{ at, xmin, xmax uint64 }

func parseHorizon(text string) (horizon, error) {
	var h horizon
	if _, err := fmt.Sscan(text, &h.at, &h.xmin, &h.xmax); err != nil {
		return h, fmt.Errorf("horizon %q: %w", text, err)
	}
	return h, nil
}

// HeldAfter is how long, by default, the cluster's oldest running transaction may hold readers
// before they look past it (Options.FenceAfter, oldestWatch).
const HeldAfter = 500 * time.Millisecond

// oldestWatch chooses how reads of $all find their horizon. The cluster's oldest running
// transaction (pg_snapshot_xmin) is a safe horizon and a cheap one; it holds readers only while
// that transaction runs, and under a steady load of short transactions it moves with every read.
// Listing the appends in flight (the fence: appendFence) costs a scan of pg_locks and of the
// backends, about 0.7 ms a read under load; so reads use the oldest transaction while it moves, and
// the fence once it has held still for HeldAfter while something ran (an analyst's long
// transaction, a backup): then a long transaction elsewhere delays the projectors and the saga by
// HeldAfter, not by its length. Both are safe: the choice is only about cost.
type oldestWatch struct {
	mu    sync.Mutex
	xmin  uint64    // the oldest running transaction at the last read
	since time.Time // since when it has not moved (zero: it is moving, or nothing runs)
}

// held reports whether the oldest transaction has held readers for after.
func (w *oldestWatch) held(now time.Time, after time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.since.IsZero() && now.Sub(w.since) >= after
}

// saw records what a read found.
func (w *oldestWatch) saw(h horizon, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case h.xmin == h.xmax: // nothing runs
		w.xmin, w.since = h.xmin, time.Time{}
	case h.xmin != w.xmin:
		w.xmin, w.since = h.xmin, time.Time{}
	case w.since.IsZero():
		w.since = now
	}
}

// HorizonAge reports how long the oldest append still in flight has been running: the time by
// which it holds every subscriber back (a transaction that is not an append holds nothing; see
// appendFence). Export it as a metric: appends commit in milliseconds, so an age of seconds is an
// append that does not end (a transaction of AppendTx left open, a lock wait).
func (s *Store) HorizonAge(ctx context.Context) (time.Duration, error) {
	var secs float64
	if err := s.pool.QueryRow(ctx, s.sql.horizonAge).Scan(&secs); err != nil {
		return 0, fmt.Errorf("horizon age: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// scanAll reads a page of $all. Pages of thousands of events are a replay's bread, so when the
// columns arrive in binary (as pgx asks) it decodes them straight from the wire buffers: no
// reflection, strings of event types shared, payloads copied into one buffer per page. That
// halves a replay's read cost in Go; anything unexpected takes pgx's general path.
func scanAll(rows pgx.Rows, horizon *horizon) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	fds := rows.FieldDescriptions()
	// Text columns read the same in either format; json too, and jsonb (tables made before the
	// payloads became json) in binary has a version byte first; the
	// numbers, the uuid and the timestamp must be binary.
	raw := len(fds) == 10
	for _, i := range []int{2, 4, 5, 9} {
		raw = raw && fds[i].Format == pgx.BinaryFormatCode
	}
	jsonb := func(i int, v []byte) ([]byte, bool) {
		if fds[i].Format == pgx.TextFormatCode || fds[i].DataTypeOID != pgtype.JSONBOID {
			return v, true
		}
		if len(v) < 1 || v[0] != 1 {
			return nil, false
		}
		return v[1:], true
	}
	var out []eventstore.RecordedEvent
	types := map[string]string{}
	var arena []byte
	keep := func(b []byte) []byte {
		if len(b) > 16<<10 {
			return append([]byte(nil), b...)
		}
		if cap(arena)-len(arena) < len(b) {
			// Each new arena twice the last (4 KiB up to 256 KiB): a page of a few events, as a
			// live subscription reads, takes a few KiB, not a replay's page.
			arena = make([]byte, 0, min(max(2*cap(arena), 4<<10), 256<<10))
		}
		arena = append(arena, b...)
		return arena[len(arena)-len(b) : len(arena) : len(arena)]
	}
	first := true
	for rows.Next() {
		if !raw {
			e, ok, err := scanAllRow(rows, horizon)
			if err != nil {
				return nil, err
			}
			if ok {
				if n := len(out); n > 0 && out[n-1].Position.Compare(e.Position) >= 0 {
					return nil, fmt.Errorf("read $all: position %s after %s: rows out of order", e.Position, out[n-1].Position)
				}
				out = append(out, e)
			}
			continue
		}
		v := rows.RawValues()
		if first {
			x, err := parseHorizon(string(v[0]))
			if err != nil {
				return nil, err
			}
			*horizon, first = x, false
		}
		if v[1] == nil {
			continue // nothing below the horizon: the lateral join's empty row
		}
		data, okData := jsonb(7, v[7])
		meta, okMeta := jsonb(8, v[8])
		if len(v[2]) != 8 || len(v[4]) != 8 || len(v[5]) != 16 || !okData || !okMeta || len(v[9]) != 8 {
			return nil, fmt.Errorf("read $all: unexpected binary row layout")
		}
		commit, err := strconv.ParseUint(string(v[1]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("transaction id %q: %w", v[1], err)
		}
		typ, ok := types[string(v[6])]
		if !ok {
			typ = string(v[6])
			types[typ] = typ
		}
		if out == nil {
			out = make([]eventstore.RecordedEvent, 0, 8)
		}
		e := eventstore.RecordedEvent{
			ID:         uuid.UUID(v[5]),
			Stream:     string(v[3]),
			Revision:   int64(binary.BigEndian.Uint64(v[4])),
			Type:       typ,
			Data:       keep(data),
			RecordedAt: pgEpoch.Add(time.Duration(int64(binary.BigEndian.Uint64(v[9]))) * time.Microsecond),
			Position:   eventstore.Position{Commit: commit, Prepare: binary.BigEndian.Uint64(v[2])},
		}
		if err := gojson.Unmarshal(meta, &e.Metadata); err != nil {
			return nil, fmt.Errorf("event %s metadata: %w", e.ID, err)
		}
		if n := len(out); n > 0 && out[n-1].Position.Compare(e.Position) >= 0 {
			return nil, fmt.Errorf("read $all: position %s after %s: rows out of order", e.Position, out[n-1].Position)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// pgEpoch is where PostgreSQL's binary timestamps count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// scanAllRow is scanAll's general path for one row.
func scanAllRow(rows pgx.Rows, hz *horizon) (eventstore.RecordedEvent, bool, error) {
	var (
		h, txID, stream, typ *string
		gp, version          *int64
		id                   pgtype.UUID // null with the rest when the page has no row
		at                   *time.Time
		data, meta           []byte
	)
	if err := rows.Scan(&h, &txID, &gp, &stream, &version, &id, &typ, &data, &meta, &at); err != nil {
		return eventstore.RecordedEvent{}, false, err
	}
	x, err := parseHorizon(*h)
	if err != nil {
		return eventstore.RecordedEvent{}, false, err
	}
	*hz = x
	if txID == nil {
		return eventstore.RecordedEvent{}, false, nil
	}
	e := eventstore.RecordedEvent{ID: id.Bytes, Stream: *stream, Revision: *version, Type: *typ, Data: data, RecordedAt: *at}
	return e, true, decodeRow(&e, *txID, *gp, meta)
}

func scanEvents(rows pgx.Rows) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var (
			e    eventstore.RecordedEvent
			id   pgtype.UUID // scanned in binary, not through uuid.UUID's Scanner (text)
			txID string
			gp   int64
			meta []byte
		)
		if err := rows.Scan(&txID, &gp, &e.Stream, &e.Revision, &id, &e.Type, &e.Data, &meta, &e.RecordedAt); err != nil {
			return nil, err
		}
		e.ID = id.Bytes
		if err := decodeRow(&e, txID, gp, meta); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func decodeRow(e *eventstore.RecordedEvent, txID string, gp int64, meta []byte) error {
	commit, err := strconv.ParseUint(txID, 10, 64)
	if err != nil {
		return fmt.Errorf("transaction id %q: %w", txID, err)
	}
	e.Position = eventstore.Position{Commit: commit, Prepare: uint64(gp)}
	if err := gojson.Unmarshal(meta, &e.Metadata); err != nil {
		return fmt.Errorf("event %s metadata: %w", e.ID, err)
	}
	return nil
}

// Head returns the position of the last event appended (committed or not yet visible): for
// progress reports, not for reading.
func (s *Store) Head(ctx context.Context) (eventstore.Position, error) {
	var gp int64
	err := s.pool.QueryRow(ctx, `select coalesce(max(global_position), 0) from `+pgx.Identifier{s.opts.Schema, "events"}.Sanitize()).Scan(&gp)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("head of the log: %w", err)
	}
	return eventstore.Position{Prepare: uint64(gp)}, nil
}

// SaveSnapshot implements eventstore.Snapshots: one row per stream, replaced by a snapshot of a
// higher (or equal) revision, in a statement of its own (never inside an append's transaction).
func (s *Store) SaveSnapshot(ctx context.Context, stream string, snap eventstore.Snapshot) error {
	t := pgx.Identifier{s.opts.Schema, "snapshots"}.Sanitize()
	_, err := s.pool.Exec(ctx, `insert into `+t+` (stream_id, revision, version, data) values ($1, $2, $3, $4)
on conflict (stream_id) do update set revision = excluded.revision, version = excluded.version, data = excluded.data, saved_at = now()
 where `+t+`.revision <= excluded.revision`, stream, snap.Revision, snap.Version, snap.Data)
	if err != nil {
		return fmt.Errorf("save snapshot of %s: %w", stream, err)
	}
	return nil
}

// LoadSnapshot implements eventstore.Snapshots.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (eventstore.Snapshot, error) {
	var snap eventstore.Snapshot
	err := s.pool.QueryRow(ctx, `select revision, version, data from `+pgx.Identifier{s.opts.Schema, "snapshots"}.Sanitize()+` where stream_id = $1`, stream).
		Scan(&snap.Revision, &snap.Version, &snap.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return snap, fmt.Errorf("%s: %w", stream, eventstore.ErrSnapshotNotFound)
	}
	if err != nil {
		return snap, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	return snap, nil
}
