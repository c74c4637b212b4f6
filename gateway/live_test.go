package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/gateway"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
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
	sub, err := service.Subscribe(wire.EndpointOrderByID.In(ns), func(m *nats.Msg) {
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

// subscribe opens a graphql-transport-ws connection to srv, says connection_init and subscribes
// to query; it returns the socket after the acknowledgement.
func subscribe(t *testing.T, srvURL, query string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srvURL, "http", "ws", 1)+"/graphql", http.Header{"Sec-WebSocket-Protocol": {"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.WriteJSON(map[string]any{"type": "connection_init"})
	_ = ws.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query}})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack struct{ Type string }
	if err := ws.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("ack: %+v %v", ack, err)
	}
	return ws
}

// next reads the next message that is not a ping or pong.
func next(t *testing.T, ws *websocket.Conn) (typ string, payload json.RawMessage) {
	t.Helper()
	for {
		var m struct {
			Type    string
			Payload json.RawMessage
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type != "ping" && m.Type != "pong" {
			return m.Type, m.Payload
		}
	}
}

// TestMyOrdersChangedFollowsOnlyTheNewestPage: a customer with ever more orders; the live query
// follows its 50 newest only (what it keeps is bounded whatever the history): a change to an
// order that left the page causes no read, a change to one on it does.
func TestMyOrdersChangedFollowsOnlyTheNewestPage(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	var mu sync.Mutex
	count := 1 // the customer has orders o-1 … o-count
	var asked [][]string
	mk := func(i int) wire.Order {
		return wire.Order{ID: fmt.Sprintf("o-%d", i), CustomerID: "c-1", Status: "PLACED", Lines: []wire.OrderLine{}, UpdatedAt: time.Unix(int64(i), 0).UTC()}
	}
	for endpoint, h := range map[string]nats.MsgHandler{
		wire.EndpointListOrders.Name: func(m *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			page := wire.OrderPage{Orders: []wire.Order{}}
			for i := count; i >= 1 && len(page.Orders) < 50; i-- {
				page.Orders = append(page.Orders, mk(i))
			}
			b, _ := json.Marshal(page)
			_ = m.Respond(b)
		},
		wire.EndpointOrdersByIDs.Name: func(m *nats.Msg) {
			var req wire.OrdersByIDs
			_ = json.Unmarshal(m.Data, &req)
			mu.Lock()
			asked = append(asked, req.IDs)
			mu.Unlock()
			out := []wire.Order{}
			for _, id := range req.IDs {
				var i int
				fmt.Sscanf(id, "o-%d", &i)
				o := mk(i)
				o.Status, o.UpdatedAt = "CANCELLED", o.UpdatedAt.Add(time.Hour)
				out = append(out, o)
			}
			b, _ := json.Marshal(out)
			_ = m.Respond(b)
		},
	} {
		sub, err := nc.Subscribe(ns.Subject(endpoint), h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	_ = nc.Flush()
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet}))
	t.Cleanup(srv.Close)
	ws := subscribe(t, srv.URL, `subscription { myOrdersChanged { id status } }`)
	announce := func(keys ...string) {
		b, _ := json.Marshal(wire.Progress{Projection: "orders", Position: "1-1", Changed: keys})
		if err := nc.Publish(ns.Progress("orders"), b); err != nil {
			t.Fatal(err)
		}
	}
	order := func() (id, status string) {
		typ, p := next(t, ws)
		var d struct {
			Data struct{ MyOrdersChanged struct{ ID, Status string } }
		}
		if typ != "next" || json.Unmarshal(p, &d) != nil {
			t.Fatalf("%s %s", typ, p)
		}
		return d.Data.MyOrdersChanged.ID, d.Data.MyOrdersChanged.Status
	}
	if id, _ := order(); id != "o-1" {
		t.Fatalf("first: %s", id)
	}
	for i := 2; i <= 120; i++ { // 119 new orders, one at a time
		mu.Lock()
		count = i
		mu.Unlock()
		announce("customer:anonymous", fmt.Sprintf("order:o-%d", i)) // the caller, authentication off
		if id, _ := order(); id != fmt.Sprintf("o-%d", i) {
			t.Fatalf("new order %d: got %s", i, id)
		}
	}
	announce("order:o-1")   // left the page long ago: nothing to read
	announce("order:o-100") // on the page: read, and sent
	if id, status := order(); id != "o-100" || status != "CANCELLED" {
		t.Fatalf("after o-100 moved: %s %s", id, status)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ids := range asked {
		if slices.Contains(ids, "o-1") {
			t.Errorf("read o-1, which left the newest 50: the live query still follows it (asked %v)", asked)
		}
	}
}

// TestLiveSubscriptionsAreBounded: past its limit a gateway refuses a new subscription with
// UNAVAILABLE; one that closes makes room.
func TestLiveSubscriptionsAreBounded(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ns := natstest.Namespace(t)
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: ns, Log: quiet, Security: gateway.Security{MaxSubscriptions: 2}}))
	t.Cleanup(srv.Close)
	const q = `subscription { orderChanged(id: "nowhere") { status } }` // no order service: no answer, it waits
	// Three at once: the gateway starts their resolvers in whatever order, so any one of them may
	// be the one refused; exactly one is.
	socks := []*websocket.Conn{subscribe(t, srv.URL, q), subscribe(t, srv.URL, q), subscribe(t, srv.URL, q)}
	refused := make(chan int, 3)
	for i, ws := range socks {
		go func() {
			_ = ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			var m struct {
				Type    string
				Payload json.RawMessage
			}
			if ws.ReadJSON(&m) == nil && strings.Contains(string(m.Payload), `"UNAVAILABLE"`) {
				refused <- i
				return
			}
			refused <- -1 // nothing within 3 s: it is live, waiting for its order
		}()
	}
	var which []int
	for range socks {
		if i := <-refused; i >= 0 {
			which = append(which, i)
		}
	}
	if len(which) != 1 {
		t.Fatalf("%d of 3 subscriptions refused with a limit of 2 (%v), want exactly 1", len(which), which)
	}
	first := socks[(which[0]+1)%3] // a live one
	_ = first.WriteJSON(map[string]any{"id": "1", "type": "complete"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws := subscribe(t, srv.URL, q)
		_ = ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var m struct{ Type string }
		if err := ws.ReadJSON(&m); err != nil { // no error within 300 ms: it is live
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after one subscription ended: %s", m.Type)
		}
		ws.Close()
	}
}

// TestWebsocketWithoutInitIsClosed: a socket that never says connection_init does not stay open.
func TestWebsocketWithoutInitIsClosed(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	srv := httptest.NewServer(gateway.New(gateway.Options{NC: nc, Namespace: natstest.Namespace(t), Log: quiet}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1)+"/graphql", http.Header{"Sec-WebSocket-Protocol": {"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var timeout interface{ Timeout() bool }
			if errors.As(err, &timeout) && timeout.Timeout() {
				t.Fatalf("still open after %v without connection_init", time.Since(start))
			}
			return
		}
	}
}
