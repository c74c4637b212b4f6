package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartStopAndAdopt(t *testing.T) {
	c, dir := startTest(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "select 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("select 1 = %d, %v", n, err)
	}
	conn.Close(ctx)
	// A second Start on the same directory adopts the running cluster (a killed dev run).
	again, err := Start(context.Background(), Options{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		t.Fatal(err)
	}
	if again.URL("x") != c.URL("x") {
		t.Errorf("adopted cluster at %s, want %s", again.URL("x"), c.URL("x"))
	}
	if err := again.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := running(filepath.Join(dir, "pg", "data")); ok {
		t.Error("cluster still running after Stop")
	}
}

func TestTraversable(t *testing.T) {
	dir, err := os.MkdirTemp("", "traversable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	if !traversable(dir, 65534) {
		t.Errorf("%s (0755 up to /tmp) should be traversable by nobody", dir)
	}
	if traversable(filepath.Join(closed, "x"), 65534) {
		t.Errorf("%s (0700, not nobody's) should not be traversable by nobody", closed)
	}
}

// TestSuperviseStartsADeadClusterAgain: a postmaster killed with SIGKILL is started again on the
// same port (its URL keeps working); a postmaster someone else started on the data directory is
// the one Stop stops.
func TestSuperviseStartsADeadClusterAgain(t *testing.T) {
	c, _ := startTest(t)
	var said []string
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(t.Context())
	go c.Supervise(ctx, func(msg string, _ ...any) { mu.Lock(); said = append(said, msg); mu.Unlock() })
	select1 := func() error {
		cctx, ccancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer ccancel()
		conn, err := pgx.Connect(cctx, c.URL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(cctx)
		return conn.QueryRow(cctx, "select 1").Scan(new(int))
	}
	first, _, _ := running(c.data)
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pid, _, ok := running(c.data)
		if ok && pid != first && select1() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back within 60s: %v", said)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	if len(said) == 0 || !strings.Contains(said[0], "exited") {
		t.Errorf("the death was not said: %v", said)
	}
	mu.Unlock()

	// Someone restarts it from outside while nobody supervises: Stop stops that one.
	cancel()
	second, _, _ := running(c.data)
	_ = syscall.Kill(second, syscall.SIGKILL)
	for syscall.Kill(second, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(c.data, "postmaster.pid"))
	// The killed postmaster's children leave its shared memory a moment after it died; until
	// then a new postmaster refuses the data directory and exits: try again, as Supervise does.
	other := &Cluster{dir: c.dir, data: c.data, bin: c.bin, cred: c.cred, port: c.port, args: c.args}
	for attempt := 1; ; attempt++ {
		err := other.launch()
		if err == nil {
			err = other.wait(t.Context(), 60*time.Second)
		}
		if err == nil {
			break
		}
		if attempt == 20 {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if pid, _, ok := running(c.data); ok {
		t.Errorf("postmaster %d still serves the data directory after Stop", pid)
	}
}

// startTest starts an ephemeral cluster in a new directory, both gone when the test ends; it skips
// the test under -short or without PostgreSQL's binaries.
func startTest(t *testing.T) (*Cluster, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	if _, err := BinDir(); err != nil {
		t.Skip(err)
	}
	dir, err := TempDir("orderflow-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c, err := Start(t.Context(), Options{Dir: filepath.Join(dir, "pg"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c, dir
}
