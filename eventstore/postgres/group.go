package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/eventstore"
)

// Group commit. Every append is a transaction of its own, and a commit is most of what a small
// append costs PostgreSQL (the WAL flush, the round trips, the transaction's bookkeeping). The
// command services of a process append to many streams at once: an order's, a product's, a
// payment's. So appends at an exact revision queue up, and whichever finds fewer than
// Options.AppendGroups statements running carries out the queue in one statement (appendMany):
// one transaction for the streams of every command decided meanwhile. Each stream keeps its own
// expected revision: the statement appends only the streams whose expectation holds, and a stream
// left out is answered on its own (a retry of an append already made, or *WrongVersionError), as
// if it had been alone. A group that fails as a whole (two writers raced on a stream between the
// check and the insert, a payload PostgreSQL refuses) is carried out again one stream at a time:
// nobody's answer depends on whom they were grouped with.
//
// A lone append runs at once, as it always did; grouping only happens while appends overlap, so
// it adds no wait to an idle store.

// appendGroup is the queue of appends waiting for a group statement.
type appendGroup struct {
	mu      sync.Mutex
	pending []*grouped
	running int // group statements in flight
}

// grouped is one append waiting in the queue, and then its answer.
type grouped struct {
	ctx    context.Context
	stream string
	rev    int64 // expected: -1 for no stream
	events []eventstore.EventData
	conds  []eventstore.Condition // checked in the statement (AppendIf)
	meta   []string
	done   chan groupAnswer
}

type groupAnswer struct {
	res eventstore.AppendResult
	err error
}

// maxGroupEvents bounds the events of one group statement.
const maxGroupEvents = 1000

// groupTimeout bounds a group statement: it runs for appenders that may have given up waiting.
const groupTimeout = 10 * time.Second

// appendGrouped appends events to stream at revision rev (-1: no stream) with whatever other
// appends are queued with it.
func (s *Store) appendGrouped(ctx context.Context, stream string, rev int64, events []eventstore.EventData, conds []eventstore.Condition) (eventstore.AppendResult, error) {
	g := &grouped{ctx: ctx, stream: stream, rev: rev, events: events, conds: conds, meta: make([]string, len(events)), done: make(chan groupAnswer, 1)}
	for i, e := range events {
		m, err := json.Marshal(e.Metadata)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: event %s metadata: %w", stream, e.ID, err)
		}
		g.meta[i] = string(m)
	}
	s.group.mu.Lock()
	s.group.pending = append(s.group.pending, g)
	lead := s.group.running < s.opts.AppendGroups
	if lead {
		s.group.running++
	}
	s.group.mu.Unlock()
	if lead {
		s.carryOut(g)
	}
	select {
	case a := <-g.done:
		return a.res, a.err
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err() // it may still be appended: a retry with its ids is safe
	}
}

// carryOut runs group statements until the queue is empty, then stops being a leader. A leader
// with an append of its own (own) hands the queue to a goroutine of its own once that append
// is answered: its caller does not wait for the appends that queued after it.
func (s *Store) carryOut(own *grouped) {
	for {
		s.group.mu.Lock()
		batch := s.takeGroup()
		if len(batch) == 0 {
			s.group.running--
			s.group.mu.Unlock()
			return
		}
		s.group.mu.Unlock()
		s.appendBatch(batch)
		if own != nil && slices.Contains(batch, own) {
			go s.carryOut(nil)
			return
		}
	}
}

// takeGroup takes the next group off the queue (s.group.mu held): appends of distinct streams, in
// the order they came, up to maxGroupEvents events (at least one append). A stream queued twice
// waits for the next group: its second append is expected after its first.
func (s *Store) takeGroup() []*grouped {
	q := s.group.pending
	var batch []*grouped
	streams := map[string]bool{}
	events := 0
	rest := q[:0]
	for _, g := range q {
		switch {
		case g.ctx.Err() != nil:
			g.done <- groupAnswer{err: g.ctx.Err()} // its caller is gone: not appended
		case streams[g.stream] || (len(batch) > 0 && events+len(g.events) > maxGroupEvents):
			rest = append(rest, g)
		default:
			streams[g.stream] = true
			events += len(g.events)
			batch = append(batch, g)
		}
	}
	clear(q[len(rest):])
	s.group.pending = rest
	return batch
}

// appendBatch appends a group and answers each of its appends.
func (s *Store) appendBatch(batch []*grouped) {
	if len(batch) == 1 { // alone, within its caller's deadline
		g := batch[0]
		res, err := s.appendAlone(g.ctx, g)
		if err == nil {
			s.refuseOvertaken(g, res)
		}
		g.done <- groupAnswer{res, err}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	results, err := s.appendMany(ctx, batch)
	for _, g := range batch {
		var a groupAnswer
		switch res, ok := results[g.stream]; {
		case err != nil: // nothing was appended: each on its own
			a.res, a.err = s.appendAlone(g.ctx, g)
		case ok:
			s.wake.NotifyAppend(g.stream, g.events)
			s.refuseOvertaken(g, res)
			a.res = res
		default: // its expectation or a condition did not hold: a retry, or a conflict
			a.res, a.err = s.refused(g.ctx, g)
		}
		g.done <- a
	}
}

// refused answers an append the group statement left out: a retry of an append made before, a
// stream moved (*WrongVersionError), or a condition that no longer holds (*ConditionError).
func (s *Store) refused(ctx context.Context, g *grouped) (eventstore.AppendResult, error) {
	res, err := s.translate(ctx, g.stream, eventstore.Exact(g.rev), g.events, errExpectation)
	if len(g.conds) == 0 || !errors.Is(err, eventstore.ErrWrongVersion) {
		return res, err
	}
	var wrong *eventstore.WrongVersionError
	if errors.As(err, &wrong) && wrong.Actual != g.rev {
		return res, err
	}
	// The stream was where the append expected it: a condition failed.
	if err := eventstore.CheckConditions(ctx, s, g.conds); err != nil {
		return eventstore.AppendResult{}, err
	}
	return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w (moved while the statement ran)", g.stream, eventstore.ErrConditionFailed)
}

// refuseOvertaken answers the queued appends that expected the same revision of g's stream as
// g, which has just been appended, with other events: they lost the race to g, and learn it now
// rather than each in a group of its own after it (writers of a hot stream would otherwise learn
// it ever later, and decide again on ever staler states). An append that shares an event id with
// g may be its retry: it goes its usual way.
func (s *Store) refuseOvertaken(g *grouped, res eventstore.AppendResult) {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	q := s.group.pending
	rest := q[:0]
	for _, p := range q {
		if p.stream == g.stream && p.rev == g.rev && !sharesID(p.events, g.events) {
			p.done <- groupAnswer{err: &eventstore.WrongVersionError{Stream: p.stream, Expected: eventstore.Exact(p.rev), Actual: res.NextRevision}}
			continue
		}
		rest = append(rest, p)
	}
	clear(q[len(rest):])
	s.group.pending = rest
}

func sharesID(a, b []eventstore.EventData) bool {
	for _, x := range a {
		for _, y := range b {
			if x.ID == y.ID {
				return true
			}
		}
	}
	return false
}

// appendAlone appends one queued append in a statement of its own.
func (s *Store) appendAlone(ctx context.Context, g *grouped) (eventstore.AppendResult, error) {
	if len(g.conds) > 0 { // only the group statement checks conditions: a group of one
		results, err := s.appendMany(ctx, []*grouped{g})
		if err != nil { // a writer of the stream raced it (a unique violation), or a fault
			return s.translate(ctx, g.stream, eventstore.Exact(g.rev), g.events, s.insertError(g.stream, err))
		}
		res, ok := results[g.stream]
		if !ok {
			return s.refused(ctx, g)
		}
		s.wake.NotifyAppend(g.stream, g.events)
		return res, nil
	}
	query, args := s.exactArgs(g.stream, g.rev, g.events, g.meta)
	res, err := s.appendOnce(ctx, s.pool, g.stream, query, args)
	if err != nil {
		return s.translate(ctx, g.stream, eventstore.Exact(g.rev), g.events, err)
	}
	s.wake.NotifyAppend(g.stream, g.events)
	return res, nil
}

// appendMany appends a group's streams in one statement, returning the result of each stream
// appended; a stream it leaves out failed its expectation. An error means nothing was appended.
func (s *Store) appendMany(ctx context.Context, batch []*grouped) (map[string]eventstore.AppendResult, error) {
	streams := make([]string, len(batch))
	revs := make([]int64, len(batch))
	var (
		evStream, types, data, meta  []string
		ids                          []pgtype.UUID
		ords                         []int64
		condOf, condStream, condType = []string{}, []string{}, []string{}
		condRev                      = []int64{}
	)
	for i, g := range batch {
		streams[i], revs[i] = g.stream, g.rev
		for _, c := range g.conds {
			types := c.Types
			if len(types) == 0 {
				types = []string{""} // any
			}
			for _, typ := range types {
				condOf, condStream, condRev, condType = append(condOf, g.stream), append(condStream, c.Stream), append(condRev, c.Revision), append(condType, typ)
			}
		}
		for k, e := range g.events {
			evStream = append(evStream, g.stream)
			ords = append(ords, int64(k+1))
			ids = append(ids, pgUUID(e.ID))
			types = append(types, e.Type)
			data = append(data, string(e.Data))
			meta = append(meta, g.meta[k])
		}
	}
	rows, err := queryGeneric(ctx, s.pool, s.sql.generic, s.sql.appendMany, streams, revs, evStream, ords, ids, types, data, meta, condOf, condStream, condRev, condType)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	results := make(map[string]eventstore.AppendResult, len(batch))
	for rows.Next() {
		var (
			stream, txID string
			gp, rev      int64
		)
		if err := rows.Scan(&stream, &txID, &gp, &rev); err != nil {
			return nil, err
		}
		commit, err := strconv.ParseUint(txID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("transaction id %q: %w", txID, err)
		}
		if pos := (eventstore.Position{Commit: commit, Prepare: uint64(gp)}); pos.Compare(results[stream].Position) > 0 {
			results[stream] = eventstore.AppendResult{NextRevision: rev, Position: pos}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return results, nil
}
