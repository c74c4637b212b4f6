package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/internal/natstest"
	"github.com/orderflow/orderflow/internal/wire"
)

// TestLiveQueriesReadAgainAfterAReconnection: announcements may be lost while the gateway's
// NATS connection reconnects, so every live query reads again as soon as it is back (not at its
// next 30 s safety read).
func TestLiveQueriesReadAgainAfterAReconnection(t *testing.T) {
	nc, err := nats.Connect(natstest.URL(t), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	service := natstest.Connect(t)
	ns := natstest.Namespace(t)
	var reads atomic.Int64
	sub, err := service.Subscribe(ns.Subject(wire.EndpointOrderByID), func(m *nats.Msg) {
		reads.Add(1)
		b, _ := json.Marshal(wire.Order{ID: "o-1", CustomerID: "c-1", Status: "PLACED", Lines: []wire.OrderLine{}, UpdatedAt: time.Unix(1, 0).UTC()})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck
	if err := service.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1)+"/graphql", http.Header{"Sec-WebSocket-Protocol": {"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteJSON(map[string]any{"type": "connection_init"})
	_ = ws.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { orderChanged(id: "o-1") { status } }`}})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m struct{ Type string }
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "next" {
			break
		}
	}
	before := reads.Load()
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); reads.Load() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the live query did not read again within 5s of the reconnection")
		}
	}
}
