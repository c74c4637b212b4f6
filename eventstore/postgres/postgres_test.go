package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/dev/pgtest"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/eventstore/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func migrate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return postgres.New(pool, postgres.Options{}).Migrate(ctx)
}

// newStore returns a store over a fresh migrated database.
func newStore(t testing.TB) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.MigratedDatabase(t, "eventstore", migrate)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pool config: %v", err)
	}
	cfg.MaxConns = 32 // the gap test holds transactions open while others append
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return postgres.New(pool, postgres.Options{}), pool
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		store, pool := newStore(t)
		return storetest.Harness{
			Store: store,
			HoldOpen: func(ctx context.Context, stream string, events []eventstore.EventData) (func() error, error) {
				tx, err := pool.Begin(ctx)
				if err != nil {
					return nil, err
				}
				if _, err := store.AppendTx(ctx, tx, stream, eventstore.NoStream(), events); err != nil {
					_ = tx.Rollback(ctx)
					return nil, err
				}
				return func() error { return tx.Commit(ctx) }, nil
			},
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	store, _ := newStore(b)
	storetest.BenchmarkAppend(b, store)
}

func BenchmarkCatchUp(b *testing.B) {
	store, _ := newStore(b)
	storetest.BenchmarkCatchUp(b, store, 20_000)
}
