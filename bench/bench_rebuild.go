package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/projections"
	orderrm "github.com/orderflow/orderflow/projections/orders"
)

// benchRebuild runs `orderflow-bench rebuild`: a synthetic order history of N events in a fresh
// database's postgres event store, a rebuild of the orders read model from it (the code path of
// `orderflow projections rebuild`), and, in the same run, a raw binary COPY of the rebuilt read
// model's final rows into empty tables followed by the same indexes: the floor a rebuild can
// approach.
func benchRebuild(fs *flag.FlagSet) benchRun {
	events := fs.Int("events", 1_000_000, "events in the log")
	spread := fs.Int("spread", 2000, "orders placed between two steps of one order")
	rounds := fs.Int("rounds", 3, "rebuilds measured, each followed by a COPY")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		dbURL, drop, err := benchDatabase(ctx, "rebuild", getenv, stdout)
		if err != nil {
			return err
		}
		defer drop()
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		store := postgres.New(pool, postgres.Options{})
		if err := store.Migrate(ctx); err != nil {
			return err
		}
		n, err := OrderHistory(ctx, pool, *events, *spread, stdout)
		if err != nil {
			return err
		}
		// Each measurement starts after a CHECKPOINT, so that none pays for the writes of another.
		// Rebuilds (each replaces the previous one's read model, as an operator's does) and COPYs
		// alternate, so that the machine's drift hits both; the medians are compared.
		checkpoint := func() error { _, err := pool.Exec(ctx, `checkpoint`); return err }
		debug.SetGCPercent(400) // as `orderflow projections rebuild` runs
		// The platform rebuilds through personal-data protection (platform.Readable): measured too.
		keyPool, err := pgschema.Open(ctx, dbURL, personal.Schema, 2)
		if err != nil {
			return err
		}
		defer keyPool.Close()
		keys := personal.PostgresKeys{Pool: keyPool}
		if err := keys.Migrate(ctx); err != nil {
			return err
		}
		protected := personal.Protect(store, platform.Personal, personal.NewCache(keys, time.Hour, 1000))
		var rebuilds, protectedRebuilds, copies []time.Duration
		var rows int64
		copyRound := func() error {
			if err := checkpoint(); err != nil {
				return err
			}
			took, n, err := CopyBaseline(ctx, pool, orderrm.Name, orderrm.Tables, orderrm.Keys+orderrm.Indexes)
			if err != nil {
				return err
			}
			copies, rows = append(copies, took), n
			return nil
		}
		// rebuild is measured until the new version is live (the old one is dropped after that).
		rebuild := func(round int, from eventstore.Store, name string) (time.Duration, error) {
			if err := checkpoint(); err != nil {
				return 0, err
			}
			start, took := time.Now(), time.Duration(0)
			err := projections.Rebuild(ctx, from, dbURL, orderrm.Projection{}, projections.RebuildOptions{Head: store.Head, RetireAfter: time.Millisecond,
				Progress: func(p projections.RebuildProgress) {
					if p.Phase == "done" {
						took = time.Since(start)
					}
					fmt.Fprintf(stdout, "%s %d: %s %d/%d events, %.0f events/s\n", name, round+1, p.Phase, p.Done, p.Total, p.Rate)
				}})
			return took, err
		}
		for round := range *rounds {
			// The plain and the protected rebuild take turns going first (the first of a round meets
			// a colder cache).
			kinds := []struct {
				from eventstore.Store
				name string
				took *[]time.Duration
			}{{store, "rebuild", &rebuilds}, {protected, "rebuild through protection", &protectedRebuilds}}
			if round%2 == 1 {
				slices.Reverse(kinds)
			}
			for _, k := range kinds {
				took, err := rebuild(round, k.from, k.name)
				if err != nil {
					return err
				}
				*k.took = append(*k.took, took)
			}
			if err := copyRound(); err != nil {
				return err
			}
		}
		took, copyTook := median(rebuilds), median(copies)
		fmt.Fprintf(stdout, "rebuild of the orders read model: %d events in %s (median of %s): %.0f events/s (goal >= 50000)\n",
			n, took.Round(time.Millisecond), roundAll(rebuilds), float64(n)/took.Seconds())
		fmt.Fprintf(stdout, "raw binary COPY of the same %d final rows, then the same keys and indexes: %s (median of %s)\n",
			rows, copyTook.Round(time.Millisecond), roundAll(copies))
		fmt.Fprintf(stdout, "rebuild vs raw COPY: ratio %.2f (goal >= 0.50)\n", copyTook.Seconds()/took.Seconds())
		protectedTook := median(protectedRebuilds)
		fmt.Fprintf(stdout, "rebuild through personal-data protection (the platform's path): %s (median of %s): ratio %.2f to the plain rebuild's speed (goal >= 0.90)\n",
			protectedTook.Round(time.Millisecond), roundAll(protectedRebuilds), took.Seconds()/protectedTook.Seconds())
		return nil
	}
}
func median[T int64 | float64 | time.Duration](ds []T) T {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(10*time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}
