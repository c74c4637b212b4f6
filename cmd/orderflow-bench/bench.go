package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/bench"
)

// runBench runs `orderflow-bench append`: postgres event store appends from N writers against a
// raw single-row INSERT baseline, on the same database, in the same run.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "saga" {
		return benchSaga(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "gateway" {
		return benchGateway(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "open" {
		return benchOpen(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "tracing" {
		return benchTracing(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rebuild" {
		return benchRebuild(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) == 0 || args[0] != "append" {
		return fmt.Errorf("bench: want append, saga, open, rebuild, gateway or tracing (orderflow-bench help)")
	}
	fs := flag.NewFlagSet("bench append", flag.ContinueOnError)
	fs.SetOutput(stderr)
	writers := fs.Int("writers", 16, "concurrent writers")
	duration := fs.Duration("duration", 5*time.Second, "length of each measured round")
	rounds := fs.Int("rounds", 3, "rounds of each workload, interleaved")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	url, stopServer, err := benchServer(ctx, getenv, stdout)
	if err != nil {
		return err
	}
	defer stopServer()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(*writers)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := bench.AppendVsInsert(ctx, pool, bench.Options{Writers: *writers, Duration: *duration, Rounds: *rounds, Progress: stdout})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "raw INSERT+commit: %.0f rows/s (%d writers)\n", res.InsertsPerSec, *writers)
	fmt.Fprintf(stdout, "event store append: %.0f appends/s (%d writers, 1 event each)\n", res.AppendsPerSec, *writers)
	fmt.Fprintf(stdout, "postgres append vs raw insert: ratio %.2f (goal >= 0.70)\n", res.Ratio())
	fmt.Fprintf(stdout, "append through personal-data protection (the platform's path, order events): %.0f appends/s, ratio %.2f to plain appends (goal >= 0.90)\n", res.ProtectedPerSec, res.ProtectedRatio())
	fmt.Fprintf(stdout, "append of personal events (customer.address_changed, encrypted): %.0f appends/s, ratio %.2f to plain appends\n", res.PersonalPerSec, res.PersonalRatio())
	return nil
}
