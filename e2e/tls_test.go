package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/dev/devcerts"
	"github.com/orderflow/orderflow/dev/pgcluster"
	"github.com/orderflow/orderflow/platform"
)

// TestTLSInTransit runs the whole platform with every connection between machines encrypted and
// verified: NATS over mutual TLS (the server configuration `orderflow nats-config --tls` writes,
// certificates `orderflow certs` makes) and PostgreSQL with sslmode=verify-full. An order reaches
// CONFIRMED; a NATS client without TLS, or without a client certificate, is refused; PostgreSQL
// with another authority is refused; the platform's database sessions are encrypted.
func TestTLSInTransit(t *testing.T) {
	t.Parallel()
	certs, other := t.TempDir(), t.TempDir()
	if err := cli.Main(context.Background(), []string{"certs", "--dir", certs, "--servers", "nats=localhost,127.0.0.1;postgres=localhost,127.0.0.1"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := devcerts.Make(other); err != nil { // an authority of someone else's
		t.Fatal(err)
	}
	cert := func(name string) string { return filepath.Join(certs, name) }

	seeds := t.TempDir()
	ns := serveGeneratedConfig(t, seeds, "--tls", certs)
	natsURL := fmt.Sprintf("tls://localhost:%d", ns.Addr().(*net.TCPAddr).Port)
	id, err := platform.IdentityOptions("gateway", filepath.Join(seeds, "gateway.nk"))
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string][]nats.Option{
		"without TLS":                  {},
		"without a client certificate": {nats.RootCAs(cert("ca.pem"))},
	} {
		plain := strings.Replace(natsURL, "tls://", "nats://", 1)
		u := natsURL
		if len(extra) == 0 {
			u = plain
		}
		if nc, err := nats.Connect(u, append(append(extra, nats.Timeout(2*time.Second)), id...)...); err == nil {
			nc.Close()
			t.Errorf("a client %s connected to NATS", name)
		}
	}

	pg, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: t.TempDir(), Ephemeral: true, TLSCert: cert("postgres.pem"), TLSKey: cert("postgres-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	u, err := url.Parse(pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = "localhost:" + u.Port()
	withCA := func(ca string) string {
		v := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {ca}}
		u.RawQuery = v.Encode()
		return u.String()
	}
	if conn, err := pgx.Connect(t.Context(), withCA(filepath.Join(other, "ca.pem"))); err == nil {
		conn.Close(t.Context())
		t.Error("PostgreSQL verified with another authority")
	}
	db := withCA(cert("ca.pem"))

	env := map[string]string{"DATABASE_URL": db, "NATS_URL": natsURL, "ORDERFLOW_NATS_SEEDS": seeds,
		"ORDERFLOW_NATS_CA": cert("ca.pem"), "ORDERFLOW_NATS_CERT": cert("orderflow.pem"), "ORDERFLOW_NATS_KEY": cert("orderflow-key.pem"),
		"ORDERFLOW_LOG_LEVEL": "warn", "ORDERFLOW_JWT_SECRET": testSecret, "PAYMENT_PROVIDER_LATENCY": "1ms"}
	base := runAll(t, t.TempDir(), env, io.Discard)
	confirmOne(t, base, "tls")

	conn, err := pgx.Connect(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sessions, encrypted int
	if err := conn.QueryRow(t.Context(), `select count(*), count(*) filter (where s.ssl) from pg_stat_activity a join pg_stat_ssl s using (pid)
		where a.backend_type = 'client backend'`).Scan(&sessions, &encrypted); err != nil {
		t.Fatal(err)
	}
	if sessions < 2 || encrypted != sessions {
		t.Errorf("%d of %d database sessions encrypted; want all (and the platform's among them)", encrypted, sessions)
	}
}

// TestNATSClusterTLS: with --routes, the generated configuration makes a cluster whose nodes
// connect to each other over mutual TLS with the same certificates; nats-server loads it.
func TestNATSClusterTLS(t *testing.T) {
	t.Parallel()
	certs, dir := t.TempDir(), t.TempDir()
	if err := cli.Main(context.Background(), []string{"certs", "--dir", certs, "--servers", "nats=localhost,127.0.0.1"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := cli.Main(context.Background(), []string{"nats-config", "--dir", dir, "--store-dir", filepath.Join(dir, "js"), "--tls", certs, "--routes", "nats://nats-1:6222,nats://nats-2:6222"},
		func(string) string { return "" }, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatalf("nats-server does not load the generated cluster config: %v", err)
	}
	if len(opts.Routes) != 2 || opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || opts.TLSConfig == nil {
		t.Errorf("cluster: %d routes, route TLS %v, client TLS %v; want two routes over mutual TLS", len(opts.Routes), opts.Cluster.TLSConfig != nil, opts.TLSConfig != nil)
	}
}
