package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// TestDatabaseOutageIs503: while the database refuses connections (as while PostgreSQL restarts),
// a command is answered 503 with Retry-After, not 500; once it is back, the same command works.
func TestDatabaseOutageIs503(t *testing.T) {
	t.Parallel()
	base, db := startPlatformDB(t)
	order := `{"customerId":"c-1","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`
	if status, _, b := call(t, "POST", base+"/api/v1/orders", order, nil); status != http.StatusCreated {
		t.Fatalf("before: %d %s", status, b)
	}
	admin, err := pgx.Connect(t.Context(), pgtest.WithDatabase(db, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	cfg, err := pgx.ParseConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	name := cfg.Database
	outage := func(on bool) {
		t.Helper()
		if _, err := admin.Exec(context.Background(), `alter database `+pgx.Identifier{name}.Sanitize()+` allow_connections `+map[bool]string{true: "false", false: "true"}[on]); err != nil {
			t.Fatal(err)
		}
		if on {
			if _, err := admin.Exec(context.Background(), `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, name); err != nil {
				t.Fatal(err)
			}
			// Backends end a moment after they are told to: wait until none serves the database.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(context.Background(), `select count(*) from pg_stat_activity where datname = $1`, name).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d backends still serve %s 10 s after they were terminated", n, name)
				}
			}
		}
	}
	outage(true)
	t.Cleanup(func() { outage(false) })
	for i := range 5 {
		status, h, b := call(t, "POST", base+"/api/v1/orders", order, nil)
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("during the outage, try %d: %d %s (Retry-After %q); want 503 problem+json with Retry-After", i, status, b, h.Get("Retry-After"))
		}
	}
	outage(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, b := call(t, "POST", base+"/api/v1/orders", order, nil)
		if status == http.StatusCreated {
			break
		}
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("after the outage: %d %s", status, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNATSOutageIs503AtOnce: while the gateway's NATS connection is down, a command is answered
// 503 with Retry-After at once, not after the call's whole timeout.
func TestNATSOutageIs503AtOnce(t *testing.T) {
	t.Parallel()
	srv, err := natsrv.Start(natsrv.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const callTimeout = 10 * time.Second
	keys, err := gateway.NewIdempotencyKeys(t.Context(), nc, "")
	if err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Log: slog.New(slog.DiscardHandler), CallTimeout: callTimeout, Idempotency: keys}))
	defer h.Close()
	srv.Stop()
	for nc.IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	for _, key := range []string{"", "key-1"} { // the command call, and the idempotency key store before it
		start := time.Now()
		status, hd, b := call(t, "POST", h.URL+"/api/v1/orders", `{"customerId":"c-1","lines":[{"productId":"p","quantity":1,"unitPriceCents":1}]}`,
			map[string]string{"Authorization": "", "Idempotency-Key": key})
		if took := time.Since(start); status != http.StatusServiceUnavailable || hd.Get("Retry-After") == "" || took > callTimeout/2 {
			t.Fatalf("with NATS down (key %q): %d %s after %v (Retry-After %q); want 503 with Retry-After at once", key, status, b, took, hd.Get("Retry-After"))
		}
	}
}
