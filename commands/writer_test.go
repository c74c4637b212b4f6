package commands_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/commands/commandstest"
	model "github.com/orderflow/orderflow/domain/inventory"
	ordermodel "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/eventstore/storetest"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var product = commands.Aggregate[model.State, model.Event]{Evolve: model.Evolve, Decode: model.Codec.Decode, Encode: model.Codec.Encode, SnapshotVersion: "test.v1"}

func run(ctx context.Context, w *commands.Writer, id string, c model.Command, commandID string) (commands.Result, error) {
	return commands.Execute(ctx, w, product, model.Stream(id), wire.CommandMeta{CommandID: commandID}, func(s model.State) ([]model.Event, error) {
		return model.Decide(s, c, time.Unix(0, 0))
	})
}

func stocked(t testing.TB, w *commands.Writer, id string, units int64) {
	t.Helper()
	if _, err := run(t.Context(), w, id, model.AddProduct{ProductID: id, SKU: "SKU-" + id, Name: id, PriceCents: 0}, "add-"+id); err != nil {
		t.Fatal(err)
	}
	if units > 0 {
		if _, err := run(t.Context(), w, id, model.Restock{ProductID: id, Quantity: units}, "restock-"+id); err != nil {
			t.Fatal(err)
		}
	}
}

func fold(t testing.TB, store eventstore.Store, id string) (model.State, int) {
	t.Helper()
	s, recorded, err := commandstest.Fold(t.Context(), store, product, model.Stream(id))
	if err != nil {
		t.Fatal(err)
	}
	return s, len(recorded)
}

// counting is a store that counts what the writer asks of it, and may make each append slow.
type counting struct {
	*memoryOrPostgres
	reads, appends, eventsRead atomic.Int64
	appendDelay                time.Duration
}

// memoryOrPostgres is a store that keeps snapshots (every adapter does).
type memoryOrPostgres struct {
	eventstore.Store
	eventstore.Snapshots
}

func counted(s interface {
	eventstore.Store
	eventstore.Snapshots
}) *counting {
	return &counting{memoryOrPostgres: &memoryOrPostgres{Store: s, Snapshots: s}}
}

func (s *counting) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	s.reads.Add(1)
	events, err := s.Store.ReadStream(ctx, stream, opts)
	s.eventsRead.Add(int64(len(events)))
	return events, err
}

// Append counts the appends that landed.
func (s *counting) Append(ctx context.Context, stream string, rev eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	time.Sleep(s.appendDelay)
	res, err := s.Store.Append(ctx, stream, rev, events)
	if err == nil {
		s.appends.Add(1)
	}
	return res, err
}

// TestHotStreamOneWriter: 300 orders race for 50 units of one product, through two writers (two
// instances of the inventory service) over one PostgreSQL store. Exactly 50 get a unit, none
// twice, none is told "too busy", and the commands were grouped into far fewer appends.
func TestHotStreamOneWriter(t *testing.T) {
	t.Parallel()
	pg := pgtest.EventStore(t, 8)
	store := counted(pg)
	stocked(t, commands.NewWriter(store, commands.WriterOptions{}), "hot", 50)
	writers := []*commands.Writer{commands.NewWriter(store, commands.WriterOptions{}), commands.NewWriter(store, commands.WriterOptions{})}
	before := store.appends.Load()
	won, refused := storetest.Race(t, 300, model.ErrInsufficientStock, func(i int) error {
		order := fmt.Sprintf("o%d", i)
		_, err := run(context.Background(), writers[i%2], "hot", model.Reserve{ProductID: "hot", OrderID: order, Quantity: 1}, "reserve-"+order)
		return err
	})
	s, _ := fold(t, pg, "hot")
	if won != 50 || refused != 250 || s.ReservedTotal() != 50 || s.Available() != 0 {
		t.Errorf("%d won, %d refused; the log holds %d reserved, %d available; want 50, 250, 50, 0", won, refused, s.ReservedTotal(), s.Available())
	}
	if appends := store.appends.Load() - before; appends >= 50 {
		t.Errorf("%d appends landed for 50 reservations: commands were not grouped", appends)
	}
}

// TestCachedStreamReadsNothing: after its first command, a stream's commands read nothing, however
// long it is; a command repeated with its id appends nothing and answers as the first time.
func TestCachedStreamReadsNothing(t *testing.T) {
	t.Parallel()
	store := counted(memory.New())
	w := commands.NewWriter(store, commands.WriterOptions{})
	stocked(t, w, "p", 1000)
	reads := store.reads.Load()
	first, err := run(t.Context(), w, "p", model.Reserve{ProductID: "p", OrderID: "o1", Quantity: 2}, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := run(t.Context(), w, "p", model.Reserve{ProductID: "p", OrderID: fmt.Sprint("x", i), Quantity: 1}, fmt.Sprint("rx", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.reads.Load() - reads; n != 0 {
		t.Errorf("%d reads for 101 commands on a cached stream", n)
	}
	// Released, then the reservation command again: it was carried out, it is not carried out twice.
	if _, err := run(t.Context(), w, "p", model.Release{ProductID: "p", OrderID: "o1"}, "x1"); err != nil {
		t.Fatal(err)
	}
	again, err := run(t.Context(), w, "p", model.Reserve{ProductID: "p", OrderID: "o1", Quantity: 2}, "r1")
	if err != nil || again != first {
		t.Errorf("repeated command: %+v %v, want the first answer %+v", again, err, first)
	}
	// A fresh writer (a restarted service) knows it too, from the log.
	again, err = run(t.Context(), commands.NewWriter(store, commands.WriterOptions{}), "p", model.Reserve{ProductID: "p", OrderID: "o1", Quantity: 2}, "r1")
	if err != nil || again != first {
		t.Errorf("repeated command after a restart: %+v %v, want %+v", again, err, first)
	}
	if s, _ := fold(t, store, "p"); s.ReservedTotal() != 100 {
		t.Errorf("reserved %d, want 100 (o1 released, not reserved again)", s.ReservedTotal())
	}
}

// TestAStaleCacheNeverRefuses: two writers (two instances of the inventory service) over one
// store. A refusal appends nothing, so no expected revision tells a writer its cached state is
// old: before it refuses, it reads what the other wrote since. A restock through one instance
// lets the next reservation through the other, and a product added through one is found by the
// other, which had cached it as unknown.
func TestAStaleCacheNeverRefuses(t *testing.T) {
	t.Parallel()
	store := counted(pgtest.EventStore(t, 4))
	a, b := commands.NewWriter(store, commands.WriterOptions{}), commands.NewWriter(store, commands.WriterOptions{})
	stocked(t, a, "p", 0)
	if _, err := run(t.Context(), a, "p", model.Reserve{ProductID: "p", OrderID: "o1", Quantity: 1}, "r1"); !errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("reserve with no stock: %v, want ErrInsufficientStock", err)
	}
	if _, err := run(t.Context(), b, "p", model.Restock{ProductID: "p", Quantity: 10}, "restock-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t.Context(), a, "p", model.Reserve{ProductID: "p", OrderID: "o2", Quantity: 1}, "r2"); err != nil {
		t.Errorf("reserve through the other writer after a restock: %v", err)
	}
	if _, err := run(t.Context(), a, "q", model.Restock{ProductID: "q", Quantity: 1}, "restock-q1"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("restock of an unknown product: %v, want ErrNotFound", err)
	}
	stocked(t, b, "q", 0)
	if _, err := run(t.Context(), a, "q", model.Restock{ProductID: "q", Quantity: 1}, "restock-q2"); err != nil {
		t.Errorf("restock through the other writer after the product was added: %v", err)
	}
	// A refusal on a stream no one else wrote costs one read, which finds nothing new.
	stocked(t, a, "r", 0)
	reads := store.reads.Load()
	if _, err := run(t.Context(), a, "r", model.Reserve{ProductID: "r", OrderID: "o3", Quantity: 1}, "r3"); !errors.Is(err, model.ErrInsufficientStock) {
		t.Fatalf("reserve with no stock: %v", err)
	}
	if n := store.reads.Load() - reads; n != 1 {
		t.Errorf("a refusal on a current cached stream read %d times, want 1", n)
	}
}

// TestALookReadsWhatIsOld: an unproven look answers from the cached state, reading nothing, while
// that state was proven (read or written) within PeekFresh; past it, it reads what another writer
// appended first, so that it is never more than that far behind. A proven look always reads.
func TestALookReadsWhatIsOld(t *testing.T) {
	t.Parallel()
	store := counted(memory.New())
	const fresh = 10 * time.Second
	var clock atomic.Int64 // nanoseconds past start
	start := time.Now()
	now := func() time.Time { return start.Add(time.Duration(clock.Load())) }
	a, b := commands.NewWriter(store, commands.WriterOptions{PeekFresh: fresh, Now: now}), commands.NewWriter(store, commands.WriterOptions{})
	stocked(t, a, "p", 0) // revision 0, written by a
	if _, err := run(t.Context(), b, "p", model.Restock{ProductID: "p", Quantity: 3}, "restock-b"); err != nil {
		t.Fatal(err)
	}
	look := func(proven bool) (int64, int64) {
		t.Helper()
		reads := store.reads.Load()
		rev, err := commands.Look(t.Context(), a, product, model.Stream("p"), proven, func(model.State) {})
		if err != nil {
			t.Fatal(err)
		}
		return rev, store.reads.Load() - reads
	}
	if rev, reads := look(false); rev != 0 || reads != 0 {
		t.Errorf("a look within PeekFresh of a's append: revision %d after %d reads, want 0 after none", rev, reads)
	}
	if rev, reads := look(true); rev != 1 || reads == 0 {
		t.Errorf("a proven look: revision %d after %d reads, want 1 after reading", rev, reads)
	}
	if _, err := run(t.Context(), b, "p", model.Restock{ProductID: "p", Quantity: 3}, "restock-b2"); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(fresh - time.Millisecond))
	if rev, reads := look(false); rev != 1 || reads != 0 {
		t.Errorf("a look just within PeekFresh of the proof: revision %d after %d reads, want 1 after none", rev, reads)
	}
	clock.Add(int64(2 * time.Millisecond))
	if rev, reads := look(false); rev != 2 || reads == 0 {
		t.Errorf("a look past PeekFresh: revision %d after %d reads, want 2 after reading", rev, reads)
	}
}

// TestABatchKeepsEachAnswer: commands decided together keep their own answers: refused ones their
// error, the others their events; a command twice in one batch is carried out once.
func TestABatchKeepsEachAnswer(t *testing.T) {
	t.Parallel()
	store := counted(memory.New())
	store.appendDelay = 20 * time.Millisecond
	w := commands.NewWriter(store, commands.WriterOptions{})
	stocked(t, w, "p", 10)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("o", i%20) // every command twice
			_, errs[i] = run(context.Background(), w, "p", model.Reserve{ProductID: "p", OrderID: id, Quantity: 1}, "reserve-"+id)
		}()
	}
	wg.Wait()
	ok := map[string]bool{}
	for i, err := range errs {
		id := fmt.Sprint("o", i%20)
		switch {
		case err == nil:
			ok[id] = true
		case !errors.Is(err, model.ErrInsufficientStock):
			t.Errorf("%s: %v", id, err)
		}
	}
	s, n := fold(t, store, "p")
	if len(ok) != 10 || s.ReservedTotal() != 10 || n != 2+10 {
		t.Errorf("%d orders reserved, the log holds %d reserved in %d events; want 10, 10, 12", len(ok), s.ReservedTotal(), n)
	}
	for i := range 20 {
		id := fmt.Sprint("o", i)
		if (errs[i] == nil) != (errs[i+20] == nil) {
			t.Errorf("%s twice: %v and %v", id, errs[i], errs[i+20])
		}
	}
}

// TestTheCacheIsBounded: past MaxCommands, least recently used streams are forgotten and read
// again when needed, with the same answers.
func TestTheCacheIsBounded(t *testing.T) {
	t.Parallel()
	store := counted(memory.New())
	w := commands.NewWriter(store, commands.WriterOptions{MaxCommands: 10})
	for i := range 20 {
		stocked(t, w, fmt.Sprint("p", i), 5) // two commands each
	}
	if streams, held := w.Cached(); streams != 5 || held != 10 {
		t.Errorf("the cache holds %d streams and %d commands, want the 5 most recent and their 10", streams, held)
	}
	reads := store.reads.Load()
	if _, err := run(t.Context(), w, "p0", model.Reserve{ProductID: "p0", OrderID: "o", Quantity: 1}, "r-p0"); err != nil {
		t.Fatal(err)
	}
	if store.reads.Load() == reads {
		t.Error("p0, the least recently used of 20 streams, is still cached with room for 10 commands")
	}
	if _, err := run(t.Context(), w, "p0", model.Restock{ProductID: "p0", Quantity: 1}, "restock-p0"); err != nil {
		t.Fatal(err)
	}
	if s, _ := fold(t, store, "p0"); s.OnHand != 5 {
		t.Errorf("p0 on hand %d: a restock was carried out twice after the stream was read again", s.OnHand)
	}
}

// TestColdLoadsStartFromASnapshot: a stream long enough has a snapshot; a writer that has not
// seen it (a restarted service) reads the snapshot and the events after it, not the stream; a
// command repeated with its id is still recognised; a snapshot of another fold version is ignored.
func TestColdLoadsStartFromASnapshot(t *testing.T) {
	t.Parallel()
	store := counted(memory.New())
	w := commands.NewWriter(store, commands.WriterOptions{SnapshotEvery: 100})
	stocked(t, w, "p", 10_000)
	for i := range 250 {
		if _, err := run(t.Context(), w, "p", model.Reserve{ProductID: "p", OrderID: fmt.Sprint("o", i), Quantity: 1}, fmt.Sprint("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := store.LoadSnapshot(t.Context(), model.Stream("p"))
	if err != nil || snap.Revision < 150 || snap.Version != "test.v1" {
		t.Fatalf("snapshot after 252 events: revision %d version %q %v; want one within 100 events of the head", snap.Revision, snap.Version, err)
	}
	read := store.eventsRead.Load()
	cold := commands.NewWriter(store, commands.WriterOptions{SnapshotEvery: 100})
	again, err := run(t.Context(), cold, "p", model.Reserve{ProductID: "p", OrderID: "o249", Quantity: 1}, "r249")
	if err != nil {
		t.Fatal(err)
	}
	if n := store.eventsRead.Load() - read; n > 100 {
		t.Errorf("a cold load read %d events of 252: the snapshot was not used", n)
	}
	if _, n := fold(t, store, "p"); n != 252 {
		t.Errorf("the repeated command appended: %d events, want 252 (answer %+v)", n, again)
	}
	if _, err := run(t.Context(), cold, "p", model.Reserve{ProductID: "p", OrderID: "new", Quantity: 1}, "r-new"); err != nil {
		t.Fatal(err)
	}
	if s, _ := fold(t, store, "p"); s.ReservedTotal() != 251 {
		t.Errorf("reserved %d after a cold start from a snapshot, want 251", s.ReservedTotal())
	}
	// A changed fold ignores the snapshot and reads the stream whole.
	changed := product
	changed.SnapshotVersion = "test.v2"
	read = store.eventsRead.Load()
	if _, err := commands.Execute(t.Context(), commands.NewWriter(store, commands.WriterOptions{}), changed, model.Stream("p"),
		wire.CommandMeta{CommandID: "r-v2"}, func(s model.State) ([]model.Event, error) {
			return model.Decide(s, model.Reserve{ProductID: "p", OrderID: "v2", Quantity: 1}, time.Unix(0, 0))
		}); err != nil {
		t.Fatal(err)
	}
	if n := store.eventsRead.Load() - read; n < 253 {
		t.Errorf("a fold of another version read %d events: it used a snapshot it cannot read", n)
	}
}

// longStream writes product "p" with length events through w.
func longStream(b *testing.B, w *commands.Writer, length int) {
	b.Helper()
	stocked(b, w, "p", 100_000)
	for i := range length - 2 {
		if _, err := run(b.Context(), w, "p", model.Restock{ProductID: "p", Quantity: 1}, fmt.Sprint("fill", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandOnALongStream: a command on a cached stream costs the same whatever its length
// (compare the sub-benchmarks' ns/op; each op is a reservation and its release).
func BenchmarkCommandOnALongStream(b *testing.B) {
	for _, length := range []int{10, 100_000} {
		b.Run(fmt.Sprint(length, "_events"), func(b *testing.B) {
			store := memory.New()
			w := commands.NewWriter(store, commands.WriterOptions{})
			longStream(b, w, length)
			i := 0
			for b.Loop() {
				i++
				if _, err := run(b.Context(), w, "p", model.Reserve{ProductID: "p", OrderID: fmt.Sprint("o", i), Quantity: 1}, fmt.Sprint("r", i)); err != nil {
					b.Fatal(err)
				}
				// Released again: the open reservations (what a decision folds over) stay few.
				if _, err := run(b.Context(), w, "p", model.Release{ProductID: "p", OrderID: fmt.Sprint("o", i)}, fmt.Sprint("x", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprint(length, "_events_cold_with_snapshot"), func(b *testing.B) {
			store := memory.New()
			longStream(b, commands.NewWriter(store, commands.WriterOptions{SnapshotEvery: int64(length)}), length)
			i := 0
			for b.Loop() {
				i++
				cold := commands.NewWriter(store, commands.WriterOptions{SnapshotEvery: 100}) // a restarted service: nothing cached
				if _, err := run(b.Context(), cold, "p", model.Reserve{ProductID: "p", OrderID: fmt.Sprint("o", i), Quantity: 1}, fmt.Sprint("r", i)); err != nil {
					b.Fatal(err)
				}
				if _, err := run(b.Context(), cold, "p", model.Release{ProductID: "p", OrderID: fmt.Sprint("o", i)}, fmt.Sprint("x", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestACreatedStreamIsNotRead: a command that creates its stream (Decider.Creates: placing an
// order) reads nothing before it appends; repeated with its id, by a writer that has not seen
// the stream, it answers as the first time; another command creating the same stream is refused
// as the domain says (the append finds the stream, the writer reads it and decides again).
func TestACreatedStreamIsNotRead(t *testing.T) {
	t.Parallel()
	store := counted(pgtest.EventStore(t, 4))
	orders := commands.NewDecider(ordermodel.Codec, ordermodel.Evolve, ordermodel.Stream, ordermodel.Validate, ordermodel.Decide).
		Creating(func(c ordermodel.Command) bool { _, ok := c.(ordermodel.Place); return ok })
	place := ordermodel.Place{OrderID: "o-new", CustomerID: "c-1", Lines: []ordermodel.PlaceLine{{ProductID: "p", Quantity: 1}}}
	first, err := orders.Answer(t.Context(), commands.NewWriter(store, commands.WriterOptions{}), "o-new", wire.CommandMeta{CommandID: "place-1"}, place, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := store.reads.Load(); n != 0 {
		t.Errorf("placing a new order read the store %d times, want 0", n)
	}
	again, err := orders.Answer(t.Context(), commands.NewWriter(store, commands.WriterOptions{}), "o-new", wire.CommandMeta{CommandID: "place-1"}, place, nil)
	if err != nil || again != first {
		t.Errorf("the placement repeated by another writer: %+v %v, want the first answer %+v", again, err, first)
	}
	if _, err := orders.Answer(t.Context(), commands.NewWriter(store, commands.WriterOptions{}), "o-new", wire.CommandMeta{CommandID: "place-2"}, place, nil); !errors.Is(err, ordermodel.ErrAlreadyPlaced) {
		t.Errorf("another placement of the order: %v, want ErrAlreadyPlaced", err)
	}
	if _, n := foldOrder(t, store, "o-new"); n != 1 {
		t.Errorf("the order's stream holds %d events, want 1", n)
	}
}

func foldOrder(t testing.TB, store eventstore.Store, id string) (ordermodel.State, int) {
	t.Helper()
	s, recorded, err := commandstest.Fold(t.Context(), store, commands.NewDecider(ordermodel.Codec, ordermodel.Evolve, ordermodel.Stream, ordermodel.Validate, ordermodel.Decide).Aggregate, ordermodel.Stream(id))
	if err != nil {
		t.Fatal(err)
	}
	return s, len(recorded)
}

// TestACachedStreamKeepsNoCommand: what the cache keeps of a stream is its state, revision and
// command ids, not the commands carried out on it: a command's context (its trace, its
// correlation, what its caller put there) is garbage once the command has its answer, however long
// the stream stays cached.
func TestACachedStreamKeepsNoCommand(t *testing.T) {
	t.Parallel()
	w := commands.NewWriter(memory.New(), commands.WriterOptions{})
	type carried struct{ _ [64]byte }
	var gone []weak.Pointer[carried]
	for i := range 20 {
		c := &carried{}
		gone = append(gone, weak.Make(c))
		ctx := context.WithValue(t.Context(), carriedKey{}, c)
		id := fmt.Sprint("p", i%4) // 4 streams, each cached, 5 commands each
		if i < 4 {
			stocked(t, w, id, 0)
		}
		if _, err := run(ctx, w, id, model.Restock{ProductID: id, Quantity: 1}, fmt.Sprint("restock-", i)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	kept := 0
	for _, p := range gone {
		if p.Value() != nil {
			kept++
		}
	}
	if kept != 0 {
		t.Errorf("%d of 20 commands' contexts still reachable after their answers", kept)
	}
	if _, err := run(t.Context(), w, "p0", model.Restock{ProductID: "p0", Quantity: 1}, "restock-0"); err != nil {
		t.Fatal(err) // the streams are still cached (the command ids too): a repeat is recognised
	}
}

type carriedKey struct{}
