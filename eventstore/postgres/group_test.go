package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/eventstore/storetest"
)

// blockAppends makes the store's one group statement wait (AppendGroups 1): an open transaction
// appends to a stream, and an append to the same stream waits on it. It returns once the waiting
// append is in PostgreSQL; release commits the open transaction, and the waiting append then fails
// on its expected revision, which done reports.
func blockAppends(t *testing.T, store *postgres.Store, pool *pgxpool.Pool) (release func(), done <-chan error) {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := store.AppendTx(ctx, tx, "blocker", eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", 0)}); err != nil {
		t.Fatal(err)
	}
	waiting := waitingAppends(t, pool)
	ch := make(chan error, 1)
	go func() {
		_, err := store.Append(ctx, "blocker", eventstore.NoStream(), []eventstore.EventData{storetest.Event("t.v1", 1)})
		ch <- err
	}()
	waitFor(t, "the blocked append to wait in PostgreSQL", func() bool { return waitingAppends(t, pool) > waiting })
	return func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}, ch
}

// waitingAppends counts the statements waiting on a lock.
func waitingAppends(t *testing.T, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(t.Context(), `select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type appendCall struct {
	stream   string
	expected eventstore.ExpectedRevision
	events   []eventstore.EventData
	res      eventstore.AppendResult
	err      error
}

// appendQueued starts calls at once and waits until all of them are queued behind the blocked
// group statement; wait returns once all have been answered.
func appendQueued(t *testing.T, store *postgres.Store, calls []*appendCall) (wait func()) {
	t.Helper()
	queued := store.QueuedAppends()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() { c.res, c.err = store.Append(t.Context(), c.stream, c.expected, c.events) })
	}
	waitFor(t, "the appends to queue", func() bool { return store.QueuedAppends() == queued+len(calls) })
	return wg.Wait
}

// TestGroupedAppendsAnswerAsAlone: appends that queue up while one is written go in one
// statement, and each still gets the answer it would get alone: its own expected revision, a
// retry recognised, a conflict its own; and the group is one transaction.
func TestGroupedAppendsAnswerAsAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, pool := newStoreWith(t, postgres.Options{AppendGroups: 1})
	ev := storetest.Event
	for _, s := range []string{"ok", "conflict", "exists"} {
		if _, err := store.Append(ctx, s, eventstore.NoStream(), []eventstore.EventData{ev("t.v1", 100)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Append(ctx, "conflict", eventstore.Exact(0), []eventstore.EventData{ev("t.v1", 101)}); err != nil {
		t.Fatal(err)
	}
	retried := []eventstore.EventData{ev("t.v1", 102), ev("t.v1", 103)}
	first, err := store.Append(ctx, "retried", eventstore.NoStream(), retried)
	if err != nil {
		t.Fatal(err)
	}

	release, blocked := blockAppends(t, store, pool)
	calls := map[string]*appendCall{
		"ok":       {stream: "ok", expected: eventstore.Exact(0), events: []eventstore.EventData{ev("t.v1", 1)}},
		"new":      {stream: "new", expected: eventstore.NoStream(), events: []eventstore.EventData{ev("t.v1", 2), ev("t.v1", 3), ev("t.v1", 4)}},
		"conflict": {stream: "conflict", expected: eventstore.Exact(0), events: []eventstore.EventData{ev("t.v1", 5)}},
		"exists":   {stream: "exists", expected: eventstore.NoStream(), events: []eventstore.EventData{ev("t.v1", 6)}},
		"retried":  {stream: "retried", expected: eventstore.NoStream(), events: retried},
	}
	var list []*appendCall
	for _, c := range calls {
		list = append(list, c)
	}
	wait := appendQueued(t, store, list)
	release()
	if err := <-blocked; !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("the blocked append: %v, want ErrWrongVersion", err)
	}
	wait()

	for _, name := range []string{"ok", "new"} {
		c := calls[name]
		if rev, _ := c.expected.Revision(); c.err != nil || c.res.NextRevision != rev+int64(len(c.events)) {
			t.Errorf("%s: %+v %v", name, c.res, c.err)
		}
	}
	if calls["ok"].res.Position.Commit != calls["new"].res.Position.Commit {
		t.Errorf("ok and new appended in transactions %d and %d, want one", calls["ok"].res.Position.Commit, calls["new"].res.Position.Commit)
	}
	for name, actual := range map[string]int64{"conflict": 1, "exists": 0} {
		var wv *eventstore.WrongVersionError
		if c := calls[name]; !errors.As(c.err, &wv) || wv.Actual != actual {
			t.Errorf("%s: %v, want a wrong version with the stream at %d", name, c.err, actual)
		}
	}
	if c := calls["retried"]; c.err != nil || c.res != first {
		t.Errorf("retried: %+v %v, want the first append's %+v", c.res, c.err, first)
	}
	got, err := store.ReadStream(ctx, "new", eventstore.ReadStreamOptions{})
	if err != nil || len(got) != 3 {
		t.Fatalf("read new: %d events, %v", len(got), err)
	}
	for i, e := range got {
		if e.ID != calls["new"].events[i].ID || (i > 0 && e.Position.Compare(got[i-1].Position) <= 0) {
			t.Errorf("new[%d]: %s at %s, want the events in order at increasing positions", i, e.ID, e.Position)
		}
	}
}

// TestAGroupThatFailsIsAppendedStreamByStream: when the group statement fails as a whole (here a
// writer in another transaction takes a stream's next revision between the check and the insert),
// each append of the group is carried out on its own: only the raced one fails.
func TestAGroupThatFailsIsAppendedStreamByStream(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, pool := newStoreWith(t, postgres.Options{AppendGroups: 1})
	ev := storetest.Event
	if _, err := store.Append(ctx, "raced", eventstore.NoStream(), []eventstore.EventData{ev("t.v1", 0)}); err != nil {
		t.Fatal(err)
	}
	racer, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer racer.Rollback(context.Background()) //nolint:errcheck
	if _, err := store.AppendTx(ctx, racer, "raced", eventstore.Exact(0), []eventstore.EventData{ev("t.v1", 1)}); err != nil {
		t.Fatal(err)
	}

	release, blocked := blockAppends(t, store, pool)
	calls := []*appendCall{
		{stream: "a", expected: eventstore.NoStream(), events: []eventstore.EventData{ev("t.v1", 2)}},
		{stream: "raced", expected: eventstore.Exact(0), events: []eventstore.EventData{ev("t.v1", 3)}},
		{stream: "b", expected: eventstore.NoStream(), events: []eventstore.EventData{ev("t.v1", 4)}},
	}
	wait := appendQueued(t, store, calls)
	waiting := waitingAppends(t, pool)
	release()
	if err := <-blocked; !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("the blocked append: %v, want ErrWrongVersion", err)
	}
	// The group now waits on the racer's uncommitted revision 1 of "raced".
	waitFor(t, "the group to wait on the racer", func() bool { return store.QueuedAppends() == 0 && waitingAppends(t, pool) >= waiting })
	if err := racer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wait()
	var wv *eventstore.WrongVersionError
	if !errors.As(calls[1].err, &wv) || wv.Actual != 1 {
		t.Errorf("raced: %v, want a wrong version with the stream at 1", calls[1].err)
	}
	for _, c := range []*appendCall{calls[0], calls[2]} {
		if c.err != nil || c.res.NextRevision != 0 {
			t.Errorf("%s: %+v %v, want appended alone", c.stream, c.res, c.err)
		}
	}
	var tx []string
	rows, err := pool.Query(ctx, `select distinct tx_id::text from eventstore.events where stream_id in ('a', 'b')`)
	if err != nil {
		t.Fatal(err)
	}
	if tx, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(tx) != 2 {
		t.Errorf("a and b in transactions %v (%v), want one each: the group was carried out stream by stream", tx, err)
	}
}

// TestAppendsOvertakenInTheirQueueAreRefusedAtOnce: appends that queued at the revision another
// append of the queue just took are told so together with it (a wrong version, the stream at its
// new revision), while a retry of the winner's events still gets the winner's answer.
func TestAppendsOvertakenInTheirQueueAreRefusedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, pool := newStoreWith(t, postgres.Options{AppendGroups: 1})
	ev := storetest.Event
	if _, err := store.Append(ctx, "hot", eventstore.NoStream(), []eventstore.EventData{ev("t.v1", 0)}); err != nil {
		t.Fatal(err)
	}
	release, blocked := blockAppends(t, store, pool)
	winner := []eventstore.EventData{ev("t.v1", 1)}
	calls := []*appendCall{
		{stream: "hot", expected: eventstore.Exact(0), events: winner},
		{stream: "hot", expected: eventstore.Exact(0), events: []eventstore.EventData{ev("t.v1", 2)}},
		{stream: "hot", expected: eventstore.Exact(0), events: []eventstore.EventData{ev("t.v1", 3)}},
		{stream: "hot", expected: eventstore.Exact(0), events: winner},
	}
	// Queued one by one, so that the first is the one the group takes.
	var waits []func()
	for _, c := range calls {
		waits = append(waits, appendQueued(t, store, []*appendCall{c}))
	}
	release()
	if err := <-blocked; !errors.Is(err, eventstore.ErrWrongVersion) {
		t.Fatalf("the blocked append: %v, want ErrWrongVersion", err)
	}
	for _, w := range waits {
		w()
	}
	if c := calls[0]; c.err != nil || c.res.NextRevision != 1 {
		t.Fatalf("first: %+v %v, want appended at 1", c.res, c.err)
	}
	for _, c := range calls[1:3] {
		var wv *eventstore.WrongVersionError
		if !errors.As(c.err, &wv) || wv.Actual != 1 {
			t.Errorf("overtaken: %v, want a wrong version with the stream at 1", c.err)
		}
	}
	if c := calls[3]; c.err != nil || c.res != calls[0].res {
		t.Errorf("retry of the first: %+v %v, want %+v", c.res, c.err, calls[0].res)
	}
}
