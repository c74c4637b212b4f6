// Package natstest gives tests a real NATS server: NATS_URL when set, otherwise one embedded
// server with JetStream per test binary.
package natstest

import (
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/testkit/testserver"
	"github.com/orderflow/orderflow/wire"
)

var (
	srv    *natsrv.Server
	dir    string
	server = testserver.Shared{Env: "NATS_URL", Needs: "NATS", Start: func() (string, error) {
		var err error
		if dir, err = os.MkdirTemp("", "orderflow-natstest-"); err != nil {
			return "", err
		}
		if srv, err = natsrv.Start(natsrv.Options{StoreDir: dir}); err != nil {
			return "", err
		}
		return srv.URL(), nil
	}}
)

// URL returns the test server's URL. It skips the test under -short.
func URL(tb testing.TB) string {
	tb.Helper()
	return server.URL(tb)
}

// Connect returns a connection to the test server, closed at cleanup.
func Connect(tb testing.TB) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(URL(tb))
	if err != nil {
		tb.Fatalf("connect to nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Namespace returns a NATS subject namespace of this test's own, so that tests sharing a server
// (NATS_URL) never answer each other's requests.
func Namespace(tb testing.TB) wire.Namespace {
	return wire.Namespace("t" + strings.ReplaceAll(uuid.NewString(), "-", ""))
}

// Stop shuts down the embedded server, if one was started. Call it at the end of TestMain.
func Stop() {
	if srv != nil {
		srv.Stop()
		_ = os.RemoveAll(dir)
	}
}

// Main runs a package's tests, then Stop: func TestMain(m *testing.M) { natstest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}
