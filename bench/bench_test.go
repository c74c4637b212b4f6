package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/orderflow/orderflow/testkit/pgtest"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "platform" { // the open benchmark's platform: this binary, again
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Platform(ctx, os.Args[2:], os.Getenv, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "platform:", err)
			os.Exit(1)
		}
		return
	}
	pgtest.Main(m)
}

// TestEveryBenchmarkRuns runs each benchmark of `make bench` for a moment, on the test PostgreSQL
// server: a benchmark that no longer runs (a platform change it did not follow) fails here, not on
// the day someone needs its figure. Each must print its closing line (the ratio to its baseline
// where it has one; the saga and open-loop benchmarks print latencies).
func TestEveryBenchmarkRuns(t *testing.T) {
	url := pgtest.ServerURL(t)
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	chart := filepath.Join(t.TempDir(), "open.svg")
	for _, tt := range []struct {
		args  []string
		ratio string // the benchmark's closing figure
	}{
		{[]string{"append", "--writers", "4", "--duration", "200ms", "--rounds", "1"}, `append vs raw insert: ratio \d`},
		{[]string{"rebuild", "--events", "3000", "--spread", "50", "--rounds", "1"}, `rebuild vs raw COPY: ratio \d`},
		{[]string{"saga", "--orders", "40", "--rate", "20", "--duration", "1s"}, `saga latency at 20 orders/s`},
		{[]string{"open", "--rates", "20", "--products", "5", "--duration", "1s", "--chart", chart, "--export", "20"}, `(?s)an order cost \d+\.\d+ ms of CPU \(platform \d+\.\d+ ms, \d+% of it in the kernel; PostgreSQL \d+\.\d+ ms(, its backends only)?, \d+% in the kernel;.*sustained.*export on vs off: CPU per order ratio \d`},
		{[]string{"open", "--rates", "20", "--products", "5", "--duration", "3s", "--baseline", os.Args[0], "--pairs", "2"}, `(?s)pair 2 of 2, the baseline.*CPU per order, this code against the baseline: ratio \d+\.\d+ \(95% interval \d`},
		{[]string{"gateway", "--clients", "2", "--duration", "200ms", "--rounds", "1"}, `gateway p99 vs direct p99: ratio \d`},
		{[]string{"tracing", "--orders", "40", "--rounds", "1"}, `tracing with export on vs off: ratio \d`},
		{[]string{"workers", "--orders", "40", "--events", "3000", "--pairs", "2"}, `(?s)saga with 2 workers vs 1: ratio \d\.\d+ \(95% interval \d.*orders replay with 2 workers vs 1: ratio \d\.\d+ \(95% interval \d`},
	} {
		t.Run(tt.args[0], func(t *testing.T) {
			var out, errs bytes.Buffer
			if err := Main(t.Context(), tt.args, env, &out, &errs); err != nil {
				t.Fatalf("%v\n%s%s", err, out.String(), errs.String())
			}
			if !regexp.MustCompile(tt.ratio).Match(out.Bytes()) {
				t.Errorf("no line matching %q in:\n%s", tt.ratio, out.String())
			}
		})
	}
}

func TestAnUnknownBenchmarkIsRefused(t *testing.T) {
	if err := Main(t.Context(), []string{"nope"}, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("an unknown benchmark ran")
	}
}
