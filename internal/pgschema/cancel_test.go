package pgschema_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// TestACancelledPipelineHoldsNoLock: a pipeline whose context ends while it is being written
// (a lock taken by its first statement, a large second one half sent) does not leave the server
// holding the lock, waiting for the rest of a message that will never come: the lock is free
// again within a second, and the pool goes on working.
func TestACancelledPipelineHoldsNoLock(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	pool, err := pgschema.Open(t.Context(), url, "c", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	other, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())

	big := strings.Repeat("x", 64<<20) // long enough to write that the cancellation falls inside it
	ctx, cancel := context.WithCancel(t.Context())
	b := &pgx.Batch{}
	b.Queue(`select pg_advisory_xact_lock(4242)`)
	b.Queue(`select length($1::text)`, big)
	locked := make(chan struct{})
	go func() {
		defer close(locked)
		for ctx.Err() == nil {
			var held bool
			if err := other.QueryRow(t.Context(), `select exists (select 1 from pg_locks where locktype = 'advisory' and objid = 4242 and granted)`).Scan(&held); err != nil || held {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- pool.SendBatch(ctx, b).Close() }()
	select {
	case <-locked: // the first statement ran: the second is being written
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline's lock was never taken")
	}
	cancel()
	if err := <-done; err == nil {
		t.Log("the pipeline was carried out whole (the cancel request came after its last statement)")
	} else {
		t.Logf("the pipeline: %v", err)
	}
	start := time.Now()
	for {
		var free bool
		if err := other.QueryRow(t.Context(), `select pg_try_advisory_lock(4242)`).Scan(&free); err != nil {
			t.Fatal(err)
		}
		if free {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the lock of a cancelled pipeline still held after %s", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("lock free %s after the cancellation", time.Since(start))
	var one int
	if err := pool.QueryRow(t.Context(), `select 1`).Scan(&one); err != nil || one != 1 {
		t.Errorf("the pool after a cancelled pipeline: %d, %v", one, err)
	}
}

// TestACancelledStatementEndsPromptly: a statement whose context ends is cancelled by the server
// at once (it does not run on, nor does its caller wait CancelGrace), and its connection serves
// the next statement.
func TestACancelledStatementEndsPromptly(t *testing.T) {
	t.Parallel()
	pool, err := pgschema.Open(t.Context(), pgtest.NewDatabase(t), "c", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = pool.Exec(ctx, `select pg_sleep(30)`)
	if took := time.Since(start); err == nil || took > time.Second {
		t.Errorf("a 30-s statement whose context ended after 200 ms: %v after %s, want an error within a second", err, took)
	}
	var pid1, pid2 int
	if err := pool.QueryRow(t.Context(), `select pg_backend_pid()`).Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel2()
	_, _ = pool.Exec(ctx2, `select pg_sleep(30)`)
	if err := pool.QueryRow(t.Context(), `select pg_backend_pid()`).Scan(&pid2); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 {
		t.Errorf("the connection was replaced after a cancelled statement (backend %d, then %d): want it kept", pid1, pid2)
	}
}
