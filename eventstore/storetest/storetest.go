// Package storetest is the contract every eventstore.Store adapter passes: one suite, run against
// memory, postgres and esdb, so that the rules in the eventstore package doc hold for all of them.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
)

// Harness is what the suite needs of an adapter.
type Harness struct {
	Store eventstore.Store
	// HoldOpen appends events to stream inside a transaction that stays open until commit is
	// called, so the suite can commit an earlier append after later ones. Nil for adapters
	// without client-side transactions; the concurrency test then runs without held appends.
	HoldOpen func(ctx context.Context, stream string, events []eventstore.EventData) (commit func() error, err error)
}

// Run runs the contract suite. newHarness must return a store that no other test writes to.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"AppendAndReadStream", testAppendAndRead},
		{"ExpectedRevisions", testExpectedRevisions},
		{"IdempotentRetry", testIdempotentRetry},
		{"ConditionalAppends", testConditions},
		{"InvalidAppends", testInvalidAppends},
		{"ReadStreamSlices", testReadStreamSlices},
		{"ReadAllPagesAndFilters", testReadAll},
		{"SubscribeCatchUpThenLive", testSubscribe},
		{"SubscribeFilteredAdvancesPosition", testSubscribeFiltered},
		{"ConcurrentWritersOneStream", testConcurrentSameStream},
		{"NoSubscriberSkipsAnEvent", testNoSkip},
		{"Snapshots", testSnapshots},
		{"EventsByCorrelation", testCorrelations},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, newHarness(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Stream returns a stream name unique to this run.
func Stream(prefix string) string { return prefix + "-" + uuid.NewString()[:13] }

// Event returns an event of type typ with a small JSON body and full metadata.
func Event(typ string, n int) eventstore.EventData {
	id := uuid.New()
	return eventstore.EventData{
		ID:   id,
		Type: typ,
		Data: []byte(fmt.Sprintf(`{"n": %d, "note": "ünïcode ok"}`, n)),
		Metadata: eventstore.Metadata{
			CorrelationID: "corr-" + id.String()[:8],
			CausationID:   "cause-" + id.String()[:8],
			TraceParent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			TraceState:    "rojo=00f067aa0ba902b7",
			Extra:         map[string]string{"k": "v"},
		},
	}
}

func events(typ string, n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = Event(typ, i)
	}
	return out
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, exp eventstore.ExpectedRevision, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctxFor(t), stream, exp, evs)
	if err != nil {
		t.Fatalf("append %d events to %s (%s): %v", len(evs), stream, exp, err)
	}
	return res
}

// testConditions: an append conditioned on other streams' revisions appends while they hold,
// refuses with *ConditionError (writing nothing) once one has moved, answers a retry as a retry
// even then, and keeps its own expected revision; many at once (PostgreSQL groups them) each get
// their own answer.
func testConditions(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	price, account, order := Stream("cond-price"), Stream("cond-account"), Stream("cond-order")
	mustAppend(t, s, price, eventstore.NoStream(), Event("t.v1", 0))
	holds := []eventstore.Condition{{Stream: price, Revision: 0}, {Stream: account, Revision: eventstore.NoRevision}}
	placed := Event("t.v1", 1)
	first, err := eventstore.AppendIf(ctx, s, order, eventstore.NoStream(), []eventstore.EventData{placed}, holds)
	if err != nil {
		t.Fatalf("append while its conditions hold: %v", err)
	}
	mustAppend(t, s, price, eventstore.Exact(0), Event("t.v1", 2))
	again, err := eventstore.AppendIf(ctx, s, order, eventstore.NoStream(), []eventstore.EventData{placed}, holds)
	if err != nil || again != first {
		t.Errorf("retry after a condition moved = %+v, %v; want the first result %+v", again, err, first)
	}
	next := Stream("cond-order")
	_, err = eventstore.AppendIf(ctx, s, next, eventstore.NoStream(), []eventstore.EventData{Event("t.v1", 3)}, holds)
	var cerr *eventstore.ConditionError
	if !errors.As(err, &cerr) || cerr.Condition.Stream != price || cerr.Actual != 1 {
		t.Fatalf("append on a moved condition: err = %v, want *ConditionError on %s at 1", err, price)
	}
	if _, err := s.ReadStream(ctx, next, eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("a refused conditional append wrote: %v", err)
	}
	// A condition on some types of events holds while the stream takes others.
	mustAppend(t, s, price, eventstore.Exact(1), eventstore.EventData{ID: uuid.New(), Type: "t.stock", Data: []byte(`{}`)})
	priced := []eventstore.Condition{{Stream: price, Revision: 1, Types: []string{"t.price"}}}
	if _, err := eventstore.AppendIf(ctx, s, Stream("cond-typed"), eventstore.NoStream(), []eventstore.EventData{Event("t.v1", 5)}, priced); err != nil {
		t.Errorf("a condition on t.price events after another type of event: %v", err)
	}
	mustAppend(t, s, price, eventstore.Exact(2), eventstore.EventData{ID: uuid.New(), Type: "t.price", Data: []byte(`{}`)})
	if _, err := eventstore.AppendIf(ctx, s, Stream("cond-typed"), eventstore.NoStream(), []eventstore.EventData{Event("t.v1", 6)}, priced); !errors.As(err, &cerr) || cerr.Actual != 3 {
		t.Errorf("a condition on t.price events after one: err = %v, want *ConditionError at 3", err)
	}
	// Its own revision is still checked, conditions holding.
	holds[0].Revision = 3
	if _, err := eventstore.AppendIf(ctx, s, order, eventstore.Exact(5), []eventstore.EventData{Event("t.v1", 4)}, holds); !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Errorf("conditions hold, wrong own revision: err = %v, want ErrWrongVersion", err)
	}
	// Many at once: those whose condition holds append, the others are refused, each alone.
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cond := []eventstore.Condition{{Stream: price, Revision: int64(3 - i%2)}} // odd ones stale
			_, errs[i] = eventstore.AppendIf(ctx, s, Stream("cond-many"), eventstore.NoStream(), []eventstore.EventData{Event("t.v1", i)}, cond)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if stale := i%2 == 1; stale != errors.Is(err, eventstore.ErrConditionFailed) || (!stale && err != nil) {
			t.Errorf("concurrent conditional append %d (stale %v): err = %v", i, stale, err)
		}
	}
	// Writers racing to create one stream, conditions holding: one appends, the others learn
	// the stream exists (ErrWrongVersion), none gets another error.
	raced := Stream("cond-raced")
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = eventstore.AppendIf(ctx, s, raced, eventstore.NoStream(), []eventstore.EventData{Event("t.v1", i)}, []eventstore.Condition{{Stream: price, Revision: 3}})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, eventstore.ErrWrongVersion):
			t.Errorf("writer %d racing to create a stream: err = %v, want ErrWrongVersion", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers created the stream, want 1", won)
	}
}

// sameJSON compares JSON documents by value: adapters may normalise whitespace and key order.
func sameJSON(t *testing.T, want, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored data is not JSON: %v: %q", err, got)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("data (-want +got):\n%s", d)
	}
}

func testAppendAndRead(t *testing.T, h Harness) {
	s, stream := h.Store, Stream("order")
	in := events("order.placed.v1", 3)
	res := mustAppend(t, s, stream, eventstore.NoStream(), in...)
	if res.NextRevision != 2 {
		t.Errorf("NextRevision = %d, want 2", res.NextRevision)
	}
	got, err := s.ReadStream(ctxFor(t), stream, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events, want 3", len(got))
	}
	for i, e := range got {
		if e.ID != in[i].ID || e.Type != in[i].Type || e.Stream != stream || e.Revision != int64(i) {
			t.Errorf("event %d = {%s %s %s %d}, want {%s %s %s %d}", i, e.ID, e.Type, e.Stream, e.Revision, in[i].ID, in[i].Type, stream, i)
		}
		sameJSON(t, in[i].Data, e.Data)
		if d := cmp.Diff(in[i].Metadata, e.Metadata); d != "" {
			t.Errorf("event %d metadata (-want +got):\n%s", i, d)
		}
		if e.RecordedAt.IsZero() || time.Since(e.RecordedAt) > time.Hour {
			t.Errorf("event %d RecordedAt = %v", i, e.RecordedAt)
		}
		if i > 0 && e.Position.Compare(got[i-1].Position) <= 0 {
			t.Errorf("event %d position %s not after %s", i, e.Position, got[i-1].Position)
		}
	}
	if got[2].Position != res.Position {
		t.Errorf("append position %s, last event at %s", res.Position, got[2].Position)
	}
	if _, err := s.ReadStream(ctxFor(t), Stream("missing"), eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("read missing stream: err = %v, want ErrStreamNotFound", err)
	}
}

func testExpectedRevisions(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	stream := Stream("rev")
	wrong := func(name string, exp eventstore.ExpectedRevision, wantActual int64) {
		t.Helper()
		_, err := s.Append(ctx, stream, exp, []eventstore.EventData{Event("t.v1", 0)})
		var wv *eventstore.WrongVersionError
		if !errors.Is(err, eventstore.ErrWrongVersion) || !errors.As(err, &wv) {
			t.Errorf("%s: err = %v, want ErrWrongVersion", name, err)
			return
		}
		if wv.Actual != wantActual {
			t.Errorf("%s: Actual = %d, want %d", name, wv.Actual, wantActual)
		}
	}
	wrong("StreamExists on a new stream", eventstore.StreamExists(), eventstore.NoRevision)
	wrong("Exact(0) on a new stream", eventstore.Exact(0), eventstore.NoRevision)
	mustAppend(t, s, stream, eventstore.NoStream(), Event("t.v1", 1))
	wrong("NoStream on an existing stream", eventstore.NoStream(), 0)
	wrong("Exact(1) at revision 0", eventstore.Exact(1), 0)
	if r := mustAppend(t, s, stream, eventstore.Exact(0), Event("t.v1", 2)); r.NextRevision != 1 {
		t.Errorf("Exact(0): NextRevision = %d, want 1", r.NextRevision)
	}
	if r := mustAppend(t, s, stream, eventstore.StreamExists(), Event("t.v1", 3)); r.NextRevision != 2 {
		t.Errorf("StreamExists: NextRevision = %d, want 2", r.NextRevision)
	}
	if r := mustAppend(t, s, stream, eventstore.Any(), Event("t.v1", 4), Event("t.v1", 5)); r.NextRevision != 4 {
		t.Errorf("Any: NextRevision = %d, want 4", r.NextRevision)
	}
	if r := mustAppend(t, s, Stream("any"), eventstore.Any(), Event("t.v1", 6)); r.NextRevision != 0 {
		t.Errorf("Any on a new stream: NextRevision = %d, want 0", r.NextRevision)
	}
	wrong("Exact(3) at revision 4", eventstore.Exact(3), 4)
}

func testIdempotentRetry(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	stream := Stream("idem")
	first := mustAppend(t, s, stream, eventstore.NoStream(), Event("t.v1", 0))
	batch := events("t.v1", 2)
	want := mustAppend(t, s, stream, eventstore.Exact(0), batch...)
	again := mustAppend(t, s, stream, eventstore.Exact(0), batch...)
	if again != want {
		t.Errorf("retry result = %+v, want the first result %+v", again, want)
	}
	anyRetry := mustAppend(t, s, stream, eventstore.Any(), batch...)
	if anyRetry != want {
		t.Errorf("retry with Any = %+v, want %+v", anyRetry, want)
	}
	got, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	if err != nil || len(got) != 3 {
		t.Fatalf("after retries the stream has %d events (err %v), want 3", len(got), err)
	}
	if got[0].Position != first.Position {
		t.Errorf("first event moved: %s, want %s", got[0].Position, first.Position)
	}
	// A retry of a batch that was only partly stored is not a retry: refused, nothing written.
	if _, err := s.Append(ctx, stream, eventstore.Exact(0), []eventstore.EventData{batch[0], Event("t.v1", 9)}); !errors.Is(err, eventstore.ErrDuplicateEvent) && !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Errorf("partly stored ids: err = %v, want ErrDuplicateEvent or ErrWrongVersion", err)
	}
	if got, _ := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}); len(got) != 3 {
		t.Errorf("a refused append wrote: stream has %d events, want 3", len(got))
	}
}

func testInvalidAppends(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	e := Event("t.v1", 0)
	cases := map[string]struct {
		stream string
		evs    []eventstore.EventData
	}{
		"empty stream": {"", []eventstore.EventData{e}},
		"no events":    {Stream("x"), nil},
		"nil id":       {Stream("x"), []eventstore.EventData{{Type: "t.v1", Data: []byte(`{}`)}}},
		"no type":      {Stream("x"), []eventstore.EventData{{ID: uuid.New(), Data: []byte(`{}`)}}},
		"repeated id":  {Stream("x"), []eventstore.EventData{e, e}},
	}
	for name, c := range cases {
		if _, err := s.Append(ctx, c.stream, eventstore.Any(), c.evs); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func testReadStreamSlices(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	stream := Stream("slice")
	mustAppend(t, s, stream, eventstore.NoStream(), events("t.v1", 5)...)
	revs := func(opts eventstore.ReadStreamOptions) []int64 {
		got, err := s.ReadStream(ctx, stream, opts)
		if err != nil {
			t.Fatalf("read %+v: %v", opts, err)
		}
		var out []int64
		for _, e := range got {
			out = append(out, e.Revision)
		}
		return out
	}
	cases := []struct {
		opts eventstore.ReadStreamOptions
		want []int64
	}{
		{eventstore.ReadStreamOptions{}, []int64{0, 1, 2, 3, 4}},
		{eventstore.ReadStreamOptions{From: 2, Limit: 2}, []int64{2, 3}},
		{eventstore.ReadStreamOptions{From: 4}, []int64{4}},
		{eventstore.ReadStreamOptions{From: 5}, nil}, // what a writer asks for what is new: nothing
		{eventstore.ReadStreamOptions{From: 9}, nil},
		{eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1}, []int64{4, 3, 2, 1, 0}},
		{eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: -1, Limit: 1}, []int64{4}},
		{eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: 2, Limit: 2}, []int64{2, 1}},
	}
	for _, c := range cases {
		if d := cmp.Diff(c.want, revs(c.opts)); d != "" {
			t.Errorf("read %+v (-want +got):\n%s", c.opts, d)
		}
	}
	for _, from := range []int64{0, 1, 5} {
		if _, err := s.ReadStream(ctx, Stream("missing"), eventstore.ReadStreamOptions{From: from}); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("read a missing stream from %d: err = %v, want ErrStreamNotFound", from, err)
		}
	}
}

// collect reads $all from start in pages of size limit until the end.
func collect(t *testing.T, s eventstore.Store, from eventstore.Position, opts eventstore.ReadAllOptions) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for i := 0; ; i++ {
		page, err := s.ReadAll(ctxFor(t), from, opts)
		if err != nil {
			t.Fatalf("read $all from %s: %v", from, err)
		}
		if page.Position.Compare(from) < 0 {
			t.Fatalf("page position %s went back from %s", page.Position, from)
		}
		out = append(out, page.Events...)
		from = page.Position
		if page.AtEnd || i > 10000 {
			return out
		}
	}
}

// collectTo is collect until the reads have passed to: a read ends at the horizon of its moment
// (AtEnd), which a transaction elsewhere in the cluster may hold below events already read (a
// transaction of another database that ends between a read's snapshot and its look at it counts
// as one that may have appended), so a later read goes on from there.
func collectTo(t *testing.T, s eventstore.Store, from, to eventstore.Position, opts eventstore.ReadAllOptions) []eventstore.RecordedEvent {
	t.Helper()
	var out []eventstore.RecordedEvent
	for deadline := time.Now().Add(10 * time.Second); from.Compare(to) < 0; {
		page, err := s.ReadAll(ctxFor(t), from, opts)
		if err != nil {
			t.Fatalf("read $all from %s: %v", from, err)
		}
		out = append(out, page.Events...)
		if page.AtEnd && page.Position.Compare(to) < 0 {
			if time.Now().After(deadline) {
				t.Fatalf("$all read from %s stays at %s, below %s, for 10 s", from, page.Position, to)
			}
			time.Sleep(5 * time.Millisecond)
		}
		from = page.Position
	}
	return out
}

func testReadAll(t *testing.T, h Harness) {
	s := h.Store
	tag := uuid.NewString()[:8]
	a, b := "a"+tag+"-1", "b"+tag+"-1"
	mustAppend(t, s, a, eventstore.NoStream(), Event("x"+tag+".one.v1", 0), Event("x"+tag+".two.v1", 1))
	mustAppend(t, s, b, eventstore.NoStream(), Event("x"+tag+".one.v1", 2))
	lastEvent := Event("y"+tag+".one.v1", 3)
	mustAppend(t, s, a, eventstore.Exact(1), lastEvent)
	// Every read below goes on to the last event: a read ends at the horizon of its moment, which a
	// transaction elsewhere in the cluster may hold back for a moment (see collectTo).
	last := waitVisible(t, s, a, lastEvent.ID)

	all := collectTo(t, s, eventstore.Start, last, eventstore.ReadAllOptions{Limit: 2})
	var mine []string
	for i, e := range all {
		if i > 0 && e.Position.Compare(all[i-1].Position) <= 0 {
			t.Fatalf("$all not in position order at %d: %s after %s", i, e.Position, all[i-1].Position)
		}
		if e.Stream == a || e.Stream == b {
			mine = append(mine, e.Stream+"/"+e.Type)
		}
	}
	want := []string{a + "/x" + tag + ".one.v1", a + "/x" + tag + ".two.v1", b + "/x" + tag + ".one.v1", a + "/y" + tag + ".one.v1"}
	if d := cmp.Diff(want, mine); d != "" {
		t.Errorf("$all in pages of 2 (-want +got):\n%s", d)
	}

	filters := []struct {
		f    eventstore.Filter
		want int
	}{
		{eventstore.Filter{EventTypePrefixes: []string{"x" + tag + "."}}, 3},
		{eventstore.Filter{EventTypePrefixes: []string{"x" + tag + ".one", "y" + tag}}, 3},
		{eventstore.Filter{StreamPrefixes: []string{"b" + tag}}, 1},
		{eventstore.Filter{StreamPrefixes: []string{"a" + tag}, EventTypePrefixes: []string{"y" + tag}}, 1},
		{eventstore.Filter{EventTypePrefixes: []string{"nothing" + tag}}, 0},
	}
	for _, c := range filters {
		got := collectTo(t, s, eventstore.Start, last, eventstore.ReadAllOptions{Filter: c.f, Limit: 1})
		if len(got) != c.want {
			t.Errorf("filter %+v: %d events, want %d", c.f, len(got), c.want)
		}
	}
	// Resuming from any event's position gives exactly the events after it.
	end := all[len(all)-1].Position // at or past last
	for i := range all {
		rest := collectTo(t, s, all[i].Position, end, eventstore.ReadAllOptions{})
		if len(rest) < len(all)-i-1 || (len(rest) > 0 && rest[0].Position.Compare(all[i].Position) <= 0) {
			t.Fatalf("resume from %s: %d events, want at least %d after it", all[i].Position, len(rest), len(all)-i-1)
		}
		if i+1 < len(all) && rest[0].ID != all[i+1].ID {
			t.Fatalf("resume from %s starts at %s, want %s", all[i].Position, rest[0].ID, all[i+1].ID)
		}
	}
}

// waitVisible waits until $all shows the event with id in stream. A store may show an append in
// $all later than it acknowledges it (postgres waits for older transactions still running on the
// cluster, which other tests may hold open).
func waitVisible(t *testing.T, s eventstore.Store, stream string, id uuid.UUID) eventstore.Position {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, e := range collect(t, s, eventstore.Start, eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{stream}}}) {
			if e.ID == id {
				return e.Position
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s of %s not in $all within 30s", id, stream)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receive takes batches from sub until it holds n events of the given streams, or fails.
func receive(t *testing.T, sub eventstore.Subscription, n int, keep func(eventstore.RecordedEvent) bool) ([]eventstore.RecordedEvent, eventstore.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var got []eventstore.RecordedEvent
	var pos eventstore.Position
	for len(got) < n {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("subscription after %d of %d events: %v", len(got), n, err)
		}
		if b.Position.Compare(pos) < 0 {
			t.Fatalf("batch position %s went back from %s", b.Position, pos)
		}
		pos = b.Position
		for _, e := range b.Events {
			if keep(e) {
				got = append(got, e)
			}
		}
	}
	return got, pos
}

func testSubscribe(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	stream := Stream("sub")
	mine := func(e eventstore.RecordedEvent) bool { return e.Stream == stream }
	mustAppend(t, s, stream, eventstore.NoStream(), events("t.v1", 3)...)
	sub, err := s.SubscribeAll(ctx, eventstore.Start, eventstore.SubscribeOptions{BatchSize: 2})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	got, _ := receive(t, sub, 3, mine)
	live := events("t.v1", 2)
	go func() { _, _ = s.Append(ctx, stream, eventstore.Exact(2), live) }()
	more, pos := receive(t, sub, 2, mine)
	got = append(got, more...)
	for i, e := range got {
		if e.Revision != int64(i) {
			t.Fatalf("event %d of the subscription has revision %d", i, e.Revision)
		}
	}
	if more[1].ID != live[1].ID {
		t.Errorf("live event %s, want %s", more[1].ID, live[1].ID)
	}
	// Resume from the checkpoint: only what comes after.
	after := Event("t.v1", 9)
	mustAppend(t, s, stream, eventstore.Exact(4), after)
	sub2, err := s.SubscribeAll(ctx, pos, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatalf("resubscribe: %v", err)
	}
	defer sub2.Close()
	resumed, _ := receive(t, sub2, 1, mine)
	if resumed[0].ID != after.ID {
		t.Errorf("resumed at %s (revision %d), want the event after the checkpoint", resumed[0].ID, resumed[0].Revision)
	}
}

func testSubscribeFiltered(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	tag := "f" + uuid.NewString()[:8]
	sub, err := s.SubscribeAll(ctx, eventstore.Start, eventstore.SubscribeOptions{Filter: eventstore.Filter{EventTypePrefixes: []string{tag + ".kept"}}})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	// Only filtered-out events: the position still advances past them. (EventStoreDB sends a
	// checkpoint every 32 events it scans by default, hence more than one.)
	skippedStream := Stream(tag)
	first := mustAppend(t, s, skippedStream, eventstore.NoStream(), Event(tag+".skipped.v1", 0))
	for i := 1; i < 40; i++ {
		mustAppend(t, s, skippedStream, eventstore.Exact(int64(i-1)), Event(tag+".skipped.v1", i))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		b, err := sub.Next(nctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			t.Fatalf("subscription: %v", err)
		}
		for _, e := range b.Events {
			if e.Type == tag+".skipped.v1" {
				t.Fatalf("filtered subscription delivered %s", e.Type)
			}
		}
		if b.Position.Compare(first.Position) >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("position stuck at %s, before the filtered-out event at %s", b.Position, first.Position)
		}
	}
	kept := mustAppend(t, s, Stream(tag), eventstore.NoStream(), Event(tag+".kept.v1", 1))
	got, _ := receive(t, sub, 1, func(e eventstore.RecordedEvent) bool { return true })
	if got[0].Position != kept.Position {
		t.Errorf("filtered subscription got %s at %s, want the kept event at %s", got[0].Type, got[0].Position, kept.Position)
	}
}

func testConcurrentSameStream(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	stream := Stream("race")
	mustAppend(t, s, stream, eventstore.NoStream(), Event("t.v1", 0))
	const writers = 8
	wins, conflicts := Race(t, writers, eventstore.ErrWrongVersion, func(i int) error {
		_, err := s.Append(ctx, stream, eventstore.Exact(0), []eventstore.EventData{Event("t.v1", i)})
		return err
	})
	if wins != 1 || conflicts != writers-1 {
		t.Errorf("%d writers at revision 0: %d won, %d conflicted; want 1 and %d", writers, wins, conflicts, writers-1)
	}
	var wg sync.WaitGroup
	// Any never conflicts: every append lands.
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Append(ctx, stream, eventstore.Any(), []eventstore.EventData{Event("t.v1", i)}); err != nil {
				t.Errorf("append with Any: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	if err != nil || len(got) != 2+writers {
		t.Errorf("stream has %d events (err %v), want %d", len(got), err, 2+writers)
	}
}

// testNoSkip is the test that catches a subscriber skipping an event: many writers append
// concurrently while some hold their transaction open until later appends have committed. A
// subscriber running throughout must receive every event exactly once, in strictly increasing
// positions, and resuming from any checkpoint it reached must give exactly the rest.
func testNoSkip(t *testing.T, h Harness) {
	s, ctx := h.Store, ctxFor(t)
	tag := "gap" + uuid.NewString()[:8]
	const writers, perWriter, holders = 8, 40, 4
	filter := eventstore.Filter{StreamPrefixes: []string{tag}}
	start, err := s.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{Filter: filter})
	if err != nil {
		t.Fatalf("read start: %v", err)
	}
	sub, err := s.SubscribeAll(ctx, start.Position, eventstore.SubscribeOptions{Filter: filter, BatchSize: 7})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()

	var committed atomic.Int64 // appends committed by the plain writers
	var held atomic.Int32
	total := writers * perWriter
	var wg sync.WaitGroup
	if h.HoldOpen != nil {
		for i := range holders {
			// Begin and append while the writers are starting, then commit only after many later
			// appends have committed: the held rows have lower sequence numbers than rows that
			// became visible before them.
			threshold := int64((i + 1) * writers * perWriter / (holders + 2))
			wg.Go(func() { holdOpen(ctx, t, h, fmt.Sprintf("%s-held-%d", tag, i), i, &committed, threshold, &held) })
		}
		total += holders
	}
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("%s-w%d", tag, w)
			for i := range perWriter {
				if _, err := s.Append(ctx, stream, eventstore.Exact(int64(i)-1), []eventstore.EventData{Event("t.v1", i)}); err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				committed.Add(1)
			}
		})
	}
	got, checkpoints := receiveAll(ctx, t, s, sub, total, start.Position, filter)
	wg.Wait()
	if h.HoldOpen != nil && held.Load() != holders {
		t.Fatalf("%d of %d held appends committed", held.Load(), holders)
	}
	// Nothing beyond the total arrives.
	last := got[len(got)-1].Position
	tail, err := s.ReadAll(ctx, last, eventstore.ReadAllOptions{Filter: filter})
	if err != nil || len(tail.Events) != 0 {
		t.Fatalf("after the last delivered event $all still has %d events (err %v)", len(tail.Events), err)
	}
	checkResumes(t, s, got, checkpoints, filter)
}

// holdOpen appends event i to stream in a transaction it holds open until committed reaches
// threshold, then commits it and counts it in held.
func holdOpen(ctx context.Context, t *testing.T, h Harness, stream string, i int, committed *atomic.Int64, threshold int64, held *atomic.Int32) {
	commit, err := h.HoldOpen(ctx, stream, []eventstore.EventData{Event("t.v1", i)})
	if err != nil {
		t.Errorf("holder %d: %v", i, err)
		return
	}
	for committed.Load() < threshold && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := commit(); err != nil {
		t.Errorf("holder %d commit: %v", i, err)
		return
	}
	held.Add(1)
}

// receiveAll takes total events from sub, each once and in log order (within 45 s), and answers
// them with the position of every batch.
func receiveAll(ctx context.Context, t *testing.T, s eventstore.Store, sub eventstore.Subscription, total int, start eventstore.Position, filter eventstore.Filter) ([]eventstore.RecordedEvent, []eventstore.Position) {
	seen := map[uuid.UUID]bool{}
	var got []eventstore.RecordedEvent
	var checkpoints []eventstore.Position
	var last eventstore.Position
	debug := os.Getenv("STORETEST_DEBUG") != ""
	deadline := time.Now().Add(45 * time.Second)
	for len(got) < total {
		if time.Now().After(deadline) {
			again := collect(t, s, start, eventstore.ReadAllOptions{Filter: filter})
			for _, e := range again {
				if debug && !seen[e.ID] {
					t.Logf("missed %s %s/%d", e.Position, e.Stream, e.Revision)
				}
			}
			t.Fatalf("subscriber received %d of %d committed events (last at %s); reading $all again from the start finds %d", len(got), total, last, len(again))
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		b, err := sub.Next(nctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			t.Fatalf("subscription: %v", err)
		}
		if debug {
			var ps []string
			for _, e := range b.Events {
				ps = append(ps, e.Position.String())
			}
			t.Logf("batch pos=%s caughtUp=%v events=%v", b.Position, b.CaughtUp, ps)
		}
		for _, e := range b.Events {
			if seen[e.ID] {
				t.Fatalf("event %s delivered twice", e.ID)
			}
			if e.Position.Compare(last) <= 0 {
				t.Fatalf("event at %s delivered after %s: a checkpoint would skip or repeat", e.Position, last)
			}
			seen[e.ID] = true
			last = e.Position
			got = append(got, e)
		}
		checkpoints = append(checkpoints, b.Position)
	}
	return got, checkpoints
}

// checkResumes: reading $all from a tenth of the checkpoints finds exactly the events got holds
// after it, in its order.
func checkResumes(t *testing.T, s eventstore.Store, got []eventstore.RecordedEvent, checkpoints []eventstore.Position, filter eventstore.Filter) {
	index := map[uuid.UUID]int{}
	for i, e := range got {
		index[e.ID] = i
	}
	for i := 0; i < len(checkpoints); i += max(1, len(checkpoints)/10) {
		cp := checkpoints[i]
		rest := collectTo(t, s, cp, got[len(got)-1].Position, eventstore.ReadAllOptions{Filter: filter, Limit: 50})
		want := 0
		for _, e := range got {
			if e.Position.Compare(cp) > 0 {
				want++
			}
		}
		if len(rest) != want {
			t.Fatalf("resume from checkpoint %s: %d events, want %d", cp, len(rest), want)
		}
		if want > 0 && index[rest[0].ID] != len(got)-want {
			t.Fatalf("resume from checkpoint %s starts at event %d, want %d", cp, index[rest[0].ID], len(got)-want)
		}
	}
}

// testSnapshots: a stream's latest snapshot comes back as saved; an older one never replaces a
// newer; streams keep their own; a stream without one says ErrSnapshotNotFound.
func testSnapshots(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	snaps, ok := h.Store.(eventstore.Snapshots)
	if !ok {
		t.Fatalf("%T keeps no snapshots: every adapter must", h.Store)
	}
	a, b := Stream("snap"), Stream("snap")
	if _, err := snaps.LoadSnapshot(ctx, a); !errors.Is(err, eventstore.ErrSnapshotNotFound) {
		t.Fatalf("no snapshot yet: %v, want ErrSnapshotNotFound", err)
	}
	save := func(stream string, s eventstore.Snapshot) {
		t.Helper()
		if err := snaps.SaveSnapshot(ctx, stream, s); err != nil {
			t.Fatal(err)
		}
	}
	load := func(stream string) eventstore.Snapshot {
		t.Helper()
		s, err := snaps.LoadSnapshot(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	state := []byte(`{"onHand": 5, "reserved": {"o1": 2}, "name": "ünïcode"}`)
	save(a, eventstore.Snapshot{Revision: 5, Version: "v1", Data: state})
	if diff := cmp.Diff(eventstore.Snapshot{Revision: 5, Version: "v1", Data: state}, load(a)); diff != "" {
		t.Errorf("load (-want +got):\n%s", diff)
	}
	save(a, eventstore.Snapshot{Revision: 3, Version: "v1", Data: []byte(`{}`)})
	if got := load(a); got.Revision != 5 {
		t.Errorf("an older snapshot replaced a newer: revision %d", got.Revision)
	}
	save(a, eventstore.Snapshot{Revision: 9, Version: "v2", Data: []byte(`{"onHand": 1}`)})
	if got := load(a); got.Revision != 9 || got.Version != "v2" || string(got.Data) != `{"onHand": 1}` {
		t.Errorf("latest: %+v", got)
	}
	if _, err := snaps.LoadSnapshot(ctx, b); !errors.Is(err, eventstore.ErrSnapshotNotFound) {
		t.Errorf("another stream: %v, want ErrSnapshotNotFound", err)
	}
}

// testCorrelations: the events of one flow, found across streams by their correlation id, in log
// order, with their metadata; another flow's stay out; an unknown flow is empty; a limit holds.
func testCorrelations(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	c, ok := h.Store.(eventstore.Correlations)
	if !ok {
		t.Fatalf("%T cannot find events by correlation id: every adapter must", h.Store)
	}
	flow, other := "flow-"+uuid.NewString(), "flow-"+uuid.NewString()
	in := func(typ string, n int, corr string) eventstore.EventData {
		e := Event(typ, n)
		e.Metadata.CorrelationID = corr
		return e
	}
	order, stock, payment := Stream("order"), Stream("stock"), Stream("payment")
	var want []eventstore.EventData
	for _, step := range []struct {
		stream string
		events []eventstore.EventData
	}{
		{order, []eventstore.EventData{in("placed", 1, flow)}},
		{stock, []eventstore.EventData{in("reserved", 2, flow), in("unrelated", 3, other)}},
		{payment, []eventstore.EventData{in("authorized", 4, flow)}},
		{order, []eventstore.EventData{in("confirmed", 5, flow)}},
	} {
		if _, err := h.Store.Append(ctx, step.stream, eventstore.Any(), step.events); err != nil {
			t.Fatal(err)
		}
		for _, e := range step.events {
			if e.Metadata.CorrelationID == flow {
				want = append(want, e)
			}
		}
	}
	var got []eventstore.RecordedEvent
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if got, err = c.ByCorrelation(ctx, flow, 0); err != nil {
			t.Fatal(err)
		}
		if len(got) >= len(want) || time.Now().After(deadline) { // EventStoreDB indexes asynchronously
			break
		}
	}
	if len(got) != len(want) {
		t.Fatalf("flow: %d events, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.ID != want[i].ID || e.Type != want[i].Type || e.Metadata.CorrelationID != flow || e.Metadata.CausationID != want[i].Metadata.CausationID {
			t.Errorf("event %d: %s %s %+v, want %s %s", i, e.ID, e.Type, e.Metadata, want[i].ID, want[i].Type)
		}
		if i > 0 && e.Position.Compare(got[i-1].Position) <= 0 {
			t.Errorf("event %d at %s, not after %s: want log order", i, e.Position, got[i-1].Position)
		}
	}
	if first, err := c.ByCorrelation(ctx, flow, 2); err != nil || len(first) != 2 || first[0].ID != want[0].ID {
		t.Errorf("limit 2: %d events, %v", len(first), err)
	}
	if none, err := c.ByCorrelation(ctx, "flow-"+uuid.NewString(), 0); err != nil || len(none) != 0 {
		t.Errorf("an unknown flow: %d events, %v; want none, no error", len(none), err)
	}
}

// Race runs f(0) … f(n-1) at once, and answers how many succeeded and how many failed with lost
// (errors.Is): the contention of optimistic writers. Any other error fails the test.
func Race(t testing.TB, n int, lost error, f func(i int) error) (won, refused int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, lost):
				refused++
			default:
				t.Errorf("%d of %d: %v", i, n, err)
			}
		}()
	}
	wg.Wait()
	return won, refused
}
