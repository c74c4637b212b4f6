package projections_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/testkit/logbuf"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// workerEnv names the database a child process of this test binary works on as a projector
// worker (runWorker) instead of running tests; writeOnlyEnv set, its tally is a writeOnly one.
const (
	workerEnv    = "ORDERFLOW_TEST_PROJECTOR_WORKER"
	writeOnlyEnv = "ORDERFLOW_TEST_PROJECTOR_WRITE_ONLY"
)

// fencingOptions are the workers' options in TestPausedWorkerLosesItsPartitions: short claims, so
// that the test is short.
func fencingOptions(log *slog.Logger) projections.Options {
	return projections.Options{Log: log, BatchSize: 20, Partitions: 4, ClaimTTL: 1500 * time.Millisecond, Heartbeat: 250 * time.Millisecond}
}

// runWorker runs the tally projection of the PostgreSQL event store at url until SIGTERM: a
// projector worker in a process of its own, to be stopped and continued with signals. Each batch
// takes 100 ms inside its transaction, so that a SIGSTOP most likely finds it mid-commit (or,
// write-only, before it sends its batch's transaction: it then sends it at an epoch since moved).
func runWorker(url string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	events, err := pgxpool.New(ctx, url)
	if err != nil {
		panic(err)
	}
	pool, err := pgschema.Open(ctx, url, "rm", 0)
	if err != nil {
		panic(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var proj projections.Projection = &tally{slow: 100 * time.Millisecond}
	if os.Getenv(writeOnlyEnv) != "" {
		proj = writeOnly{&tally{slow: 100 * time.Millisecond}}
	}
	p := projections.New(postgres.New(events, postgres.Options{}), pool, proj, fencingOptions(log))
	_ = p.Run(ctx)
}

// TestPausedWorkerLosesItsPartitions: two projector workers in processes of their own, under a
// steady stream of events. One is frozen with SIGSTOP (most likely inside a commit, its rows
// locked): the other takes its partitions within a few seconds and the read model keeps moving
// while it is frozen. Continued, the frozen one commits nothing it no longer holds (its epochs
// moved): every event is applied exactly once. The frozen one sends a batch's transaction in one
// round trip (writeOnly), the other in two: both ways of committing are fenced.
func TestPausedWorkerLosesItsPartitions(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	store := pgtest.EventStoreAt(t, url, 8)
	pool, err := pgschema.Open(t.Context(), url, "rm", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := projections.New(store, pool, &tally{}, fencingOptions(quiet)).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var logs [2]bytes.Buffer
	var workers [2]*exec.Cmd
	for i := range workers {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+url)
		if i == 0 {
			cmd.Env = append(cmd.Env, writeOnlyEnv+"=1")
		}
		cmd.Stderr = &logs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		workers[i] = cmd
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGCONT)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("worker %d:\n%s", i, logs[i].String())
			}
		})
	}
	// Events keep coming, to 8 streams, throughout. (Each append runs to its answer: one whose
	// context ends may still be committed by its group, and would go uncounted.)
	var stopped atomic.Bool
	stopAppending := func() { stopped.Store(true) }
	var mu sync.Mutex
	appended := map[string]int{}
	var last eventstore.Position
	appending := make(chan struct{})
	go func() {
		defer close(appending)
		for i := 0; !stopped.Load(); i++ {
			stream := fmt.Sprintf("t-%d", i%8)
			res, err := store.Append(context.WithoutCancel(t.Context()), stream, eventstore.Any(), []eventstore.EventData{{ID: eventstore.DeriveID(fmt.Sprintf("e-%d", i), 0), Type: "t.v1", Data: []byte(`{}`)}})
			if err != nil {
				t.Errorf("append: %v", err)
				return
			}
			mu.Lock()
			appended[stream]++
			last = res.Position
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	lastPos := func() eventstore.Position {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	waitOwners(t, pool, 10*time.Second, func(o map[string]int) bool { return len(o) == 2 && o[""] == 0 })
	waitPosition(t, pool, lastPos())

	frozen := workers[0].Process
	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := waitOwners(t, pool, 10*time.Second, func(o map[string]int) bool { return len(o) == 1 && o[""] == 0 })
	t.Logf("the partitions of the frozen worker were taken after %s", took)
	waitPosition(t, pool, lastPos()) // the read model moves while one worker is frozen
	time.Sleep(time.Second)
	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitOwners(t, pool, 10*time.Second, func(o map[string]int) bool { return len(o) == 2 && o[""] == 0 })
	stopAppending()
	<-appending
	waitPosition(t, pool, lastPos())
	mu.Lock()
	defer mu.Unlock()
	for stream, n := range appended {
		if got := count(t, pool, stream); got != n {
			t.Errorf("%s: %d events applied, %d appended (a frozen worker committed after it lost its partition, or an event was lost)", stream, got, n)
		}
	}
}

// TestCommitChecksTheEpoch: a worker that has not noticed that its partitions were taken (its
// next heartbeat is far off) commits nothing there, even where the checkpoints still read what it
// saved: the new owner claimed them at a new epoch.
func TestCommitChecksTheEpoch(t *testing.T) {
	t.Parallel()
	for name, proj := range map[string]projections.Projection{"two round trips": &tally{}, "one round trip": writeOnly{&tally{}}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			commitChecksTheEpoch(t, proj)
		})
	}
}

func commitChecksTheEpoch(t *testing.T, proj projections.Projection) {
	pool, store := setup(t)
	p := projections.New(store, pool, proj, projections.Options{Log: quiet, Partitions: 2, ClaimTTL: time.Hour, Heartbeat: time.Hour})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	waitPosition(t, pool, appendN(t, store, "t-a", 3, `{}`))
	// Another worker takes both partitions, as it would after their claims expired.
	if _, err := pool.Exec(t.Context(), `update projection_claims set owner = 'another', expires_at = now() + interval '1 hour';
update projection_checkpoints set epoch = epoch + 1`); err != nil {
		t.Fatal(err)
	}
	appendN(t, store, "t-a", 4, `{"late":1}`)
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got := count(t, pool, "t-a"); got != 3 {
			t.Fatalf("%d events applied after the partitions were taken, want still 3", got)
		}
	}
}

// TestAMigrationBesideBatchesDoesNotDeadlock: a worker that starts migrates the read model (the
// checkpoints' table altered, the read model's indexes made if missing) while another commits
// batches; both take their locks in the same order, so neither ever waits on the other in a
// circle (a one-round-trip batch that wrote the read model before moving its checkpoints
// deadlocked with such a migration, which the server broke after a second, each time).
func TestAMigrationBesideBatchesDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	proj := writeOnly{&tally{indexed: true}}
	// A deadlock fails one of the two transactions at once: the migration (an error here), or
	// the batch, which the projector logs as it restarts from its checkpoint.
	var logged logbuf.Buffer
	p := projections.New(store, pool, proj, projections.Options{Log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn})), Partitions: 4, Linger: -1})
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := start(t, p)
	defer stop()
	var last eventstore.Position
	for i := range 30 {
		last = appendN(t, store, fmt.Sprintf("t-%d", i%8), 20, fmt.Sprintf(`{"round":%d}`, i))
		if err := projections.New(store, pool, proj, projections.Options{Log: quiet, Partitions: 4}).Migrate(t.Context()); err != nil {
			t.Fatalf("migration %d beside the batches: %v", i, err)
		}
	}
	waitPosition(t, pool, last) // every batch committed: any that failed was logged before its retry
	if l := logged.String(); l != "" {
		t.Fatalf("the projector's batches failed beside the migrations:\n%s", l)
	}
}

// TestARefusedMoveNamesThePartitionThatRefused: a batch's move of its checkpoints names the
// partition that refused it and why (taken at another epoch: fenced; saved elsewhere: moved),
// whichever of the batch's partitions it is (one the same statement moved before it is not the
// refusal), and moves none of them.
func TestARefusedMoveNamesThePartitionThatRefused(t *testing.T) {
	t.Parallel()
	pool, store := setup(t)
	if err := projections.New(store, pool, &tally{}, projections.Options{Log: quiet, Partitions: 4}).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Partition 2 was taken by another worker (its epoch moved); partition 3 saved elsewhere (a
	// rebuild's swap) at this worker's epoch.
	if _, err := pool.Exec(t.Context(), `update projection_checkpoints set epoch = case part when 2 then 2 else 1 end,
commit_position = case part when 3 then 9 else 0 end, prepare_position = case part when 3 then 9 else 0 end where name = 'tally'`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		parts []int
		want  error
		names string
	}{
		{[]int{0, 2}, projections.ErrFenced, "partition 2 at epoch 2"},
		{[]int{2, 0}, projections.ErrFenced, "partition 2 at epoch 2"},
		{[]int{1, 3}, projections.ErrCheckpointMoved, "partition 3 saved at 9/9"},
		{[]int{0, 1, 2, 3}, projections.ErrFenced, "partition 2 at epoch 2"},
	} {
		n := len(c.parts)
		err := projections.Advance(t.Context(), pool, "tally", c.parts, fill(n, int64(1)), fill(n, uint64(0)), fill(n, uint64(5)))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("moving %v: %v, want %v naming %q", c.parts, err, c.want, c.names)
		}
	}
	var moved int
	if err := pool.QueryRow(t.Context(), `select count(*) from projection_checkpoints where name = 'tally' and commit_position = 5`).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if moved != 0 {
		t.Errorf("%d checkpoints moved by refused moves", moved)
	}
	if err := projections.Advance(t.Context(), pool, "tally", []int{0, 1}, fill(2, int64(1)), fill(2, uint64(0)), fill(2, uint64(5))); err != nil {
		t.Errorf("moving the partitions this worker holds: %v", err)
	}
}

func fill[T any](n int, v T) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}
