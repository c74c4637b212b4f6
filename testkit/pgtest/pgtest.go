// Package pgtest gives tests real PostgreSQL databases: from DATABASE_URL when set, otherwise
// from one private ephemeral cluster per test binary (dev/pgcluster). Each test gets its own
// database, cloned from a migrated template and dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/dev/pgcluster"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/testkit/testserver"
)

var (
	server     = testserver.Shared{Env: "DATABASE_URL", Needs: "PostgreSQL", Start: startCluster}
	cluster    *pgcluster.Cluster
	clusterDir string

	templatesMu sync.Mutex
	templates   = map[string]*template{}
)

type template struct {
	once sync.Once
	name string
	err  error
}

// Main runs the package's tests, then atExit (such as natstest.Stop), then stops the private
// cluster, if one was started.
// Call it from TestMain.
func Main(m *testing.M, atExit ...func()) {
	code := m.Run()
	for _, f := range atExit {
		f() // before os.Exit, which skips deferred calls
	}
	if server.Known() != "" && cluster == nil {
		dropTemplates()
	}
	if cluster != nil {
		_ = cluster.Stop()
		_ = os.RemoveAll(clusterDir)
	}
	os.Exit(code)
}

// ServerURL returns a URL of an administrative database on the test server. It skips the test
// under -short.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	return server.URL(tb)
}

// startCluster starts the private cluster of this test binary.
func startCluster() (string, error) {
	reapOrphans()
	var err error
	if clusterDir, err = pgcluster.TempDir("orderflow-pgtest-"); err != nil {
		return "", err
	}
	_ = os.WriteFile(filepath.Join(clusterDir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cluster, err = pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(clusterDir, "pg"), Ephemeral: true}); err != nil {
		return "", err
	}
	return cluster.URL("postgres"), nil
}

// NewDatabase creates an empty database for this test, dropped at cleanup, and returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return clone(tb, "")
}

// MigratedDatabase returns a new database for this test cloned from a template that migrate
// prepared once per test binary under the given name.
func MigratedDatabase(tb testing.TB, name string, migrate func(ctx context.Context, url string) error) string {
	tb.Helper()
	admin := ServerURL(tb)
	templatesMu.Lock()
	t, ok := templates[name]
	if !ok {
		t = &template{name: "tpl_" + name + "_" + randomSuffix()}
		templates[name] = t
	}
	templatesMu.Unlock()
	t.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.err = exec(ctx, admin, "create database "+pgx.Identifier{t.name}.Sanitize()); t.err != nil {
			return
		}
		t.err = migrate(ctx, WithDatabase(admin, t.name))
	})
	if t.err != nil {
		tb.Fatalf("prepare template %s: %v", name, t.err)
	}
	return clone(tb, t.name)
}

func clone(tb testing.TB, tpl string) string {
	tb.Helper()
	admin := ServerURL(tb)
	name := "test_" + randomSuffix()
	stmt := "create database " + pgx.Identifier{name}.Sanitize()
	if tpl != "" {
		stmt += " template " + pgx.Identifier{tpl}.Sanitize()
	}
	ctx := context.Background()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		// 55006: another clone of the same template is being made; they take turns.
		if err = exec(ctx, admin, stmt); !isCode(err, "55006") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		_ = exec(context.Background(), admin, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
	})
	return WithDatabase(admin, name)
}

func dropTemplates() {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	for _, t := range templates {
		_ = exec(context.Background(), server.Known(), "drop database if exists "+pgx.Identifier{t.name}.Sanitize()+" with (force)")
	}
}

// reapOrphans stops the clusters of test binaries that died without cleaning up (killed by a
// timeout, say), so they do not pile up across runs.
func reapOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "orderflow-pgtest-*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(string(owner)); err == nil && syscall.Kill(pid, 0) == nil {
			continue // its test binary still runs
		}
		if pm, err := os.ReadFile(filepath.Join(dir, "pg", "data", "postmaster.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pm), "\n", 2)[0])); err == nil {
				_ = syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// WithDatabase returns base with its database replaced by db.
func WithDatabase(base, db string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Path = "/" + db
	return u.String()
}

func exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// EventStore returns a PostgreSQL event store, migrated, on a fresh database of the test server,
// over a pool of maxConns connections (0: pgx's default) closed with the test.
func EventStore(tb testing.TB, maxConns int32) *postgres.Store {
	tb.Helper()
	return EventStoreAt(tb, NewDatabase(tb), maxConns)
}

// EventStoreAt is EventStore in the database at url (a test's own, from NewDatabase), beside what
// else the test keeps there.
func EventStoreAt(tb testing.TB, url string, maxConns int32) *postgres.Store {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	store := postgres.New(pool, postgres.Options{})
	if err := store.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return store
}

// GenericPlan answers the plan PostgreSQL caches for sql once it has run it a few times on one
// connection (its generic plan: made once, for any parameters, from the tables' sizes then). A
// read model's tables and the event log start empty, so a statement whose generic plan scans a
// table keeps scanning it as the table grows: tests use this to hold each statement to its index.
// settings, if any, run first in the same transaction (the ones sql is planned and run with).
func GenericPlan(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, sql string, settings ...string) (string, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // nothing was written
	params := 0
	for _, m := range regexp.MustCompile(`\$(\d+)`).FindAllStringSubmatch(sql, -1) {
		if n, _ := strconv.Atoi(m[1]); n > params {
			params = n
		}
	}
	for _, s := range append([]string{"set local plan_cache_mode = force_generic_plan"}, settings...) {
		if _, err := tx.Exec(ctx, s); err != nil {
			return "", err
		}
	}
	if _, err := tx.Exec(ctx, "prepare orderflow_generic_plan as "+sql); err != nil {
		return "", fmt.Errorf("prepare: %w", err)
	}
	defer tx.Exec(ctx, "deallocate orderflow_generic_plan") //nolint:errcheck // the transaction ends anyway
	args := strings.TrimSuffix(strings.Repeat("null, ", params), ", ")
	rows, err := tx.Query(ctx, "explain execute orderflow_generic_plan("+args+")")
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}
