package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/postgres"
	"github.com/orderflow/orderflow/internal/pgschema"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/projections/orders"
	"github.com/orderflow/orderflow/sagas/fulfillment"
)

// benchWorkers runs `orderflow-bench workers`: how the partitioned saga and projector scale with
// their workers, 1 against 2, in one run (--pairs times each, alternating).
//
// The saga: the platform runs in this process without it (the command services it drives, the
// card simulator); a log of placed orders is written first, then 1 (and, for the next batch of
// orders, 2) saga workers start, each a process of its own (`orderflow serve
// --target=fulfillment-saga`), and the orders per second are the batch's sagas over the time from
// the first one's start to the last one's end (their rows' own times). The workers start paused
// and are let go once they hold their shares, so that the figure is the work, not the handover.
//
// The replay: a log of order events is written, then the orders read model is built from it by 1
// worker and (into another schema) by 2, in this process; events per second to the last one.
func benchWorkers(fs *flag.FlagSet) benchRun {
	n := fs.Int("orders", 4000, "placed orders in the log for each saga run (0: no saga runs)")
	events := fs.Int("events", 200_000, "order events in the log of the replay (0: no replays)")
	pairs := fs.Int("pairs", 1, "pairs of runs for each ratio, one with 1 worker and one with 2 (alternating which goes first): more than one prints their geometric mean and its 95% interval")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		var ratios []string
		if *n > 0 {
			rates, err := sagaWorkers(ctx, *n, max(*pairs, 1), getenv, stdout, stderr)
			if err != nil {
				return fmt.Errorf("saga: %w", err)
			}
			ratios = append(ratios, "saga with 2 workers vs 1: "+pairRatio(rates, "orders/s"))
		}
		if *events > 0 {
			rates, err := replayWorkers(ctx, *events, max(*pairs, 1), getenv, stdout)
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			ratios = append(ratios, "orders replay with 2 workers vs 1: "+pairRatio(rates, "events/s"))
		}
		for _, r := range ratios {
			fmt.Fprintln(stdout, r)
		}
		return nil
	}
}

// pairRatio tells the ratio of the rates of pairs of runs ([1 worker, 2 workers] each): one pair's
// with its rates, several pairs' geometric mean with its 95% interval and each pair's.
func pairRatio(rates [][2]float64, unit string) string {
	if len(rates) == 1 {
		return fmt.Sprintf("ratio %.2f (%.0f vs %.0f %s)", rates[0][1]/rates[0][0], rates[0][1], rates[0][0], unit)
	}
	each := make([]float64, len(rates))
	var list []string
	for i, r := range rates {
		each[i] = r[1] / r[0]
		list = append(list, fmt.Sprintf("%.2f", each[i]))
	}
	mean, lo, hi := ratioInterval(each)
	return fmt.Sprintf("ratio %.2f (95%% interval %s over %d pairs; each: %s)", mean, interval(lo, hi), len(rates), strings.Join(list, " "))
}

// sagaWorkers measures the saga's orders per second with 1 worker and with 2, pairs times (in
// pairOrder), each rate as [1 worker, 2 workers].
func sagaWorkers(ctx context.Context, n, pairs int, getenv func(string) string, stdout, stderr io.Writer) ([][2]float64, error) {
	var others []string
	for _, t := range platform.TargetNames() {
		if t != "fulfillment-saga" {
			others = append(others, t)
		}
	}
	p, err := startBenchPlatformOf(ctx, "workers", strings.Join(others, ","), map[string]string{"PAYMENT_PROVIDER_LATENCY": "5ms"}, getenv, stdout, stderr)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	const products = 50
	if err := seedProducts(p, "bench", products); err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, p.dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.Options{})
	rates := make([][2]float64, pairs)
	for pair := range pairs {
		for _, workers := range pairOrder(pair) {
			batch := fmt.Sprintf("p%d-w%d-", pair, workers)
			if err := placeOrders(ctx, store, batch, n, products); err != nil {
				return nil, err
			}
			settle(ctx, pool)
			fmt.Fprintf(stdout, "saga: %d placed orders in the log; %d worker(s)…\n", n, workers)
			rate, err := runSagaWorkers(ctx, p, workers, batch, n, stdout)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(stdout, "saga with %d worker(s): %.0f orders/s\n", workers, rate)
			rates[pair][workers-1] = rate
		}
	}
	return rates, nil
}

// placeOrders appends n placed orders (ids prefix0…) of one line each over the catalog's products.
func placeOrders(ctx context.Context, store *postgres.Store, prefix string, n, products int) error {
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		data, err := json.Marshal(order.Placed{OrderID: id, CustomerID: "c", Lines: []order.Line{{ProductID: fmt.Sprintf("bench-%d", i%products), Quantity: 1, UnitPriceCents: 999}},
			TotalCents: 999, At: time.Now().UTC()})
		if err != nil {
			return err
		}
		if _, err := store.Append(ctx, order.Stream(id), eventstore.NoStream(), []eventstore.EventData{{ID: eventstore.DeriveID("place-"+id, 0), Type: order.TypePlaced, Data: data,
			Metadata: eventstore.Metadata{CorrelationID: "bench-" + id, Actor: "admin:bench"}}}); err != nil {
			return err
		}
	}
	return nil
}

// runSagaWorkers starts workers saga processes, paused until they share the partitions, lets them
// go and answers the batch's sagas per second, from the first one's start to the last one's end.
func runSagaWorkers(ctx context.Context, p *benchPlatform, workers int, batch string, n int, stdout io.Writer) (float64, error) {
	sagas, err := pgschema.Open(ctx, p.dbURL, fulfillment.Name, 2)
	if err != nil {
		return 0, err
	}
	defer sagas.Close()
	// The saga's tables, so that it can be paused before its workers start.
	saga := fulfillment.New(sagas, fulfillment.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := projections.New(nil, sagas, saga, projections.Options{}).Migrate(ctx); err != nil {
		return 0, err
	}
	if err := projections.SetPaused(ctx, sagas, fulfillment.Name, true); err != nil {
		return 0, err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, c := range procs {
			_ = c.Process.Signal(syscall.SIGINT)
			_ = c.Wait()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	for i := range workers {
		dir, err := os.MkdirTemp("", "orderflow-bench-worker-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command(self, "platform", "serve", "--target=fulfillment-saga", "--http-addr=127.0.0.1:0", "--data-dir="+dir)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+p.dbURL, "NATS_URL="+p.natsURL, "ORDERFLOW_NATS_SEEDS="+p.seeds,
			"ORDERFLOW_JWT_SECRET="+p.secret, "ORDERFLOW_LOG_LEVEL=error")
		logf, err := os.Create(filepath.Join(dir, "worker.log"))
		if err != nil {
			return 0, err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("worker %d: %w", i, err)
		}
		procs = append(procs, cmd)
	}
	if err := waitShares(ctx, sagas, fulfillment.Name, workers); err != nil {
		return 0, err
	}
	var pids []int
	for _, c := range procs {
		pids = append(pids, c.Process.Pid)
	}
	before := usageNow(pids)
	if err := projections.SetPaused(ctx, sagas, fulfillment.Name, false); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var final int
		var first, last time.Time
		if err := sagas.QueryRow(ctx, `select count(*) filter (where step in ('CONFIRMED', 'CANCELLED')), min((state->>'startedAt')::timestamptz), max(updated_at)
from fulfillment where order_id like $1 || '%'`, batch).Scan(&final, &first, &last); err != nil && !strings.Contains(err.Error(), "NULL") {
			return 0, err
		}
		if final == n {
			u := before.since(pids)
			fmt.Fprintf(stdout, "  machine busy %.0f%% of its %d cores; the saga workers used %.2f ms of CPU per order (%.0f%% of what the machine used)\n",
				100*u.share(), runtime.NumCPU(), float64(u.procs.Microseconds())/1000/float64(n), 100*float64(u.procs)/float64(max(u.busy, 1)))
			return float64(n) / last.Sub(first).Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d of %d sagas final after 5 minutes", final, n)
		}
	}
}

// machineCPU is the CPU time the machine's cores have spent busy and in all (/proc/stat's first
// line; ticks of 10 ms).
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: %q", line)
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q", line)
		}
		d := time.Duration(v) * 10 * time.Millisecond
		total += d
		if i != 3 && i != 4 { // idle, iowait
			busy += d
		}
	}
	return busy, total, nil
}

// usage is what a stretch of a benchmark cost: the machine's busy share and the CPU time of some
// processes of it.
type usage struct {
	busy, total time.Duration
	procs       time.Duration
}

// usageNow reads the machine's CPU and pids' now.
func usageNow(pids []int) usage {
	var u usage
	u.busy, u.total, _ = machineCPU()
	for _, pid := range pids {
		d, _ := processCPU(pid)
		u.procs += d
	}
	return u
}

// since is the stretch from u to now.
func (u usage) since(pids []int) usage {
	now := usageNow(pids)
	return usage{busy: now.busy - u.busy, total: now.total - u.total, procs: now.procs - u.procs}
}

// share is the machine's busy share of the stretch.
func (u usage) share() float64 { return float64(u.busy) / float64(max(u.total, 1)) }

// waitShares waits until workers workers hold every partition of name, in equal shares.
func waitShares(ctx context.Context, pool *pgxpool.Pool, name string, workers int) error {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		parts, err := projections.ReadPartitions(ctx, pool, name)
		held := map[string]int{}
		for _, pt := range parts {
			held[pt.Owner]++
		}
		if err == nil && len(parts) > 0 && held[""] == 0 && len(held) == workers {
			counts := slices.Collect(maps.Values(held))
			if slices.Max(counts)-slices.Min(counts) <= 1 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the partitions of %s are held as %v after a minute, want %d workers (%v)", name, held, workers, err)
		}
	}
}

// replayWorkers measures the orders read model's replay of a log of about events order events
// with 1 worker and with 2, pairs times (in pairOrder), each rate as [1 worker, 2 workers].
func replayWorkers(ctx context.Context, events, pairs int, getenv func(string) string, stdout io.Writer) ([][2]float64, error) {
	url, drop, err := benchDatabase(ctx, "replay_workers", getenv, stdout)
	if err != nil {
		return nil, err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.Options{})
	if err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	n, err := OrderHistory(ctx, pool, events, 25, nil)
	if err != nil {
		return nil, err
	}
	rates := make([][2]float64, pairs)
	for pair := range pairs {
		for _, workers := range pairOrder(pair) {
			settle(ctx, pool)
			fmt.Fprintf(stdout, "replay: %d order events; %d worker(s)…\n", n, workers)
			schema := fmt.Sprintf("orders_p%d_w%d", pair, workers)
			rm, err := pgschema.Open(ctx, url, schema, 8)
			if err != nil {
				return nil, err
			}
			start := time.Now()
			took, err := replayWith(ctx, store, rm, workers, n, stdout)
			rm.Close()
			if err != nil {
				return nil, err
			}
			rates[pair][workers-1] = float64(n) / took.Seconds()
			fmt.Fprintf(stdout, "replay with %d worker(s): %.0f events/s (%s)\n", workers, rates[pair][workers-1], time.Since(start).Round(time.Millisecond))
			if _, err := pool.Exec(ctx, `drop schema `+pgx.Identifier{schema}.Sanitize()+` cascade`); err != nil {
				return nil, err
			}
		}
	}
	return rates, nil
}

// pairOrder is the order of a pair's runs: 1 worker first in even pairs, 2 in odd ones, so that
// what drifts over a run of the benchmark (a log and tables that grow, a machine that warms)
// weighs on both sides alike.
func pairOrder(pair int) []int {
	if pair%2 == 1 {
		return []int{2, 1}
	}
	return []int{1, 2}
}

// settle starts a run on a server that has written what the runs before left in its buffers (a
// CHECKPOINT: the server's own superuser may; elsewhere it is skipped) and in a process that has
// collected what they left on its heap (the saga's runs' platform among them), so that no run pays
// for the one before it.
func settle(ctx context.Context, pool *pgxpool.Pool) {
	_, _ = pool.Exec(ctx, `checkpoint`)
	runtime.GC()
}

// replayWith builds the orders read model in rm's schema with workers projectors until every one
// has caught up with the log (n events), and answers how long that took. The bench watches the
// workers, and counts the table's rows only once they all say they have caught up: counting them
// every 100 ms cost the server more than a tenth of a core, taken from the workers.
func replayWith(ctx context.Context, store eventstore.Store, rm *pgxpool.Pool, workers, n int, stdout io.Writer) (time.Duration, error) {
	opts := projections.Options{BatchSize: 2000, Heartbeat: 100 * time.Millisecond, ClaimTTL: 2 * time.Second}
	proj := orders.Projection{}
	first := projections.New(store, rm, proj, opts)
	if err := first.Migrate(ctx); err != nil {
		return 0, err
	}
	before := usageNow([]int{os.Getpid()})
	start := time.Now()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, workers)
	defer func() {
		stop()
		for range workers {
			<-done
		}
	}()
	ws := make([]*projections.Projector, workers)
	for i := range ws {
		ws[i] = first
		if i > 0 {
			ws[i] = projections.New(store, rm, proj, opts)
		}
		go func() { _ = ws[i].Run(rctx); done <- struct{}{} }()
	}
	defer func() {
		u := before.since([]int{os.Getpid()})
		fmt.Fprintf(stdout, "  machine busy %.0f%% of its %d cores; the projectors (this process) used %.0f%% of what the machine used\n",
			100*u.share(), runtime.NumCPU(), 100*float64(u.procs)/float64(max(u.busy, 1)))
	}()
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(ws, func(w *projections.Projector) bool { return !w.CaughtUp() }) {
			took := time.Since(start)
			var rows int
			if err := rm.QueryRow(ctx, `select count(*) from order_history`).Scan(&rows); err != nil {
				return 0, err
			}
			if rows == n { // else caught up with what they held while the partitions changed hands
				return took, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the workers have not caught up after 10 minutes")
		}
	}
}
