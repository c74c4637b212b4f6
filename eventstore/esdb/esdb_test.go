package esdb_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/orderflow/orderflow/dev/devcerts"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/esdb"
	"github.com/orderflow/orderflow/eventstore/esdb/esdbtest"
	"github.com/orderflow/orderflow/eventstore/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// double starts a protocol double for this test and a store on it.
func double(t *testing.T) (*esdb.Store, *esdbtest.Server) {
	t.Helper()
	srv := esdbtest.New(t)
	store, err := esdb.Open(srv.URL(), esdb.Options{Log: quiet, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store, srv
}

// TestContractOnProtocolDouble runs the contract suite through the real client against the
// in-process double of the server protocol.
func TestContractOnProtocolDouble(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		store, _ := double(t)
		return storetest.Harness{Store: store}
	})
}

// TestContractOnRealServer runs the same suite against EventStoreDB at ESDB_URL, e.g.
// ESDB_URL='esdb://127.0.0.1:2113?tls=false'.
func TestContractOnRealServer(t *testing.T) {
	url := os.Getenv("ESDB_URL")
	if url == "" {
		t.Skip("ESDB_URL not set: no real EventStoreDB to run against")
	}
	store, err := esdb.Open(url, esdb.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	storetest.Run(t, func(t *testing.T) storetest.Harness { return storetest.Harness{Store: store} })
}

func appendOne(t *testing.T, s eventstore.Store, stream string, i int) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, eventstore.Any(), []eventstore.EventData{storetest.Event("drop.test.v1", i)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDroppedSubscriptionResumesWithoutLossOrDuplicates(t *testing.T) {
	t.Parallel()
	store, srv := double(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sub, err := store.SubscribeAll(ctx, eventstore.Start, eventstore.SubscribeOptions{Filter: eventstore.Filter{EventTypePrefixes: []string{"drop."}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const total = 60
	seen := map[uuid.UUID]int{}
	go func() {
		for i := range total {
			appendOne(t, store, "drop-"+uuid.NewString()[:4], i)
			if i%15 == 7 {
				srv.DropSubscriptions()
			}
		}
	}()
	var last eventstore.Position
	for n := 0; n < total; {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", n, total, err)
		}
		for _, e := range b.Events {
			if e.Position.Compare(last) <= 0 {
				t.Fatalf("event at %s after %s", e.Position, last)
			}
			last = e.Position
			seen[e.ID]++
			n++
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct events, want %d", len(seen), total)
	}
}

func TestSystemEventsAreNeverDelivered(t *testing.T) {
	t.Parallel()
	store, srv := double(t)
	ctx := t.Context()
	appendOne(t, store, "user-1", 0)
	srv.AppendSystemEvent("$stats-node", "$statsCollected")
	appendOne(t, store, "user-2", 1)
	page, err := store.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 {
		t.Fatalf("ReadAll gave %d events, want the 2 user events", len(page.Events))
	}
	sub, err := store.SubscribeAll(ctx, eventstore.Start, eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []eventstore.RecordedEvent
	for len(got) < 2 {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b.Events...)
	}
	for _, e := range got {
		if e.Stream[0] == '$' || e.Type[0] == '$' {
			t.Errorf("system event delivered: %s %s", e.Stream, e.Type)
		}
	}
}

func TestDeletedStreams(t *testing.T) {
	t.Parallel()
	store, srv := double(t)
	ctx := t.Context()
	cfg, err := client.ParseConnectionString(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := client.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	appendOne(t, store, "gone-1", 0)
	res, err := raw.TombstoneStream(ctx, "gone-1", client.TombstoneStreamOptions{ExpectedRevision: client.Any{}})
	if err != nil || res.Position.Commit == 0 {
		t.Fatalf("tombstone = %+v, %v; want a position", res, err)
	}
	if _, err := store.Append(ctx, "gone-1", eventstore.Any(), []eventstore.EventData{storetest.Event("t.v1", 1)}); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Errorf("append to a tombstoned stream: err = %v, want ErrStreamDeleted", err)
	}
	if _, err := store.ReadStream(ctx, "gone-1", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamDeleted) {
		t.Errorf("read a tombstoned stream: err = %v, want ErrStreamDeleted", err)
	}
	appendOne(t, store, "soft-1", 0)
	del, err := raw.DeleteStream(ctx, "soft-1", client.DeleteStreamOptions{ExpectedRevision: client.Any{}})
	if err != nil || del.Position.Commit == 0 {
		t.Fatalf("delete = %+v, %v; want a position", del, err)
	}
	if _, err := store.ReadStream(ctx, "soft-1", eventstore.ReadStreamOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("read a deleted stream: err = %v, want ErrStreamNotFound", err)
	}
}

// TestWireMapping reads what the adapter wrote with the raw client: JSON content type, the
// port's metadata as custom metadata, EventStoreDB's own created date, deterministic ids kept.
func TestWireMapping(t *testing.T) {
	t.Parallel()
	store, srv := double(t)
	ctx := t.Context()
	in := storetest.Event("order.placed.v1", 1)
	in.ID = eventstore.DeriveID("cmd-42", 0)
	res, err := store.Append(ctx, "order-wire", eventstore.NoStream(), []eventstore.EventData{in})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := client.ParseConnectionString(srv.URL())
	raw, err := client.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rs, err := raw.ReadStream(ctx, "order-wire", client.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	ev, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	e := ev.Event
	if e.EventID != in.ID || e.EventType != "order.placed.v1" || e.ContentType != "application/json" || e.EventNumber != 0 {
		t.Errorf("stored as id %s type %s content %s number %d", e.EventID, e.EventType, e.ContentType, e.EventNumber)
	}
	if !strings.Contains(string(e.UserMetadata), `"correlationId":"`+in.Metadata.CorrelationID+`"`) || !strings.Contains(string(e.UserMetadata), `"traceparent"`) {
		t.Errorf("custom metadata = %s, want the port's metadata as JSON", e.UserMetadata)
	}
	if time.Since(e.CreatedDate) > time.Minute || time.Since(e.CreatedDate) < 0 {
		t.Errorf("created %v, want now", e.CreatedDate)
	}
	if res.Position.Commit != e.Position.Commit || res.Position.Prepare != e.Position.Prepare {
		t.Errorf("append answered %s, event is at %d/%d", res.Position, e.Position.Commit, e.Position.Prepare)
	}
}

// TestUnreachableServer: no server, no hang: every call ends with its context.
func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	srv, err := esdbtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	srv.Stop() // nothing listens there any more
	store, err := esdb.Open(url, esdb.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = store.Append(ctx, "s", eventstore.Any(), []eventstore.EventData{storetest.Event("t.v1", 0)})
	if err == nil {
		t.Fatal("append to no server succeeded")
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("append took %s to fail", time.Since(start))
	}
}

// The double's figures measure the client path (gRPC, protobuf, the adapter), not EventStoreDB.

// benchDouble starts a double and a store on it for a benchmark.
func benchDouble(b *testing.B) *esdb.Store {
	b.Helper()
	b.Log("esdb figures: real client against the in-process protocol double; they measure the client path, not EventStoreDB")
	srv := esdbtest.New(b)
	store, err := esdb.Open(srv.URL(), esdb.Options{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	return store
}

func BenchmarkAppendThroughClientToDouble(b *testing.B) {
	storetest.BenchmarkAppend(b, benchDouble(b))
}

func BenchmarkCatchUpThroughClientToDouble(b *testing.B) {
	storetest.BenchmarkCatchUp(b, benchDouble(b), 20_000)
}

// TestTLS: over TLS, the client verifies the server's certificate against the authority of
// tlsCAFile: the contract's basics work with the right one, and nothing connects with another.
func TestTLS(t *testing.T) {
	t.Parallel()
	certs, other := t.TempDir(), t.TempDir()
	if err := devcerts.Make(certs, devcerts.Cert{Name: "eventstore", Hosts: []string{"localhost", "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	if err := devcerts.Make(other); err != nil {
		t.Fatal(err)
	}
	srv, err := esdbtest.StartTLS(filepath.Join(certs, "eventstore.pem"), filepath.Join(certs, "eventstore-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	store, err := esdb.Open(srv.URL()+"&tlsCAFile="+filepath.Join(certs, "ca.pem"), esdb.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	res := appendOne(t, store, "tls-1", 0)
	got, err := store.ReadStream(t.Context(), "tls-1", eventstore.ReadStreamOptions{})
	if err != nil || len(got) != 1 || got[0].Position != res.Position {
		t.Fatalf("read over TLS: %v %v", got, err)
	}

	untrusting, err := esdb.Open(srv.URL()+"&tlsCAFile="+filepath.Join(other, "ca.pem"), esdb.Options{Log: quiet})
	if err != nil {
		return // refused at once: fine
	}
	defer untrusting.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := untrusting.Append(ctx, "tls-2", eventstore.Any(), []eventstore.EventData{storetest.Event("t.v1", 0)}); err == nil {
		t.Fatal("appended over TLS to a server another authority signed")
	}
}
