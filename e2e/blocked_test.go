package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	domainorder "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// TestABlockedReadModelAnswersAtOnce: someone holds the orders read model's table locked (a
// migration, a VACUUM FULL, an operator's LOCK TABLE). A read with a position past what the model
// shows answers STALE_READ with the positions; a read without one answers UNAVAILABLE at once
// (its wait for the lock is bounded); a burst of such reads does not take the order query service
// down; the catalog read model and the saga keep going. Once the lock goes, the order is read.
func TestABlockedReadModelAnswersAtOnce(t *testing.T) {
	t.Parallel()
	base, db := startPlatformDB(t, "targets", "all", "ORDERFLOW_CONSISTENCY_TIMEOUT", "1s", "PAYMENT_PROVIDER_LATENCY", "1ms")
	ctx := t.Context()
	post := func(path, body string) map[string]string {
		t.Helper()
		s, _, b := call(t, "POST", base+path, body, nil)
		if s >= 300 {
			t.Fatalf("POST %s: %d %s", path, s, b)
		}
		return answer(t, b)
	}
	post("/api/v1/products", `{"productId":"lamp","sku":"LAMP-1","name":"Lamp","priceCents":500}`)
	post("/api/v1/products/lamp/restock", `{"quantity":100}`)
	first := post("/api/v1/orders", `{"orderId":"before","customerId":"c-1","lines":[{"productId":"lamp","quantity":1}]}`)
	readOrder(t, base, "before", first["position"])

	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	lock, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.Background()) //nolint:errcheck
	if _, err := lock.Exec(ctx, `lock table orders.orders in access exclusive mode`); err != nil {
		t.Fatal(err)
	}
	during := post("/api/v1/orders", `{"orderId":"during","customerId":"c-1","lines":[{"productId":"lamp","quantity":1}]}`)

	q := `query($id: ID!) { order(id: $id) { id status } }`
	start := time.Now()
	a := graphQL(t, base, q, map[string]any{"id": "during"}, map[string]string{"X-Consistency-Position": during["position"]})
	if errorCode(a) != "STALE_READ" || a.Errors[0].Extensions["wanted"] != during["position"] || a.Errors[0].Extensions["reached"] == nil {
		t.Errorf("a read at the position of an order the blocked model cannot show: %+v, want STALE_READ with the positions", a.Errors)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("STALE_READ took %v", d)
	}
	start = time.Now()
	if a := graphQL(t, base, q, map[string]any{"id": "before"}, nil); errorCode(a) != "UNAVAILABLE" {
		t.Errorf("a read of the blocked model without a position: %s %+v, want UNAVAILABLE", a.Data["order"], a.Errors)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("UNAVAILABLE took %v, want it at once", d)
	}
	// A burst of reads: each is answered, within bounds; none is an internal error.
	var wg sync.WaitGroup
	codes := make([]string, 300)
	start = time.Now()
	for i := range codes {
		wg.Go(func() {
			a := graphQL(t, base, q, map[string]any{"id": fmt.Sprint("any-", i)}, nil)
			codes[i] = errorCode(a)
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != "UNAVAILABLE" {
			t.Errorf("read %d of the burst: %q, want UNAVAILABLE", i, c)
			break
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("300 reads of a blocked model took %v", d)
	}

	// The catalog keeps going: a restock is read at its position.
	restock := post("/api/v1/products/lamp/restock", `{"quantity":5}`)
	if a := graphQL(t, base, `{ product(id: "lamp") { onHand } }`, nil, map[string]string{"X-Consistency-Position": restock["position"]}); len(a.Errors) > 0 || string(a.Data["product"]) != `{"onHand":105}` {
		t.Errorf("the catalog while the orders model is blocked: %s %+v", a.Data["product"], a.Errors)
	}
	// The saga keeps going: the order placed during the block is confirmed, in the log.
	store := pgtest.EventStoreAt(t, db, 2)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		events, err := store.ReadStream(ctx, domainorder.Stream("during"), eventstore.ReadStreamOptions{})
		if err == nil && events[len(events)-1].Type == domainorder.TypeConfirmed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order placed while the orders model was blocked is not confirmed after 20s (%d events, %v)", len(events), err)
		}
	}
	if status, _, b := call(t, "GET", base+"/readyz", "", nil); status != http.StatusOK {
		t.Errorf("readyz while a read model is blocked: %d %s", status, b)
	}

	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if o := readOrder(t, base, "during", during["position"]); o.ID != "during" {
		t.Errorf("after the lock: %+v", o)
	}
}

// TestTargetsStopBeforeWhatTheyUseCloses: when the platform stops, its targets' work ends before
// the event store and the databases' pools close (they closed first: a projector's batch or a
// saga's deadline on a closed pool was an ERROR "closed pool" at every clean shutdown). A probe
// target uses both once its context ends. Not parallel: it adds the probe to the platform's plugins.
func TestTargetsStopBeforeWhatTheyUseCloses(t *testing.T) {
	used := make(chan error, 2)
	probe := target.Target{Name: "shutdown-probe", EventStoreConns: 1, Databases: []target.Database{{Schema: "probe", Conns: 1}},
		Start: func(ctx context.Context, d target.Deps, p *target.Process) error {
			pool := d.Pool("probe")
			p.Go(ctx, func(ctx context.Context) {
				<-ctx.Done()
				_, err := pool.Exec(context.Background(), "select 1")
				used <- err
				_, err = d.Store.ReadAll(context.Background(), eventstore.Start, eventstore.ReadAllOptions{Limit: 1})
				used <- err
			})
			return nil
		}}
	platform.Plugins = []target.Target{probe}
	t.Cleanup(func() {
		platform.Plugins = nil
		for range 2 {
			select {
			case err := <-used:
				if err != nil {
					t.Errorf("a target's work after the platform began to stop: %v", err)
				}
			case <-time.After(30 * time.Second): // the probe never started (the platform did not)
				t.Error("the probe did not report its work after the platform stopped")
				return
			}
		}
	})
	startPlatformLogging(t, io.Discard, "targets", "shutdown-probe")
}
