package pgschema_test

import (
	"context"
	"reflect"
	"sync"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestMigrationsRunConcurrently: nine targets starting at once on a fresh database each create
// their schemas and the event store's: none fails (CREATE SCHEMA IF NOT EXISTS races itself).
func TestMigrationsRunConcurrently(t *testing.T) {
	t.Parallel()
	for round := range 3 {
		url := pgtest.NewDatabase(t)
		var wg sync.WaitGroup
		errs := make(chan error, 18)
		for i := range 9 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				pool, err := pgschema.Open(ctx, url, []string{"orders", "catalog", "customers"}[i%3], 2)
				if err != nil {
					errs <- err
					return
				}
				defer pool.Close()
				errs <- postgres.New(pool, postgres.Options{Schema: "eventstore"}).Migrate(ctx)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
	}
}

// TestJSONColumnsUseGoccy: a pool's connections read and write json and jsonb (and their
// arrays) with goccy/go-json, and a value goes in and comes back out whole.
func TestJSONColumnsUseGoccy(t *testing.T) {
	pool, err := pgschema.Open(t.Context(), pgtest.NewDatabase(t), "j", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	goccy := reflect.ValueOf(gojson.Unmarshal).Pointer()
	for _, oid := range []uint32{pgtype.JSONOID, pgtype.JSONBOID, pgtype.JSONArrayOID, pgtype.JSONBArrayOID} {
		typ, ok := conn.Conn().TypeMap().TypeForOID(oid)
		if !ok {
			t.Fatalf("no type for oid %d", oid)
		}
		codec := typ.Codec
		if a, ok := codec.(*pgtype.ArrayCodec); ok {
			codec = a.ElementType.Codec
		}
		var unmarshal func([]byte, any) error
		switch c := codec.(type) {
		case *pgtype.JSONCodec:
			unmarshal = c.Unmarshal
		case *pgtype.JSONBCodec:
			unmarshal = c.Unmarshal
		}
		if unmarshal == nil || reflect.ValueOf(unmarshal).Pointer() != goccy {
			t.Errorf("%s: %T does not decode with goccy/go-json", typ.Name, codec)
		}
	}
	type line struct {
		Product string `json:"productId"`
		Qty     int    `json:"quantity,omitempty"`
	}
	in := []line{{"p-1", 2}, {"p-2", 0}}
	var out []line
	var text string
	if err := conn.QueryRow(t.Context(), `select $1::jsonb, $1::jsonb::text`, in).Scan(&out, &text); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) || text != `[{"quantity": 2, "productId": "p-1"}, {"productId": "p-2"}]` {
		t.Errorf("round trip: %+v as %s", out, text)
	}
}
