package pgschema_test

import (
	"context"
	"sync"
	"testing"

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
