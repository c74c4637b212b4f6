package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartStopAndAdopt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	if _, err := BinDir(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	ctx := t.Context()
	c, err := Start(ctx, Options{Dir: filepath.Join(dir, "pg"), Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
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
