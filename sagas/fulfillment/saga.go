package fulfillment

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/jobs"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/wire"
)

// Name of the saga: its schema, checkpoint and progress subject.
const Name = "fulfillment"

// Saga is the fulfillment process manager: a projections.Projection over order, inventory and
// payment events, plus the loops that send its commands and fire its deadlines.
type Saga struct {
	Pool *pgxpool.Pool // confined to the saga's schema
	Opts Options
	Log  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now  func() time.Time
	wake chan struct{}

	// The commands of the batch Apply decided last (staged), handed to the dispatcher once the
	// projector says it committed (ready): sent at once, not read back from the outbox.
	mu            sync.Mutex
	staged, ready []Command
	// The ids of commands JetStream stored or a command service of this process carried out,
	// still in the outbox (sent, since sentAt): the dispatcher deletes them together after
	// SentFlush. Those handed to a command service of this process and not finished (handed), and
	// those it gave back to be queued on JetStream (back).
	sent   []string
	sentAt time.Time
	handed map[string]bool
	back   []jobs.Message
}

// New returns a saga over pool.
func New(pool *pgxpool.Pool, opts Options, log *slog.Logger) *Saga {
	return &Saga{Pool: pool, Opts: opts.withDefaults(), Log: log.With("saga", Name), wake: make(chan struct{}, 1), handed: map[string]bool{}}
}

func (s *Saga) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Name implements projections.Projection.
func (s *Saga) Name() string { return Name }

// Filter implements projections.Projection.
func (s *Saga) Filter() eventstore.Filter {
	return eventstore.Filter{EventTypePrefixes: []string{order.TypePrefix, "inventory.order_", payment.TypePrefix}}
}

// PartitionBy implements projections.Partitioned: an order's events (its placement, its stock,
// its payment) are one saga's, applied in log order by one worker.
func (s *Saga) PartitionBy() eventstore.PartitionKey { return eventstore.ByOrder }

// Migrate implements projections.Projection.
func (s *Saga) Migrate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
create table if not exists fulfillment (
  order_id text primary key,
  state jsonb not null,
  step text not null,
  outcome text not null default '',
  deadline timestamptz,
  updated_at timestamptz not null);
create index if not exists fulfillment_deadlines on fulfillment (deadline) where deadline is not null;
create index if not exists fulfillment_by_step on fulfillment (step, updated_at desc);
alter table fulfillment add column if not exists stuck boolean not null default false;
create index if not exists fulfillment_stuck on fulfillment (updated_at desc) where stuck;
create table if not exists fulfillment_outbox (
  id text primary key,
  endpoint text not null,
  payload jsonb not null,
  created_at timestamptz not null default clock_timestamp());
create index if not exists fulfillment_outbox_age on fulfillment_outbox (created_at, id);`)
	if err != nil {
		return err
	}
	// The finished sagas by outcome, kept by the transactions that finish them (queueOutcomes):
	// counted from the table once, when it is made on a database that has sagas already.
	var counted bool
	if err := tx.QueryRow(ctx, `select to_regclass('fulfillment_outcomes') is not null`).Scan(&counted); err != nil || counted {
		return err
	}
	_, err = tx.Exec(ctx, `
create table fulfillment_outcomes (
  part int not null,
  outcome text not null,
  sagas bigint not null,
  primary key (part, outcome));
insert into fulfillment_outcomes (part, outcome, sagas)
select 0, outcome, count(*) from fulfillment where outcome <> '' group by outcome;`)
	return err
}

func decode(r eventstore.RecordedEvent) (any, error) {
	switch {
	case strings.HasPrefix(r.Type, order.TypePrefix):
		return order.Codec.Decode(r.Type, r.Data)
	case strings.HasPrefix(r.Type, inventory.TypePrefix):
		return inventory.Codec.Decode(r.Type, r.Data)
	case strings.HasPrefix(r.Type, payment.TypePrefix):
		return payment.Codec.Decode(r.Type, r.Data)
	}
	return nil, fmt.Errorf("fulfillment: unexpected event type %q", r.Type)
}

// Queue implements projections.Pipelined: it loads the batch's sagas in one query, folds the
// events in memory and queues the writes of each changed saga and every command, once, for the
// projector's transaction.
func (s *Saga) Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, batch *pgx.Batch) error {
	rb, ids, err := s.decodeBatch(events)
	if err != nil {
		return err
	}
	if rb.states, err = load(ctx, tx, sagasOf, ids); err != nil {
		return err
	}
	return s.queueBatch(rb, batch)
}

// queueBatch folds a batch's events into its sagas (rb, read) and queues the writes.
func (s *Saga) queueBatch(rb *readBatch, batch *pgx.Batch) error {
	items, states := rb.items, rb.states
	was := outcomesOf(states)
	changed := map[string]bool{}
	var cmds []Command
	for _, it := range items {
		before := states[it.id]
		after, c := React(before, it.event, s.now(), s.Opts)
		if after == nil {
			s.Log.Debug("event of an order without a saga", "order_id", it.id, "event", fmt.Sprintf("%T", it.event))
			continue
		}
		if after != before {
			states[it.id], changed[it.id] = after, true
		}
		cmds = append(cmds, c...)
	}
	if err := save(batch, states, was, changed, cmds); err != nil {
		return err
	}
	s.mu.Lock()
	s.staged = cmds // the batch's, once committed (Committed); a batch applied again replaces them
	s.mu.Unlock()
	return nil
}

// readBatch is a batch of events as the saga reads it: each event of an order with the order's
// id, and the orders' sagas.
type readBatch struct {
	items  []item
	states map[string]*State
}

type item struct {
	event any
	id    string
}

// sagasOf reads the sagas of orders ($1), locked for the batch's transaction.
const sagasOf = `select state from fulfillment where order_id = any($1) for update`

// decodeBatch decodes events: each event of an order, with the order's id, and the ids.
func (s *Saga) decodeBatch(events []eventstore.RecordedEvent) (*readBatch, []string, error) {
	rb := &readBatch{items: make([]item, 0, len(events))}
	var ids []string
	for _, r := range events {
		e, err := decode(r)
		if err != nil {
			return nil, nil, fmt.Errorf("event %s at %s: %w", r.ID, r.Position, err)
		}
		if p, ok := e.(order.Placed); ok {
			e = Started{Placed: p, Flow: Flow{CorrelationID: r.Metadata.CorrelationID, Actor: r.Metadata.Actor, TraceParent: r.Metadata.TraceParent, TraceState: r.Metadata.TraceState}}
		}
		if id := orderOf(e); id != "" {
			rb.items = append(rb.items, item{e, id})
			ids = append(ids, id)
		}
	}
	return rb, ids, nil
}

// Read implements projections.Reader: the batch's sagas are read with the projector's batch lock,
// in its first round trip, and its writes queued from what was read.
func (s *Saga) Read(events []eventstore.RecordedEvent, b *pgx.Batch) (func(pgx.BatchResults) (func(*pgx.Batch) error, error), error) {
	rb, ids, err := s.decodeBatch(events)
	if err != nil {
		return nil, err
	}
	b.Queue(sagasOf, ids)
	return func(br pgx.BatchResults) (func(*pgx.Batch) error, error) {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		if rb.states, err = scanStates(rows); err != nil {
			return nil, err
		}
		return func(batch *pgx.Batch) error { return s.queueBatch(rb, batch) }, nil
	}, nil
}

// Apply implements projections.Projection: Queue's statements, sent.
func (s *Saga) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return projections.Send(ctx, tx, events, s.Queue)
}

// Committed tells the saga that the projector committed the batch Apply saw last: its commands
// go to the dispatcher, which sends them without reading the outbox back.
func (s *Saga) Committed() {
	s.mu.Lock()
	s.ready, s.staged = append(s.ready, s.staged...), nil
	s.mu.Unlock()
	s.Wake()
}

// Discard implements projections.Discarder: the batch Apply saw last did not commit (a worker that
// lost its partitions, a database error), so its commands are not sent.
func (s *Saga) Discard() {
	s.mu.Lock()
	s.staged = nil
	s.mu.Unlock()
}

func load(ctx context.Context, tx pgx.Tx, query string, args ...any) (map[string]*State, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("load sagas: %w", err)
	}
	return scanStates(rows)
}

// scanStates reads rows of sagas' states (and closes them), by order.
func scanStates(rows pgx.Rows) (map[string]*State, error) {
	defer rows.Close()
	out := map[string]*State{}
	for rows.Next() {
		var st State
		if err := rows.Scan(&st); err != nil {
			return nil, fmt.Errorf("load sagas: %w", err)
		}
		out[st.OrderID] = &st
	}
	return out, rows.Err()
}

// outcomesOf are the outcomes of states, by order.
func outcomesOf(states map[string]*State) map[string]Outcome {
	was := make(map[string]Outcome, len(states))
	for id, st := range states {
		was[id] = st.Outcome
	}
	return was
}

// save queues the writes of the changed sagas (whose outcomes were was), the counts of outcomes
// they change and the commands on batch, three statements whatever their number: a statement
// costs PostgreSQL more than a row.
func save(batch *pgx.Batch, states map[string]*State, was map[string]Outcome, changed map[string]bool, cmds []Command) error {
	if len(changed) > 0 {
		var ids, data, steps, outcomes []string
		var deadlines []*time.Time
		var stuck []bool
		var updated []time.Time
		for id := range changed {
			st := states[id]
			b, err := gojson.Marshal(st) // read back by pgx with goccy/go-json too (pgschema.FastJSON)
			if err != nil {
				return err
			}
			ids, data, steps, outcomes = append(ids, id), append(data, string(b)), append(steps, string(st.Step)), append(outcomes, string(st.Outcome))
			deadlines, stuck, updated = append(deadlines, st.Deadline), append(stuck, st.Stuck), append(updated, st.UpdatedAt)
		}
		batch.Queue(`insert into fulfillment (order_id, state, step, outcome, deadline, stuck, updated_at)
select * from unnest($1::text[], $2::jsonb[], $3::text[], $4::text[], $5::timestamptz[], $6::bool[], $7::timestamptz[])
on conflict (order_id) do update set state = excluded.state, step = excluded.step, outcome = excluded.outcome,
  deadline = excluded.deadline, stuck = excluded.stuck, updated_at = excluded.updated_at`, ids, data, steps, outcomes, deadlines, stuck, updated)
	}
	queueOutcomes(batch, states, was, changed) // after the sagas' rows, which both writers lock first
	if len(cmds) > 0 {
		ids, endpoints, payloads := make([]string, len(cmds)), make([]string, len(cmds)), make([]string, len(cmds))
		for i, c := range cmds {
			data, err := payload(c)
			if err != nil {
				return err
			}
			ids[i], endpoints[i], payloads[i] = c.ID, c.Endpoint, string(data)
		}
		batch.Queue(`insert into fulfillment_outbox (id, endpoint, payload)
select * from unnest($1::text[], $2::text[], $3::jsonb[]) on conflict (id) do nothing`, ids, endpoints, payloads)
	}
	return nil
}

// queueOutcomes queues on batch what the changed sagas add to and take from the counts of finished
// sagas by outcome (fulfillment_outcomes), so that counting them never reads every saga. Each
// order counts in the rows of its saga's partition (the projector's, by order), so that a worker
// writes only rows of the partitions it holds and never waits on another's (only the deadline
// ticker, which may finish any saga, can); the rows are written in one order, after the sagas'
// own, so that two transactions never wait on each other in a circle.
func queueOutcomes(batch *pgx.Batch, states map[string]*State, was map[string]Outcome, changed map[string]bool) {
	type row struct {
		part    int32
		outcome Outcome
	}
	deltas := map[row]int64{}
	for id := range changed {
		before, after := was[id], states[id].Outcome
		if before == after {
			continue
		}
		part := int32(eventstore.PartitionOf(id, projections.DefaultPartitions))
		if before != "" {
			deltas[row{part, before}]--
		}
		if after != "" {
			deltas[row{part, after}]++
		}
	}
	rows := slices.SortedFunc(maps.Keys(deltas), func(a, b row) int {
		return cmp.Or(cmp.Compare(a.part, b.part), cmp.Compare(a.outcome, b.outcome))
	})
	var parts []int32
	var outcomes []string
	var sagas []int64
	for _, r := range rows {
		if deltas[r] != 0 {
			parts, outcomes, sagas = append(parts, r.part), append(outcomes, string(r.outcome)), append(sagas, deltas[r])
		}
	}
	if len(parts) > 0 {
		batch.Queue(`insert into fulfillment_outcomes (part, outcome, sagas) select * from unnest($1::int[], $2::text[], $3::bigint[])
on conflict (part, outcome) do update set sagas = fulfillment_outcomes.sagas + excluded.sagas`, parts, outcomes, sagas)
	}
}

// Wake tells the dispatcher that the outbox may have new commands (after a committed batch).
func (s *Saga) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Dispatch sends the saga's commands until ctx ends: those of each committed batch at once
// (Committed, Deadlines), to a command service of this process that takes them now (jobs.Hand),
// else queued on JetStream; and, every OutboxPoll, what the outbox still holds past a second
// (left by a crash, or by a send that failed), oldest first, on JetStream. A command is deleted
// from the outbox only once it was carried out here or the server stored it; a crash in between
// sends it again, which the stream's duplicate window and the command's id make harmless. One
// that failed here is queued as a message of its own (resent).
func (s *Saga) Dispatch(ctx context.Context, js jetstream.JetStream, ns wire.Namespace) error {
	if err := jobs.Ensure(ctx, js, ns); err != nil {
		return err
	}
	tick := time.NewTicker(OutboxPoll)
	defer tick.Stop()
	flush := time.NewTimer(time.Hour)
	defer flush.Stop()
	defer func() { // what was sent, out of the outbox before the process goes
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.flushSent(fctx, true)
	}()
	poll := true // what a previous process left
	for {
		s.mu.Lock()
		ready := s.ready
		s.ready = nil
		back := s.back
		s.back = nil
		s.mu.Unlock()
		if len(back) > 0 { // not carried out here: queued, the stream's consumers redeliver
			if err := s.queue(ctx, js, ns, back); err != nil && ctx.Err() == nil {
				s.Log.Warn("dispatch saga commands", "err", err)
				poll = true
			}
		}
		if len(ready) > 0 {
			if err := s.send(ctx, js, ns, ready); err != nil && ctx.Err() == nil {
				s.Log.Warn("dispatch saga commands", "err", err)
				poll = true // the outbox keeps them: the poll sends them again
			}
		}
		if poll {
			n, err := s.dispatchOnce(ctx, js, ns)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("dispatch saga commands", "err", err)
			}
			poll = n > 0 && err == nil // maybe more
		}
		if poll {
			continue
		}
		if wait := s.flushSent(ctx, false); wait > 0 {
			flush.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick.C:
			poll = true
		case <-flush.C:
		}
	}
}

// OutboxPoll is how often the dispatcher looks for commands the outbox kept past a second.
const OutboxPoll = time.Second

// send hands cmds to the command services of this process that take them now (jobs.Hand), and
// queues the others on JetStream; each leaves the outbox once carried out or stored.
func (s *Saga) send(ctx context.Context, js jetstream.JetStream, ns wire.Namespace, cmds []Command) error {
	msgs := make([]jobs.Message, len(cmds))
	for i, c := range cmds {
		data, err := payload(c)
		if err != nil {
			return err
		}
		msgs[i] = jobs.Message{Endpoint: c.Endpoint, ID: c.ID, Data: data}
		if m, ok := commandMeta(c.Payload); ok { // the flow's trace and correlation continue in the queue
			msgs[i].TraceParent, msgs[i].TraceState, msgs[i].Correlation = m.TraceParent, m.TraceState, m.CorrelationID
		}
	}
	s.mu.Lock()
	for _, m := range msgs {
		s.handed[m.ID] = true // before Hand: a worker may finish it at once
	}
	s.mu.Unlock()
	handed := jobs.Hand(ctx, js.Conn(), ns, msgs, s.finished)
	rest := msgs[:0:0]
	s.mu.Lock()
	for i, m := range msgs {
		if !handed[i] {
			delete(s.handed, m.ID)
			rest = append(rest, m)
		}
	}
	s.mu.Unlock()
	return s.queue(ctx, js, ns, rest)
}

// finished is told by a command service of this process what became of a command handed to it:
// done, it leaves the outbox; not, it is queued on JetStream as a message of its own (see
// resent), to be redelivered.
func (s *Saga) finished(m jobs.Message, done bool) {
	s.mu.Lock()
	delete(s.handed, m.ID)
	if done {
		s.sentLocked(m.ID)
	} else {
		m.ID = resent(m.ID)
		s.back = append(s.back, m)
	}
	s.mu.Unlock()
	s.Wake()
}

// resent is the id of the message that queues command id again: one of its own, so that its
// delivery is not taken for the command's first (jobs.FirstDelivery).
func resent(id string) string { return id + "/resent" }

// commandID is the id of the command message id queues.
func commandID(id string) string { return strings.TrimSuffix(id, "/resent") }

// queue queues msgs on JetStream and marks those the server stored for deletion from the outbox.
func (s *Saga) queue(ctx context.Context, js jetstream.JetStream, ns wire.Namespace, msgs []jobs.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	n, err := jobs.PublishAll(ctx, js, ns, msgs)
	s.mu.Lock()
	for _, m := range msgs[:n] {
		s.sentLocked(commandID(m.ID))
	}
	s.mu.Unlock()
	return err
}

// sentLocked marks command id for deletion from the outbox (s.mu held).
func (s *Saga) sentLocked(id string) {
	if len(s.sent) == 0 {
		s.sentAt = time.Now()
	}
	s.sent = append(s.sent, id)
}

// SentFlush is how long the ids of sent commands wait to be deleted from the outbox together:
// well within the second after which the outbox's poll sends a command again. One delete for all
// the commands of SentFlush, not one per batch: a queue table's plan is a scan of what it has
// held since autovacuum last passed (pages of deleted rows), so what a delete costs is its count.
const SentFlush = 200 * time.Millisecond

// flushSent deletes from the outbox the commands sent, once the first of them is SentFlush old
// (at once, if force), and answers when to look again (0: nothing waits).
func (s *Saga) flushSent(ctx context.Context, force bool) time.Duration {
	s.mu.Lock()
	if len(s.sent) == 0 {
		s.mu.Unlock()
		return 0
	}
	if wait := SentFlush - time.Since(s.sentAt); wait > 0 && !force {
		s.mu.Unlock()
		return wait
	}
	ids := s.sent
	s.sent, s.sentAt = nil, time.Time{}
	s.mu.Unlock()
	if _, err := s.Pool.Exec(ctx, `delete from fulfillment_outbox where id = any($1)`, ids); err != nil && ctx.Err() == nil {
		s.Log.Warn("delete sent saga commands from the outbox", "err", err) // sent again by the poll: harmless
	}
	return 0
}

// commandMeta is the metadata a command's payload carries.
func commandMeta(payload any) (wire.CommandMeta, bool) {
	switch p := payload.(type) {
	case wire.ReserveStock:
		return p.Meta, true
	case wire.OrderStock:
		return p.Meta, true
	case wire.AuthorizePayment:
		return p.Meta, true
	case wire.IDCommand:
		return p.Meta, true
	case wire.CancelOrder:
		return p.Meta, true
	}
	return wire.CommandMeta{}, false
}

func (s *Saga) dispatchOnce(ctx context.Context, js jetstream.JetStream, ns wire.Namespace) (int, error) {
	sent := 0
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `select id, endpoint, payload from fulfillment_outbox where created_at < clock_timestamp() - interval '1 second'
 order by created_at, id limit 200 for update skip locked`)
		if err != nil {
			return err
		}
		type cmd struct {
			id, endpoint string
			payload      []byte
		}
		var cmds []cmd
		for rows.Next() {
			var c cmd
			if err := rows.Scan(&c.id, &c.endpoint, &c.payload); err != nil {
				rows.Close()
				return err
			}
			cmds = append(cmds, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// Not those a command service of this process is carrying out, nor those on their way out
		// of the outbox. The others go with the command's own message id, as it was first queued:
		// the stream drops one it holds already (several dispatchers poll the outbox, and a
		// command queued moments ago may not have left it yet). A crash while a command service
		// of the same process carried it out may so deliver it as a first delivery: its
		// handlers find what that attempt wrote (an append expecting no stream fails).
		s.mu.Lock()
		leaving := make(map[string]bool, len(s.sent))
		for _, id := range s.sent {
			leaving[id] = true
		}
		cmds = slices.DeleteFunc(cmds, func(c cmd) bool { return s.handed[c.id] || leaving[c.id] })
		s.mu.Unlock()
		msgs := make([]jobs.Message, len(cmds))
		for i, c := range cmds {
			msgs[i] = jobs.Message{Endpoint: c.endpoint, ID: c.id, Data: c.payload}
			var p struct{ Meta wire.CommandMeta }
			if json.Unmarshal(c.payload, &p) == nil { // the flow's trace and correlation continue in the queue
				msgs[i].TraceParent, msgs[i].TraceState, msgs[i].Correlation = p.Meta.TraceParent, p.Meta.TraceState, p.Meta.CorrelationID
			}
		}
		n, perr := jobs.PublishAll(ctx, js, ns, msgs) // the rest stay for the next round
		if perr != nil {
			s.Log.Warn("queue saga commands", "err", perr, "queued", n, "of", len(msgs))
		}
		done := make([]string, n)
		for i := range done {
			done[i] = cmds[i].id
		}
		sent = len(done)
		if len(done) == 0 {
			if len(cmds) > 0 {
				return errors.New("the jobs stream refused every command")
			}
			return nil
		}
		_, err = tx.Exec(ctx, `delete from fulfillment_outbox where id = any($1)`, done)
		return err
	})
	return sent, err
}

// Deadlines fires due deadlines until ctx ends: each due saga is claimed (FOR UPDATE SKIP
// LOCKED), reacts to DeadlinePassed (which ignores a deadline that no longer applies), and its new
// state and commands commit together.
func (s *Saga) Deadlines(ctx context.Context, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var fired []Command
		err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
			now := s.now()
			states, err := load(ctx, tx, `select state from fulfillment where deadline <= $1 order by deadline limit 100 for update skip locked`, now)
			if err != nil || len(states) == 0 {
				return err
			}
			was, changed := outcomesOf(states), map[string]bool{}
			var cmds []Command
			for id, st := range states {
				after, c := React(st, DeadlinePassed{At: now}, now, s.Opts)
				states[id] = after
				changed[id] = true // a deadline that no longer applies is cleared too
				if after == st {
					cp := *st
					cp.Deadline = nil
					states[id] = &cp
				}
				cmds = append(cmds, c...)
			}
			fired = cmds
			batch := &pgx.Batch{}
			if err := save(batch, states, was, changed, cmds); err != nil {
				return err
			}
			return tx.SendBatch(ctx, batch).Close()
		})
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("fire saga deadlines", "err", err)
		}
		if err == nil && len(fired) > 0 {
			s.mu.Lock()
			s.ready = append(s.ready, fired...)
			s.mu.Unlock()
			s.Wake()
		}
	}
}
