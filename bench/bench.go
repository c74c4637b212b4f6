package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Main runs the benchmark args name with the flags that follow.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || benches[args[0]] == nil {
		return fmt.Errorf("bench: want append, saga, open, rebuild, gateway, tracing or workers (orderflow-bench help)")
	}
	fs := flag.NewFlagSet("bench "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	r := benches[args[0]](fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	return r(ctx, getenv, stdout, stderr)
}

// A benchmark defines its flags on fs and answers its run, which reads them once they are parsed.
type benchmark func(fs *flag.FlagSet) benchRun

type benchRun = func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error

// benches are orderflow-bench's benchmarks, by name.
var benches = map[string]benchmark{"append": benchAppend, "saga": benchSaga, "open": benchOpen, "rebuild": benchRebuild, "gateway": benchGateway, "tracing": benchTracing, "workers": benchWorkers}

// benchAppend runs `orderflow-bench append`: postgres event store appends from N writers against a
// raw single-row INSERT baseline, on the same database, in the same run.
func benchAppend(fs *flag.FlagSet) benchRun {
	writers := fs.Int("writers", 16, "concurrent writers")
	rounds := fs.Int("rounds", 3, "rounds of each workload, interleaved")
	duration := fs.Duration("duration", 5*time.Second, "length of each measured round")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		url, drop, err := benchDatabase(ctx, "append", getenv, stdout)
		if err != nil {
			return err
		}
		defer drop()
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
		res, err := AppendVsInsert(ctx, pool, Options{Writers: *writers, Duration: *duration, Rounds: *rounds, Progress: stdout})
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
}
