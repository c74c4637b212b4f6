package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands/order"
	"github.com/orderflow/orderflow/dev/natstest"
	model "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/memory"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	natstest.Stop()
	os.Exit(code)
}

var lines = []wire.OrderLine{{ProductID: "sku-1", Quantity: 2, UnitPriceCents: 1250}}

func place(id, cmd string) wire.PlaceOrder {
	return wire.PlaceOrder{Meta: wire.CommandMeta{CommandID: cmd, CorrelationID: "corr-" + cmd}, OrderID: id, CustomerID: "c1", Lines: lines}
}

func TestPlaceIsIdempotentByCommandID(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := order.Handlers{Store: store}
	first, err := h.Place(t.Context(), place("o1", "cmd-1"))
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	again, err := h.Place(t.Context(), place("o1", "cmd-1"))
	if err != nil {
		t.Fatalf("place again with the same command id: %v", err)
	}
	if again != first {
		t.Errorf("retry answered %+v, want the first answer %+v", again, first)
	}
	events, err := store.ReadStream(t.Context(), model.Stream("o1"), eventstore.ReadStreamOptions{})
	if err != nil || len(events) != 1 {
		t.Fatalf("stream has %d events (err %v), want 1", len(events), err)
	}
	if m := events[0].Metadata; m.CausationID != "cmd-1" || m.CorrelationID != "corr-cmd-1" {
		t.Errorf("metadata = %+v, want causation cmd-1 and correlation corr-cmd-1", m)
	}
	if _, err := h.Place(t.Context(), place("o1", "cmd-2")); !errors.Is(err, model.ErrAlreadyPlaced) {
		t.Errorf("placing o1 with a new command id: err = %v, want ErrAlreadyPlaced", err)
	}
}

func TestConcurrentCommandsOnOneOrder(t *testing.T) {
	t.Parallel()
	store := memory.New()
	h := order.Handlers{Store: store}
	if _, err := h.Place(t.Context(), place("o2", "p")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.Cancel(context.Background(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "c" + string(rune('a'+i))}, OrderID: "o2"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcomes["ok"]++
			case errors.Is(err, model.ErrAlreadyCancelled):
				outcomes["already"]++
			default:
				outcomes[err.Error()]++
			}
		}()
	}
	wg.Wait()
	if outcomes["ok"] != 1 || outcomes["already"] != 9 {
		t.Errorf("10 concurrent cancels: %v, want 1 ok and 9 already cancelled", outcomes)
	}
}

func TestCancelUnknownOrder(t *testing.T) {
	t.Parallel()
	h := order.Handlers{Store: memory.New()}
	if _, err := h.Cancel(t.Context(), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "x"}, OrderID: "missing"}); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestServedOnNATSMicro(t *testing.T) {
	t.Parallel()
	nc := natstest.Connect(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ns := natstest.Namespace(t)
	svc, err := order.Register(ctx, nc, ns, slog.New(slog.NewTextHandler(io.Discard, nil)), order.Handlers{Store: memory.New()})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	id := "nats-" + time.Now().Format("150405.000000000")
	got, err := rpc.Call[wire.CommandReply](ctx, nc, ns.Subject(wire.EndpointPlaceOrder), place(id, "cmd-"+id))
	if err != nil || got.ID != id || got.Position == "" {
		t.Fatalf("place over NATS = %+v, %v", got, err)
	}
	bad := place(id+"-bad", "cmd-bad-"+id)
	bad.Lines = []wire.OrderLine{{ProductID: "p", Quantity: -1, UnitPriceCents: 5}}
	_, err = rpc.Call[wire.CommandReply](ctx, nc, ns.Subject(wire.EndpointPlaceOrder), bad)
	var rerr *rpc.Error
	if !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid || rerr.Field != "lines[0].quantity" {
		t.Fatalf("invalid place over NATS: err = %v, want invalid on lines[0].quantity", err)
	}
	_, err = rpc.Call[wire.CommandReply](ctx, nc, ns.Subject(wire.EndpointCancelOrder), wire.CancelOrder{Meta: wire.CommandMeta{CommandID: "x-" + id}, OrderID: "missing-" + id})
	if !errors.As(err, &rerr) || rerr.Code != rpc.CodeNotFound {
		t.Fatalf("cancel unknown over NATS: err = %v, want not_found", err)
	}
	// Discovery: the service answers $SRV.INFO with its endpoints.
	msg, err := nc.Request("$SRV.INFO."+wire.ServiceOrderCommands+"."+svc.Info().ID, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("service info: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil || len(info.Endpoints) != 6 {
		t.Fatalf("service info = %s (err %v), want 6 endpoints", msg.Data, err)
	}
}
