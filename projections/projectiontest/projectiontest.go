// Package projectiontest runs a read model for a test: a PostgreSQL event store and the read model's
// schema in a fresh database, its projector running, and a waiter for read-your-writes.
package projectiontest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// ReadModel is a running read model.
type ReadModel struct {
	Store  *postgres.Store
	Pool   *pgxpool.Pool // confined to the read model's schema
	Waiter *progress.Waiter
}

// Start runs p over a new database until the test ends.
func Start(t *testing.T, p projections.Projection) ReadModel {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	store := pgtest.EventStoreAt(t, url, 24)
	pool, err := pgschema.Open(ctx, url, p.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	Run(t, projections.New(store, pool, p, projections.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	w, err := progress.NewWaiter(nil, "", p.Name(), func(ctx context.Context) (eventstore.Position, error) {
		return projections.ReadCheckpoint(ctx, pool, p.Name())
	})
	if err != nil {
		t.Fatal(err)
	}
	return ReadModel{Store: store, Pool: pool, Waiter: w}
}

// Run migrates p's read model and runs p until the test ends.
func Run(t testing.TB, p *projections.Projector) {
	t.Helper()
	if err := p.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
