package projections_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/esdb"
	"github.com/orderflow/orderflow/eventstore/esdb/esdbtest"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(workerEnv); url != "" {
		runWorker(url)
		return
	}
	pgtest.Main(m)
}

// tally counts events per stream in the table of its name ("tally" unless named), of the streams
// whose names start with prefix ("t-" unless set): each event adds weight (1 unless set), so that
// versions of a read model that weigh differently tell which one answered. It fails on an event
// whose data is {"fail": true} while failing is set, and sleeps slow per batch, to stretch a
// rebuild. It is Pipelined: its writes go with the projector's commit (the line projection of the
// rebuild tests is not, and commits in a transaction of its own).
type tally struct {
	name, prefix string
	weight       int
	slow         time.Duration
	failing      atomic.Bool
	indexed      bool   // its Migrate also makes an index on the table, as a read model's does
	queued       func() // called as each batch's writes are queued, in the commit (nil: none)
}

func (tl *tally) Name() string { return cmp.Or(tl.name, "tally") }
func (tl *tally) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{cmp.Or(tl.prefix, "t-")}}
}
func (tl *tally) Migrate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `create table if not exists `+tl.Name()+` (stream text primary key, n int not null)`)
	if err == nil && tl.indexed {
		_, err = tx.Exec(ctx, `create index if not exists `+tl.Name()+`_by_n on `+tl.Name()+` (n)`)
	}
	return err
}
func (tl *tally) Queue(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent, b *pgx.Batch) error {
	time.Sleep(tl.slow)
	if tl.queued != nil {
		tl.queued()
	}
	add := `insert into ` + tl.Name() + ` values ($1, $2) on conflict (stream) do update set n = ` + tl.Name() + `.n + $2`
	for _, e := range events {
		var d struct{ Fail bool }
		_ = json.Unmarshal(e.Data, &d)
		if d.Fail && tl.failing.Load() {
			return errors.New("handler refuses this event")
		}
		b.Queue(add, e.Stream, cmp.Or(tl.weight, 1))
	}
	return nil
}
func (tl *tally) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return projections.Send(ctx, tx, events, tl.Queue)
}

// writeOnly is a tally whose batches the projector sends in one round trip (projections.WriteOnly):
// its Queue reads nothing.
type writeOnly struct{ *tally }

func (writeOnly) WritesOnly() {}

// inTx is a tally that is not Pipelined: the projector commits its batches in a transaction it
// begins, and its Apply writes in it.
type inTx struct{ t *tally }

func (p inTx) Name() string                                 { return p.t.Name() }
func (p inTx) Filter() eventstore.Filter                    { return p.t.Filter() }
func (p inTx) Migrate(ctx context.Context, tx pgx.Tx) error { return p.t.Migrate(ctx, tx) }
func (p inTx) Apply(ctx context.Context, tx pgx.Tx, events []eventstore.RecordedEvent) error {
	return p.t.Apply(ctx, tx, events)
}

func setup(t *testing.T) (*pgxpool.Pool, *memory.Store) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool, err := pgschema.Open(t.Context(), url, "rm", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, memory.New()
}

func appendN(t *testing.T, s eventstore.Store, stream string, n int, data string) eventstore.Position {
	t.Helper()
	var pos eventstore.Position
	for i := range n {
		res, err := s.Append(t.Context(), stream, eventstore.Any(), []eventstore.EventData{{ID: eventstore.DeriveID(fmt.Sprintf("%s-%s-%d", stream, data, i), 0), Type: "t.v1", Data: []byte(data)}})
		if err != nil {
			t.Fatal(err)
		}
		pos = res.Position
	}
	return pos
}

func count(t *testing.T, pool *pgxpool.Pool, stream string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(t.Context(), `select coalesce((select n from tally where stream = $1), 0)`, stream).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitPosition(t *testing.T, pool *pgxpool.Pool, pos eventstore.Position) {
	t.Helper()
	w, _ := progress.NewWaiter(nil, "", "tally", func(ctx context.Context) (eventstore.Position, error) {
		return projections.ReadCheckpoint(ctx, pool, "tally")
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Wait(ctx, pos); err != nil {
		t.Fatalf("projection did not reach %s: %v", pos, err)
	}
}

func start(t *testing.T, p *projections.Projector) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRestartResumesExactlyAtTheCheckpoint(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	p := projections.New(store, pool, &tally{}, projections.Options{BatchSize: 3, Log: quiet})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	waitPosition(t, pool, appendN(t, store, "t-a", 10, `{}`))
	appendN(t, store, "other", 5, `{}`) // filtered out
	stop()
	if got := count(t, pool, "t-a"); got != 10 {
		t.Fatalf("before restart: %d events applied, want 10", got)
	}
	pos := appendN(t, store, "t-a", 7, `{"more":1}`)
	p2 := projections.New(store, pool, &tally{}, projections.Options{BatchSize: 3, Log: quiet})
	stop = start(t, p2)
	defer stop()
	waitPosition(t, pool, pos)
	if got := count(t, pool, "t-a"); got != 17 {
		t.Fatalf("after restart: %d events applied, want 17 (none twice, none lost)", got)
	}
}

// TestACommitBegunIsFinishedWhenItsWorkerStops: a worker told to stop while it commits a batch
// (its partitions change hands, its process stops) finishes the commit, rows and checkpoint,
// rather than cutting it short (a pipeline cut in the middle of its sending held a connection for
// 15 s); for a projection whose writes go in the commit's pipeline and for one in a transaction.
func TestACommitBegunIsFinishedWhenItsWorkerStops(t *testing.T) {
	t.Parallel()
	for name, pipelined := range map[string]bool{"write-only": true, "in a transaction": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, store := setup(t)
			pos := appendN(t, store, "t-a", 5, `{}`)
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			tl := &tally{queued: stop} // the stop comes as the batch is being committed
			var proj projections.Projection = writeOnly{tl}
			if !pipelined {
				proj = inTx{tl}
			}
			p := projections.New(store, pool, proj, projections.Options{BatchSize: 100, Log: quiet})
			if err := p.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
			if got := count(t, pool, "t-a"); got != 5 {
				t.Errorf("%d events applied, want the batch's 5", got)
			}
			if cp, err := projections.ReadCheckpoint(t.Context(), pool, "tally"); err != nil || cp != pos {
				t.Errorf("checkpoint %s (%v), want the batch's %s", cp, err, pos)
			}
		})
	}
}

func TestFailedBatchCommitsNothing(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	proj := &tally{}
	proj.failing.Store(true)
	p := projections.New(store, pool, proj, projections.Options{BatchSize: 100, Log: quiet, HaltOnFailure: true})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := appendN(t, store, "t-b", 3, `{}`)
	stop := start(t, p)
	defer stop()
	waitPosition(t, pool, good)
	// Two good events and a bad one, in one append so that they arrive in one batch.
	res, err := store.Append(t.Context(), "t-c", eventstore.NoStream(), []eventstore.EventData{
		{ID: eventstore.DeriveID("c", 0), Type: "t.v1", Data: []byte(`{}`)},
		{ID: eventstore.DeriveID("c", 1), Type: "t.v1", Data: []byte(`{}`)},
		{ID: eventstore.DeriveID("c", 2), Type: "t.v1", Data: []byte(`{"fail":true}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := res.Position
	deadline := time.Now().Add(10 * time.Second)
	for p.Health() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the handler error never showed in Health")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The batch holding the bad event rolled back whole: its good events too, and the checkpoint.
	if got := count(t, pool, "t-c"); got != 0 {
		t.Errorf("%d events of the failed batch committed, want 0", got)
	}
	if cp, _ := projections.ReadCheckpoint(t.Context(), pool, "tally"); cp.Compare(bad) >= 0 {
		t.Errorf("checkpoint %s moved past the failed event %s", cp, bad)
	}
	proj.failing.Store(false) // the fix: the projector retries from its checkpoint
	waitPosition(t, pool, bad)
	if got := count(t, pool, "t-c"); got != 3 {
		t.Errorf("after the fix %d events of t-c applied, want 3", got)
	}
	if err := p.Health(); err != nil {
		t.Errorf("Health after recovery: %v", err)
	}
}

// TestPositionPastIgnoredEventsIsAnnouncedThenSaved: events the projection ignores still move its
// position: announced at once (read-your-writes waits on such positions) as unchanged (caches of
// the read model's rows stay valid), saved shortly after even when nothing else comes. A batch
// that applied events is announced as a change.
func TestPositionPastIgnoredEventsIsAnnouncedThenSaved(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	type note struct {
		pos       eventstore.Position
		unchanged bool
	}
	announced := make(chan note, 100)
	p := projections.New(store, pool, &tally{}, projections.Options{Log: quiet, IdleCheckpoint: 200 * time.Millisecond,
		Publish: func(pr wire.Progress) {
			pos, _ := eventstore.ParsePosition(pr.Position)
			announced <- note{pos, pr.Unchanged}
		}})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	applied := appendN(t, store, "t-a", 1, `{}`)
	waitPosition(t, pool, applied)
	ignored := appendN(t, store, "other", 3, `{}`)
	deadline := time.After(10 * time.Second)
	sawChange := false
	for got := false; !got; {
		select {
		case n := <-announced:
			if n.pos.Compare(applied) >= 0 && n.pos.Compare(ignored) < 0 && !n.unchanged {
				sawChange = true
			}
			if n.pos.Compare(ignored) >= 0 {
				got = true
				if !n.unchanged {
					t.Errorf("the position past ignored events was announced as a change")
				}
			}
		case <-deadline:
			t.Fatal("position past ignored events never announced")
		}
	}
	if !sawChange {
		t.Error("the batch that applied t-a was not announced as a change")
	}
	waitPosition(t, pool, ignored) // reads the saved checkpoint only
}

// keyedTally is a tally that names what a batch changes.
type keyedTally struct {
	tally
	keys atomic.Pointer[func([]eventstore.RecordedEvent) []string]
}

func (k *keyedTally) Keys(events []eventstore.RecordedEvent) []string {
	return (*k.keys.Load())(events)
}

// TestChangedKeysAreAnnounced: a Keyed projection's batch is announced with what it changed; a
// batch that changed more than the bound is announced as a change without keys (anything may
// have changed).
func TestChangedKeysAreAnnounced(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	announced := make(chan wire.Progress, 100)
	proj := &keyedTally{}
	streams := func(events []eventstore.RecordedEvent) []string {
		var keys []string
		for _, e := range events {
			if !slices.Contains(keys, e.Stream) {
				keys = append(keys, e.Stream)
			}
		}
		return keys
	}
	proj.keys.Store(&streams)
	p := projections.New(store, pool, proj, projections.Options{Log: quiet, Publish: func(pr wire.Progress) { announced <- pr }})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	// announcement waits for the announcement of a batch that applied events up to pos.
	announcement := func(pos eventstore.Position) wire.Progress {
		t.Helper()
		for deadline := time.After(10 * time.Second); ; {
			select {
			case pr := <-announced:
				if at, _ := eventstore.ParsePosition(pr.Position); at.Compare(pos) >= 0 && !pr.Unchanged {
					return pr
				}
			case <-deadline:
				t.Fatalf("no change announced at %s", pos)
			}
		}
	}
	if pr := announcement(appendN(t, store, "t-k1", 2, `{}`)); !slices.Equal(pr.Changed, []string{"t-k1"}) {
		t.Errorf("announced %+v, want changed [t-k1]", pr)
	}
	many := func([]eventstore.RecordedEvent) []string {
		keys := make([]string, 1001)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
		}
		return keys
	}
	proj.keys.Store(&many)
	if pr := announcement(appendN(t, store, "t-k2", 1, `{}`)); pr.Changed != nil {
		t.Errorf("a batch of 1001 keys announced %d of them, want none (anything may have changed)", len(pr.Changed))
	}
}

// owners counts the partitions each live worker holds.
func owners(t *testing.T, pool *pgxpool.Pool, name string) map[string]int {
	t.Helper()
	parts, err := projections.ReadPartitions(t.Context(), pool, name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range parts {
		out[p.Owner]++
	}
	return out
}

// waitOwners waits (at most within) until the partitions are held as ok says.
func waitOwners(t *testing.T, pool *pgxpool.Pool, within time.Duration, ok func(map[string]int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := owners(t, pool, "tally")
		if ok(got) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("partitions held as %v after %s", got, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendStreams appends n events to each of streams t-<prefix>0 … and answers the last position.
func appendStreams(t *testing.T, s eventstore.Store, prefix string, streams, n int) eventstore.Position {
	var pos eventstore.Position
	for i := range streams {
		pos = appendN(t, s, fmt.Sprintf("t-%s%d", prefix, i), n, fmt.Sprintf(`{"%s":1}`, prefix))
	}
	return pos
}

func sumTally(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `select coalesce(sum(n), 0) from tally`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWorkersShareThePartitions: a second worker takes half of the partitions within a few
// heartbeats; one that stops gives its partitions back at once and the other takes them; every
// event is applied exactly once throughout (the tally is not idempotent: a double apply shows).
func TestWorkersShareThePartitions(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		pool, store := setup(t)
		workersShare(t, pool, store)
	})
	// EventStoreDB: each worker follows a filtered $all subscription of its own (here through the
	// real client, on the protocol double); the claims are in the read model's PostgreSQL.
	t.Run("EventStoreDB", func(t *testing.T) {
		t.Parallel()
		pool, _ := setup(t)
		store, err := esdb.Open(esdbtest.New(t).URL(), esdb.Options{Log: quiet, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		workersShare(t, pool, store)
	})
}

func workersShare(t *testing.T, pool *pgxpool.Pool, store eventstore.Store) {
	newWorker := func() *projections.Projector {
		return projections.New(store, pool, &tally{}, projections.Options{Log: quiet, BatchSize: 5, Partitions: 8,
			ClaimTTL: time.Second, Heartbeat: 100 * time.Millisecond})
	}
	a, b := newWorker(), newWorker()
	if err := a.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopA := start(t, a)
	defer stopA()
	waitPosition(t, pool, appendStreams(t, store, "a", 10, 2))
	if got := owners(t, pool, "tally"); len(got) != 1 || got[""] != 0 {
		t.Fatalf("one worker holds %v, want all 8 partitions", got)
	}
	stopB := start(t, b)
	waitOwners(t, pool, 3*time.Second, func(o map[string]int) bool {
		return len(o) == 2 && o[""] == 0 && slices.Equal(slices.Collect(maps.Values(o)), []int{4, 4})
	})
	waitPosition(t, pool, appendStreams(t, store, "b", 10, 3))
	if got := sumTally(t, pool); got != 50 {
		t.Fatalf("%d events applied with two workers, want 50", got)
	}
	stopB() // it leaves: its partitions are free at once
	took := waitOwners(t, pool, 3*time.Second, func(o map[string]int) bool { return len(o) == 1 && o[""] == 0 })
	if took > time.Second {
		t.Errorf("the partitions of a worker that stopped were taken after %s, want within a few heartbeats", took)
	}
	waitPosition(t, pool, appendStreams(t, store, "c", 10, 1))
	if got := sumTally(t, pool); got != 60 {
		t.Fatalf("%d events applied, want 60: none lost, none twice", got)
	}
}

// TestFailingEventIsParked: a batch that keeps failing is retried MaxAttempts times; then the
// event that fails is parked, the others are applied and the projection goes on. After the fix,
// replaying the parked event applies it.
func TestFailingEventIsParked(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	proj := &tally{}
	proj.failing.Store(true)
	p := projections.New(store, pool, proj, projections.Options{BatchSize: 100, Log: quiet, MaxAttempts: 3})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	res, err := store.Append(t.Context(), "t-p", eventstore.NoStream(), []eventstore.EventData{
		{ID: eventstore.DeriveID("p", 0), Type: "t.v1", Data: []byte(`{}`)},
		{ID: eventstore.DeriveID("p", 1), Type: "t.v1", Data: []byte(`{"fail":true}`)},
		{ID: eventstore.DeriveID("p", 2), Type: "t.v1", Data: []byte(`{}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitPosition(t, pool, res.Position)
	later := appendN(t, store, "t-p", 2, `{"later":1}`)
	waitPosition(t, pool, later)
	if got := count(t, pool, "t-p"); got != 4 {
		t.Fatalf("%d events applied, want 4: all but the parked one", got)
	}
	parked, err := projections.ListParked(t.Context(), pool, "tally")
	if err != nil || len(parked) != 1 || parked[0].EventID != eventstore.DeriveID("p", 1).String() || parked[0].Attempts != 3 || parked[0].Error == "" {
		t.Fatalf("parked = %+v (%v), want the failing event after 3 attempts with its error", parked, err)
	}
	proj.failing.Store(false) // the fix
	n, err := projections.ReplayParked(t.Context(), store, pool, proj)
	if err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	if got := count(t, pool, "t-p"); got != 5 {
		t.Fatalf("after the replay %d events applied, want 5", got)
	}
	if parked, _ := projections.ListParked(t.Context(), pool, "tally"); len(parked) != 0 {
		t.Fatalf("still parked: %+v", parked)
	}
}

// TestPauseAndResume: a paused projection applies nothing until resumed, then everything once.
func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	p := projections.New(store, pool, &tally{}, projections.Options{Log: quiet})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	waitPosition(t, pool, appendN(t, store, "t-x", 3, `{}`))
	if err := projections.SetPaused(t.Context(), pool, "tally", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the projector looks at most once a second
	held := appendN(t, store, "t-x", 4, `{"held":1}`)
	// Absence takes a bounded wait: for 1.5s nothing more may be applied.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got := count(t, pool, "t-x"); got != 3 {
			t.Fatalf("paused, yet %d events applied, want 3", got)
		}
	}
	if paused, err := projections.Paused(t.Context(), pool, "tally"); err != nil || !paused {
		t.Fatalf("Paused = %v, %v", paused, err)
	}
	if err := projections.SetPaused(t.Context(), pool, "tally", false); err != nil {
		t.Fatal(err)
	}
	waitPosition(t, pool, held)
	if got := count(t, pool, "t-x"); got != 7 {
		t.Fatalf("after resume %d events applied, want 7", got)
	}
}

// TestFinishingOutlivesItsParentByTheGrace: the context a commit runs with does not end with the
// worker's, but the grace after it (never sooner: timers do not fire early), or when the commit
// says it is finished.
func TestFinishingOutlivesItsParentByTheGrace(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(t.Context())
	c, finished := projections.Finishing(parent, time.Hour)
	cancel()
	<-parent.Done()
	if c.Err() != nil { // a context derived from the worker's would have ended with it, at once
		t.Fatal("the commit's context ended with its worker's")
	}
	finished()
	if c.Err() == nil {
		t.Fatal("finished did not end the commit's context")
	}

	const grace = 100 * time.Millisecond
	parent, cancel = context.WithCancel(t.Context())
	c, finished = projections.Finishing(parent, grace)
	defer finished()
	start := time.Now()
	cancel()
	select {
	case <-c.Done():
		if took := time.Since(start); took < grace {
			t.Errorf("the commit's context ended %s after its worker's, want the grace, %s", took, grace)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the commit's context outlived its worker's by far more than the grace")
	}
}
