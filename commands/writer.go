package commands

import (
	"cmp"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/telemetry"
)

// Writer is the port a command service writes through (it is given one; nothing else appends to
// its aggregates' streams): one writer per stream and a cache of decided state, so that a command costs the same on a stream of 10 events or 100,000 and
// concurrent commands on one hot stream do not race each other into retries.
//
//   - State cache. For each stream it has written, the Writer keeps the folded state, its revision
//     and the ids of the commands the stream holds (for idempotency), in an LRU bounded by the
//     number of commands held (WriterOptions.MaxCommands). A command on a cached stream reads
//     nothing; a cold stream is read once, whole.
//
//   - One writer per stream, group commit. Commands for one stream queue up; whichever caller
//     finds no writer at work becomes it and carries out the queue in batches: each command is
//     decided against the state its predecessors in the batch left, and the batch's events are
//     appended at once with one expected revision. Each command keeps its own answer: a refused
//     one gets its error and takes no part in the append; a repeated command id gets the position
//     of its first execution.
//
//   - Other writers. Another process (an instance of the same service) may append to the stream:
//     the append then fails on its expected revision, and the Writer loads the stream again (its
//     latest snapshot and the events after it) and decides the batch again (at most MaxAttempts
//     times). It never reuses a state after a failed append: an aggregate's Evolve may update a
//     state in place.
//     Which instance writes a stream is the service's to route (the inventory service's Router
//     sends a product's commands to the one instance that owns it); correctness never depends on
//     it.
//
//   - Snapshots. For an aggregate with a SnapshotVersion, on a store that keeps snapshots, the
//     Writer saves the state (with the ids of the stream's last SnapshotCommands commands) after
//     SnapshotEvery events, and a cold load reads the latest snapshot of that version and the
//     events after it. A command repeated with its id is recognised while its stream is cached,
//     and after a cold load if it is among the snapshot's recent commands or after them.
//
// Execute, Answer, Read and the Decider's methods carry out commands through it; Claim claims
// unique values. It offers no Append: an append that bypassed it would leave its cache stale
// until the next conflict. A Writer is safe for concurrent use.
type Writer struct {
	store eventstore.Store
	opts  WriterOptions

	mu      sync.Mutex
	streams map[string]*list.Element // of *cached
	lru     *list.List               // front: most recently used
	held    int                      // commands held by all cached streams
}

// WriterOptions configure a Writer.
type WriterOptions struct {
	// MaxCommands bounds the cache: the command ids (one per command a cached stream holds) of
	// every cached stream together. Least recently used streams are forgotten past it.
	// Default DefaultMaxCommands.
	MaxCommands int
	// MaxBatch bounds the commands decided and appended together. Default 256.
	MaxBatch int
	// Timeout bounds each store call a batch makes. Default 10s.
	Timeout time.Duration
	// SnapshotEvery is how many events a stream takes between two snapshots of its state (for
	// aggregates that have a SnapshotVersion). Default 1,000.
	SnapshotEvery int64
	// SnapshotCommands is how many of a stream's latest command ids a snapshot keeps, so that a
	// repeated command is recognised after a cold load. Default 1,000.
	SnapshotCommands int
	// PeekFresh bounds how old a state a peek (Look, not proven) is answered from: past it, the
	// stream's new events are read first. The answer is then at most that far behind, so that what
	// a condition on it looks through (the stream's events after its revision) stays bounded on
	// an instance that does not write the stream itself. Default 10 s.
	PeekFresh time.Duration
	// Now is the Writer's clock, for how old a state is (PeekFresh); default time.Now.
	Now func() time.Time
}

// DefaultMaxCommands is WriterOptions.MaxCommands by default: some 230 MB of heap (an order placed
// and confirmed holds two, about 460 bytes each with its stream's state: BenchmarkWriterCacheMemory).
const DefaultMaxCommands = 500_000

// NewWriter returns a Writer over store.
func NewWriter(store eventstore.Store, opts WriterOptions) *Writer {
	if opts.MaxCommands <= 0 {
		opts.MaxCommands = DefaultMaxCommands
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.SnapshotEvery <= 0 {
		opts.SnapshotEvery = 1000
	}
	if opts.SnapshotCommands <= 0 {
		opts.SnapshotCommands = 1000
	}
	if opts.PeekFresh <= 0 {
		opts.PeekFresh = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Writer{store: store, opts: opts, streams: map[string]*list.Element{}, lru: list.New()}
}

// cached is one stream's entry. Its fields after mu are the current writer's alone.
type cached struct {
	name string

	mu      sync.Mutex
	pending []*request
	writing bool
	evicted bool // no longer the stream's entry: callers take a new one

	loaded   bool // state, revision and done are the stream's up to revision
	state    any
	revision int64
	last     eventstore.Position
	done     map[string]Result // by command id: where its last event landed
	order    []string          // the latest command ids, oldest first (at most 2 × SnapshotCommands)
	snapped  int64             // revision of the latest snapshot saved or loaded; -1: none
	proven   time.Time         // when state was last proven the stream's (read to its head, or appended)
}

// remember records that command id's last event landed at res.
func (w *Writer) remember(c *cached, id string, res Result) (added bool) {
	_, had := c.done[id]
	c.done[id] = res
	if !had {
		c.order = append(c.order, id)
		if len(c.order) > 2*w.opts.SnapshotCommands {
			c.order = append(c.order[:0], c.order[len(c.order)-w.opts.SnapshotCommands:]...)
		}
	}
	return !had
}

// request is one command waiting for its stream's writer.
type request struct {
	ctx  context.Context
	meta Meta
	// fold folds recorded events into a state (nil: the zero state).
	fold func(state any, recorded []eventstore.RecordedEvent) (any, error)
	// decide returns the state after the command and its events, or why it cannot be carried out.
	decide func(state any) (any, []eventstore.EventData, error)
	// snapshot is the aggregate's snapshot version ("": none) and how its state reads and writes.
	snapshot  string
	marshal   func(state any) ([]byte, error)
	unmarshal func([]byte) (any, error)
	answer    chan outcome
	run
}

// run is how a request is carried out, beyond deciding it.
type run struct {
	// creates: the command creates its stream (Decider.Creates): decided on the empty state of a
	// stream not loaded, without reading it.
	creates bool
	// peek: a read that takes the cached state as it is (Decider.Look), not proven current.
	peek bool
	// conds: what the command was decided on of other streams; its append holds only while they
	// do (eventstore.AppendIf).
	conds []eventstore.Condition
}

type outcome struct {
	res Result
	err error
}

// appendSpan is the span of one group append: a child of the first command it carries, linked to
// the others.
func appendSpan(ctx context.Context, stream string, batch []*request, carried []int, events int) (context.Context, trace.Span) {
	var links []trace.Link
	for _, i := range carried[min(1, len(carried)):] {
		links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(batch[i].ctx)})
	}
	if len(carried) > 0 { // the first command's trace, and its target's service
		first := batch[carried[0]].ctx
		ctx = telemetry.WithTarget(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(first)), telemetry.TargetOf(first))
	}
	return telemetry.Tracer().Start(ctx, "append "+streamKind(stream), trace.WithLinks(links...), trace.WithAttributes(
		attribute.String("orderflow.stream", stream), attribute.Int("orderflow.commands", len(carried)), attribute.Int("orderflow.events", events)))
}

// streamKind is a stream's category ("order" of "order-o-1"): span names stay few.
func streamKind(stream string) string {
	kind, _, _ := strings.Cut(stream, "-")
	return kind
}

// executeOn carries out one command through w's writer of stream.
func executeOn[S, E any](ctx context.Context, w *Writer, agg Aggregate[S, E], stream string, meta Meta, decide func(S) ([]E, error), how run) (_ Result, err error) {
	ctx, span := telemetry.Tracer().Start(ctx, "command "+streamKind(stream), trace.WithAttributes(
		attribute.String("orderflow.stream", stream), attribute.String("orderflow.command_id", meta.CommandID)))
	defer func() { telemetry.End(span, err) }()
	ctx = telemetry.WithCorrelation(ctx, meta.CorrelationID)
	req := &request{ctx: ctx, meta: meta, answer: make(chan outcome, 1), snapshot: agg.SnapshotVersion, run: how,
		marshal: func(state any) ([]byte, error) { s, _ := state.(S); return json.Marshal(s) },
		unmarshal: func(data []byte) (any, error) {
			var s S
			err := json.Unmarshal(data, &s)
			return s, err
		},
		fold: func(state any, recorded []eventstore.RecordedEvent) (any, error) {
			s, _ := state.(S)
			for _, r := range recorded {
				e, err := agg.Decode(r.Type, r.Data)
				if err != nil {
					return nil, fmt.Errorf("load %s at revision %d: %w", stream, r.Revision, err)
				}
				s = agg.Evolve(s, e)
			}
			return s, nil
		},
		decide: func(state any) (any, []eventstore.EventData, error) {
			s, _ := state.(S)
			events, err := decide(s)
			if err != nil || len(events) == 0 {
				return state, nil, err
			}
			data, err := encode(ctx, agg, events, meta)
			if err != nil {
				return nil, nil, fmt.Errorf("encode events for %s: %w", stream, err)
			}
			for _, e := range events {
				s = agg.Evolve(s, e)
			}
			return s, data, nil
		},
	}
	c := w.entry(stream)
	c.mu.Lock()
	for c.evicted { // forgotten between entry and here: take the stream's entry now
		c.mu.Unlock()
		c = w.entry(stream)
		c.mu.Lock()
	}
	c.pending = append(c.pending, req)
	lead := !c.writing
	c.writing = true
	c.mu.Unlock()
	if lead {
		w.drain(c)
	}
	select {
	case o := <-req.answer:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, ctx.Err() // it may still be carried out: a retry with its id is safe
	}
}

// Cached is what the cache holds now: the streams, and the command ids they hold (bounded by
// WriterOptions.MaxCommands).
func (w *Writer) Cached() (streams, commands int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.streams), w.held
}

// entry returns stream's cache entry, the most recently used from now on.
func (w *Writer) entry(stream string) *cached {
	w.mu.Lock()
	defer w.mu.Unlock()
	if el, ok := w.streams[stream]; ok {
		w.lru.MoveToFront(el)
		return el.Value.(*cached)
	}
	c := &cached{name: stream, revision: eventstore.NoRevision, done: map[string]Result{}, snapped: -1}
	w.streams[stream] = w.lru.PushFront(c)
	return c
}

// account records that c now holds n more command ids, and forgets least recently used streams
// (not c, and none being written) while the cache holds more than MaxCommands.
func (w *Writer) account(c *cached, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held += n
	for el := w.lru.Back(); el != nil && w.held > w.opts.MaxCommands; {
		prev := el.Prev()
		old := el.Value.(*cached)
		if old != c && old.mu.TryLock() {
			if !old.writing && len(old.pending) == 0 {
				w.held -= len(old.done)
				old.evicted = true
				delete(w.streams, old.name)
				w.lru.Remove(el)
			}
			old.mu.Unlock()
		}
		el = prev
	}
}

// drain carries out c's queue in batches until it is empty, then gives up being its writer.
func (w *Writer) drain(c *cached) {
	for {
		c.mu.Lock()
		n := min(len(c.pending), w.opts.MaxBatch)
		if n == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch := c.pending[:n:n]
		c.pending = c.pending[n:]
		c.mu.Unlock()
		w.process(c, batch)
		// The queue's array outlives the batch (the stream's next commands may be appended to
		// it): it must not keep the commands carried out, their contexts and closures, for as
		// long as the stream is cached.
		clear(batch)
	}
}

// process decides and appends one batch, answering every request in it.
//
// A refusal, or a command with nothing to do, appends nothing, so no expected revision checks the
// state it was decided on; and that state may be old: another instance may have written the
// stream since this one cached it (the inventory instance that owns a product's reservations
// never sees the restocks another instance carried out). So refusals wait for proof that their
// state was the stream's: the batch's append succeeding (its expected revision), or, when the
// batch appends nothing, a read of the events after the cached revision finding none. When it
// finds some, they are folded in and the batch is decided again.
func (w *Writer) process(c *cached, batch []*request) {
	b := &answers{batch: batch, answered: make([]bool, len(batch))}
	for i, r := range batch {
		if r.meta.CommandID == "" {
			b.answer(i, Result{}, domain.Rule("commandId", "is required"))
		} else if r.ctx.Err() != nil {
			b.answer(i, Result{}, r.ctx.Err()) // its caller is gone: not carried out
		}
	}
	for attempt := 1; ; attempt++ {
		fresh := !c.loaded // a load reads the stream to its head: what it decides on is current
		switch {
		case !c.loaded && attempt == 1 && creatingAll(batch, b.answered):
			// A stream its commands create is not read: if it exists after all (a retry, an id
			// taken), the append expecting no stream fails and the next attempt loads it. Nothing
			// proves the empty state current, so a refusal still reads what the stream holds.
			c.loaded, c.state, fresh = true, nil, false
		case !c.loaded:
			if _, err := w.catchUp(c, batch[0]); err != nil {
				b.all(err)
				return
			}
		}
		d := b.decide(c)
		if len(d.events) == 0 { // nothing to write: the state already is what they want, or they are refused
			if !fresh && !(peeksOnly(batch, b.answered) && w.opts.Now().Sub(c.proven) < w.opts.PeekFresh) {
				// Nothing was decided into c.state (no command produced an event): it can take
				// the events another writer appended as it is.
				moved, err := w.catchUp(c, batch[0])
				switch {
				case err != nil:
					b.all(err)
					return
				case moved && attempt < MaxAttempts:
					continue
				case moved:
					b.all(fmt.Errorf("%s after %d attempts: %w", c.name, attempt, ErrTooBusy))
					return
				}
			}
			d.answerRefused(b)
			for _, p := range d.plan {
				b.answer(p.i, Result{Position: c.last, Revision: c.revision}, nil)
			}
			return
		}
		res, err := w.appendDecided(c, batch, d)
		switch {
		case err == nil:
			w.appended(c, b, d, res)
			return
		case errors.Is(err, eventstore.ErrWrongVersion) && attempt < MaxAttempts:
			w.forget(c) // another process wrote: load again (its snapshot and the events after), decide again
		case errors.Is(err, eventstore.ErrWrongVersion):
			w.forget(c)
			b.all(fmt.Errorf("%s after %d attempts: %w", c.name, attempt, ErrTooBusy))
			return
		case errors.Is(err, eventstore.ErrConditionFailed):
			b.all(err) // nothing appended, the stream where it was: its cache holds
			return
		default:
			w.forget(c) // the append may have landed: load again before deciding again
			b.all(fmt.Errorf("append to %s: %w", c.name, err))
			return
		}
	}
}

// answers are a batch's requests and which of them have been answered.
type answers struct {
	batch    []*request
	answered []bool
}

// answer answers request i, unless it has been answered.
func (b *answers) answer(i int, res Result, err error) {
	if !b.answered[i] {
		b.answered[i] = true
		b.batch[i].answer <- outcome{res, err}
	}
}

// all answers every request not answered yet with err.
func (b *answers) all(err error) {
	for i := range b.batch {
		b.answer(i, Result{}, err)
	}
}

// decided is what a batch's commands decided on a stream's cached state: the events to append,
// the state after them, the requests carried out and those refused.
type decided struct {
	state   any
	events  []eventstore.EventData
	plan    []planned
	refused map[int]error // answered once the state they were decided on is proven current
}

type planned struct {
	i, last int // request, index of its last event in events (-1: none)
}

// decide decides the batch's requests not answered yet, in turn, on c's state: a command carried
// out before answers its first answer; one repeated in the batch rides on its first.
func (b *answers) decide(c *cached) decided {
	d := decided{state: c.state, refused: map[int]error{}}
	inBatch := map[string]int{} // command id → its plan
	for i, r := range b.batch {
		if b.answered[i] {
			continue
		}
		if res, ok := c.done[r.meta.CommandID]; ok {
			b.answer(i, res, nil) // carried out before: its first answer
			continue
		}
		if j, ok := inBatch[r.meta.CommandID]; ok {
			d.plan = append(d.plan, planned{i, d.plan[j].last})
			continue
		}
		next, evs, err := r.decide(d.state)
		if err != nil {
			d.refused[i] = err
			continue
		}
		d.state = next
		last := -1 // a command with nothing to do appends nothing and is not remembered
		if len(evs) > 0 {
			d.events = append(d.events, evs...)
			last = len(d.events) - 1
		}
		inBatch[r.meta.CommandID] = len(d.plan)
		d.plan = append(d.plan, planned{i, last})
	}
	return d
}

// answerRefused answers the refused requests: the state they were decided on is proven current.
func (d decided) answerRefused(b *answers) {
	for i, err := range d.refused {
		b.answer(i, Result{}, err)
	}
}

// appendDecided appends d's events to c's stream, expecting its cached revision.
func (w *Writer) appendDecided(c *cached, batch []*request, d decided) (eventstore.AppendResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	defer cancel()
	carried := make([]int, len(d.plan))
	for k, p := range d.plan {
		carried[k] = p.i
	}
	var conds []eventstore.Condition
	for _, p := range d.plan {
		conds = append(conds, batch[p.i].conds...)
	}
	ctx, span := appendSpan(ctx, c.name, batch, carried, len(d.events))
	res, err := eventstore.AppendIf(ctx, w.store, c.name, eventstore.Exact(c.revision), d.events, conds)
	telemetry.End(span, err)
	return res, err
}

// appended caches the state after d's append (res) and answers the batch.
func (w *Writer) appended(c *cached, b *answers, d decided, res eventstore.AppendResult) {
	first := c.revision + 1
	c.state, c.revision, c.last, c.proven = d.state, res.NextRevision, res.Position, w.opts.Now()
	added := 0
	for _, p := range d.plan {
		// Every command of the batch answers the batch's position: at or past its own events,
		// which is what reading one's own writes needs.
		r := Result{Position: res.Position, Revision: first + int64(p.last)}
		if p.last < 0 {
			r.Revision = c.revision
		}
		if p.last >= 0 && w.remember(c, b.batch[p.i].meta.CommandID, r) {
			added++
		}
		b.answer(p.i, r, nil)
	}
	d.answerRefused(b) // decided on the state the append proved current
	w.account(c, added)
	w.snapshot(c, b.batch[0])
}

// peeksOnly reports whether every request of batch still to answer is a peek (Decider.Look).
func peeksOnly(batch []*request, answered []bool) bool {
	for i, r := range batch {
		if !answered[i] && !r.peek {
			return false
		}
	}
	return true
}

// creatingAll reports whether every command of batch still to answer creates its stream.
func creatingAll(batch []*request, answered []bool) bool {
	for i, r := range batch {
		if !answered[i] && !r.creates {
			return false
		}
	}
	return true
}

// forget drops what c holds of its stream after an append that failed: the decisions of the batch
// evolved c's state (Evolve may update a state in place), so it is read again, from the latest
// snapshot and the events after it.
func (w *Writer) forget(c *cached) {
	w.account(c, -len(c.done))
	c.loaded, c.state, c.revision, c.last, c.snapped = false, nil, eventstore.NoRevision, eventstore.Position{}, -1
	c.done, c.order = map[string]Result{}, nil
}

// catchUp brings c to its stream's head: a stream not loaded starts from its latest snapshot (if
// any); then the events after c's revision are folded into its state. It reports whether it read
// any event.
func (w *Writer) catchUp(c *cached, r *request) (moved bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	defer cancel()
	if !c.loaded {
		if err := w.fromSnapshot(ctx, c, r); err != nil {
			return false, err
		}
	}
	recorded, err := w.store.ReadStream(ctx, c.name, eventstore.ReadStreamOptions{From: c.revision + 1})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		return false, fmt.Errorf("load %s: %w", c.name, err)
	}
	state, err := r.fold(c.state, recorded)
	if err != nil {
		return false, err
	}
	added := 0
	for _, e := range recorded {
		id := e.Metadata.CausationID
		if id == "" {
			continue
		}
		if w.remember(c, id, Result{Position: e.Position, Revision: e.Revision}) { // the last event of the command wins
			added++
		}
	}
	if len(recorded) > 0 {
		last := recorded[len(recorded)-1]
		c.revision, c.last = last.Revision, last.Position
	}
	c.state, c.loaded, c.proven = state, true, w.opts.Now()
	w.account(c, added)
	return len(recorded) > 0, nil
}

// snapshotData is what a snapshot holds: the state, where the stream ended, and its latest
// commands with their answers.
type snapshotData struct {
	State  json.RawMessage     `json:"state"`
	Last   eventstore.Position `json:"last"`
	Recent map[string]Result   `json:"recent"`
}

// fromSnapshot starts c from the stream's latest snapshot of r's aggregate version, if any.
func (w *Writer) fromSnapshot(ctx context.Context, c *cached, r *request) error {
	snaps, ok := w.store.(eventstore.Snapshots)
	if r.snapshot == "" || !ok {
		return nil
	}
	snap, err := snaps.LoadSnapshot(ctx, c.name)
	if errors.Is(err, eventstore.ErrSnapshotNotFound) || (err == nil && snap.Version != r.snapshot) {
		return nil // none, or of another fold: read the stream whole
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", c.name, err)
	}
	var data snapshotData
	if err := json.Unmarshal(snap.Data, &data); err != nil {
		return nil // unreadable: a cache, read the stream whole
	}
	state, err := r.unmarshal(data.State)
	if err != nil {
		return nil
	}
	c.state, c.revision, c.last, c.snapped = state, snap.Revision, data.Last, snap.Revision
	ids := slices.SortedFunc(maps.Keys(data.Recent), func(a, b string) int { return cmp.Compare(data.Recent[a].Revision, data.Recent[b].Revision) })
	for _, id := range ids {
		w.remember(c, id, data.Recent[id])
	}
	w.account(c, len(ids))
	return nil
}

// snapshot saves c's state when SnapshotEvery events have passed since the last one. A snapshot
// that cannot be saved is skipped: the next load reads a few more events.
func (w *Writer) snapshot(c *cached, r *request) {
	if r.snapshot == "" || c.revision-c.snapped < w.opts.SnapshotEvery {
		return
	}
	snaps, ok := w.store.(eventstore.Snapshots)
	if !ok {
		return
	}
	state, err := r.marshal(c.state)
	if err != nil {
		return
	}
	ids := c.order[max(0, len(c.order)-w.opts.SnapshotCommands):]
	recent := make(map[string]Result, len(ids))
	for _, id := range ids {
		recent[id] = c.done[id]
	}
	data, err := json.Marshal(snapshotData{State: state, Last: c.last, Recent: recent})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	defer cancel()
	if snaps.SaveSnapshot(ctx, c.name, eventstore.Snapshot{Revision: c.revision, Version: r.snapshot, Data: data}) == nil {
		c.snapped = c.revision
	}
}
