package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// TestRequestTimeout: a query service that does not answer in time bounds the request by the
// gateway's request timeout (not the longer per-call one), with an UNAVAILABLE field error.
func TestRequestTimeout(t *testing.T) {
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	sub, err := nc.Subscribe(wire.EndpointOrderByID.In(ns), func(m *nats.Msg) {
		time.Sleep(2 * time.Second) // a stuck service: never answers in time
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet, CallTimeout: 5 * time.Second,
		Security: gateway.Security{RequestTimeout: 200 * time.Millisecond}}))
	defer srv.Close()
	start := time.Now()
	resp, err := http.Post(srv.URL+"/graphql", "application/json", strings.NewReader(`{"query":"{ order(id: \"o-1\") { id } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := new(strings.Builder)
	_, _ = io.Copy(body, resp.Body)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the request took %s: the 200ms request timeout did not bound it", took)
	}
	if resp.StatusCode >= 500 || !strings.Contains(body.String(), "UNAVAILABLE") {
		t.Errorf("answer: %d %s", resp.StatusCode, body)
	}
}
