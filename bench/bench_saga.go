package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/dev/pgcluster"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/platform"
)

// benchSaga runs `orderflow-bench saga`: the whole platform in this process (a private
// PostgreSQL cluster unless DATABASE_URL is set, embedded NATS, every target), orders placed over
// REST, and placed→confirmed latency taken from the event store's own timestamps. Two phases:
// as fast as the platform goes, then a steady 100 orders/s.
func benchSaga(fs *flag.FlagSet) benchRun {
	burst := fs.Int("orders", 2000, "orders of the throughput phase")
	rate := fs.Int("rate", 100, "orders per second of the latency phase")
	steady := fs.Duration("duration", 10*time.Second, "length of the latency phase")
	clients := fs.Int("clients", 32, "concurrent REST clients of the throughput phase")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		p, err := startBenchPlatform(ctx, "saga", map[string]string{"PAYMENT_PROVIDER_LATENCY": "5ms"}, getenv, stdout, stderr)
		if err != nil {
			return err
		}
		defer p.stop()
		post, dbURL := p.post, p.dbURL
		// A catalog of 50 products with ample stock: orders spread over them as a shop's do.
		const products = 50
		if err := seedProducts(p, "bench", products); err != nil {
			return err
		}
		var seq atomic.Int64
		order := func(id string) error {
			p := seq.Add(1) % products
			return post("/api/v1/orders", fmt.Sprintf(`{"orderId":"%s","customerId":"c","lines":[{"productId":"bench-%d","quantity":1}]}`, id, p))
		}

		// Phase 1: throughput.
		fmt.Fprintf(stdout, "throughput: %d orders from %d REST clients…\n", *burst, *clients)
		throughput, refused, err := burstOrders(ctx, p, "burst-", *burst, *clients, products)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "saga throughput: %.0f orders/s placed→confirmed (%d orders; %d refused by the API)\n", throughput, *burst-refused, refused)

		// Phase 2: latency at a steady rate.
		fmt.Fprintf(stdout, "latency: %d orders/s for %s…\n", *rate, *steady)
		tick := time.NewTicker(time.Second / time.Duration(*rate))
		var wg sync.WaitGroup
		var failed atomic.Int64
		n := 0
		end := time.Now().Add(*steady)
		for time.Now().Before(end) {
			<-tick.C
			n++
			id := fmt.Sprintf("steady-%d", n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if order(id) != nil {
					failed.Add(1)
				}
			}()
		}
		tick.Stop()
		wg.Wait()
		if err := waitConfirmed(ctx, dbURL, "steady-", n-int(failed.Load()), 2*time.Minute); err != nil {
			return err
		}
		lat, _, err := latencies(ctx, dbURL, "steady-")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "saga latency at %d orders/s: p50 %s, p99 %s, max %s placed→confirmed (%d orders)\n", *rate,
			pct(lat, 50), pct(lat, 99), pct(lat, 100), len(lat))
		return nil
	}
}

// withDatabase is connection URL u for database db instead (its host, TCP or a socket, kept).
func withDatabase(u, db string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	parsed.Path = "/" + db
	return parsed.String()
}

func waitConfirmed(ctx context.Context, url, prefix string, want int, within time.Duration) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(within)
	for {
		var n int
		var cancelled int
		if err := conn.QueryRow(ctx, `select count(*) filter (where event_type = 'order.confirmed.v1'), count(*) filter (where event_type = 'order.cancelled.v1')
  from eventstore.events where stream_id like $1`, "order-"+prefix+"%").Scan(&n, &cancelled); err != nil {
			return err
		}
		if cancelled > 0 {
			return fmt.Errorf("%d orders cancelled: the bench's stock is ample, so none should be", cancelled)
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d orders confirmed after %s", n, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// latencies returns placed→confirmed per order, and the span from the first placed to the last
// confirmed.
func latencies(ctx context.Context, url, prefix string) ([]time.Duration, time.Duration, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select p.recorded_at, c.recorded_at from eventstore.events p
  join eventstore.events c on c.stream_id = p.stream_id and c.event_type = 'order.confirmed.v1'
 where p.event_type = 'order.placed.v1' and p.stream_id like $1`, "order-"+prefix+"%")
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []time.Duration
	var first, last time.Time
	for rows.Next() {
		var placed, confirmed time.Time
		if err := rows.Scan(&placed, &confirmed); err != nil {
			return nil, 0, err
		}
		out = append(out, confirmed.Sub(placed))
		if first.IsZero() || placed.Before(first) {
			first = placed
		}
		if confirmed.After(last) {
			last = confirmed
		}
	}
	slices.Sort(out)
	return out, last.Sub(first), rows.Err()
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))].Round(100 * time.Microsecond)
}

// benchPlatform is the whole platform in this process for a benchmark: a fresh database (on
// DATABASE_URL's server, else a private cluster), embedded NATS, every target, an admin token.
type benchPlatform struct {
	base, dbURL, natsURL, token string
	seeds                       string // the platform's NATS identities, when it made them
	secret                      string // its JWT secret
	client                      *http.Client
	stop                        func()
	log                         logTally // what the platform logged
}

// logTally counts the lines of a text log by level, and those that say a stream was too busy.
type logTally struct {
	mu                     sync.Mutex
	warnings, errors, busy int
}

func (t *logTally) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for line := range bytes.Lines(b) {
		switch {
		case bytes.Contains(line, []byte("level=WARN")):
			t.warnings++
		case bytes.Contains(line, []byte("level=ERROR")):
			t.errors++
		}
		if bytes.Contains(line, []byte("too busy")) {
			t.busy++
		}
	}
	return len(b), nil
}

func (t *logTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%d WARN, %d ERROR, %d \"too busy\"", t.warnings, t.errors, t.busy)
}

func startBenchPlatform(ctx context.Context, name string, extraEnv map[string]string, getenv func(string) string, stdout, stderr io.Writer) (*benchPlatform, error) {
	return startBenchPlatformOf(ctx, name, "all", extraEnv, getenv, stdout, stderr)
}

// startBenchPlatformOf is startBenchPlatform with only targets (as --target takes them).
func startBenchPlatformOf(ctx context.Context, name, targets string, extraEnv map[string]string, getenv func(string) string, stdout, stderr io.Writer) (_ *benchPlatform, err error) {
	var cleanup []func()
	p := &benchPlatform{stop: func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	dir, err := os.MkdirTemp("", "orderflow-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { os.RemoveAll(dir) })
	dbURL, drop, err := benchDatabase(ctx, name, getenv, stdout)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, drop)
	p.dbURL = dbURL
	secret := strings.Repeat("bench-secret-", 3)
	env := map[string]string{"DATABASE_URL": p.dbURL, "ORDERFLOW_LOG_LEVEL": "error", "ORDERFLOW_JWT_SECRET": secret}
	for k, v := range extraEnv {
		env[k] = v
	}
	if p.token, err = auth.Issue([]byte(secret), "bench", auth.Admin, time.Hour); err != nil {
		return nil, err
	}
	p.secret = secret
	cfg, err := platform.ParseFlags("serve", []string{"--target=" + targets, "--http-addr=127.0.0.1:0", "--data-dir=" + dir}, func(k string) string { return env[k] }, stderr)
	if err != nil {
		return nil, err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- platform.Run(runCtx, cfg, io.Discard, &p.log, func(a string) { ready <- a }) }()
	cleanup = append(cleanup, func() { stopRun(); <-done })
	select {
	case a := <-ready:
		p.base = "http://" + a
	case err := <-done:
		done <- err
		return nil, fmt.Errorf("platform: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, platform.NATSURLFile)); err == nil {
		p.natsURL = strings.TrimSpace(string(b))
		p.seeds = filepath.Join(dir, platform.SeedsDir) // the embedded server's identities
	}
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	return p, nil
}

// post sends a command as the bench's admin.
func (p *benchPlatform) post(path, body string) error {
	_, err := p.postAnswer(context.Background(), path, []byte(body))
	return err
}

// postAnswer POSTs JSON as the bench's admin and answers the body of a 2xx response.
func (p *benchPlatform) postAnswer(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("POST %s: %s %.200s", path, resp.Status, b)
	}
	return b, err
}

// benchServer is DATABASE_URL's PostgreSQL server, else a private cluster (default settings,
// fsync on) started for the benchmark; stop runs when done.
func benchServer(ctx context.Context, getenv func(string) string, stdout io.Writer) (url string, stop func(), err error) {
	s, err := benchPGServer(ctx, getenv, stdout)
	if err != nil {
		return "", nil, err
	}
	return s.url, s.stop, nil
}

// benchPGServer is the benchmarks' PostgreSQL server: DATABASE_URL's, else a private cluster
// (default settings, fsync on, as `make run` starts), whose processes it knows.
func benchPGServer(ctx context.Context, getenv func(string) string, stdout io.Writer) (pgServer, error) {
	if url := getenv("DATABASE_URL"); url != "" {
		return pgServer{url: url, stop: func() {}}, nil
	}
	dir, err := pgcluster.TempDir("orderflow-bench-pg-")
	if err != nil {
		return pgServer{}, err
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		os.RemoveAll(dir)
		return pgServer{}, err
	}
	fmt.Fprintln(stdout, "no DATABASE_URL: a private PostgreSQL cluster (default settings, fsync on)")
	if extra := getenv("BENCH_PG_SETTINGS"); extra != "" { // experiments: "commit_delay=100,commit_siblings=3"
		conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
		if err == nil {
			for _, kv := range strings.Split(extra, ",") {
				k, v, _ := strings.Cut(kv, "=")
				_, _ = conn.Exec(ctx, "alter system set "+k+" = '"+v+"'")
			}
			_, _ = conn.Exec(ctx, "select pg_reload_conf()")
			conn.Close(ctx)
		}
	}
	return pgServer{url: cluster.URL("postgres"), postmaster: cluster.PID, stop: func() { _ = cluster.Stop(); os.RemoveAll(dir) }}, nil
}

// benchDatabase creates a fresh database for benchmark name on the benchmarks' server
// (benchServer); drop removes it and stops the server.
func benchDatabase(ctx context.Context, name string, getenv func(string) string, stdout io.Writer) (dbURL string, drop func(), err error) {
	url, stop, err := benchServer(ctx, getenv, stdout)
	if err != nil {
		return "", nil, err
	}
	db := "bench_" + name + "_" + fmt.Sprint(time.Now().UnixNano())
	admin, err := pgx.Connect(ctx, url)
	if err == nil {
		if _, err = admin.Exec(ctx, "create database "+db); err != nil {
			admin.Close(ctx)
		}
	}
	if err != nil {
		stop()
		return "", nil, err
	}
	return withDatabase(url, db), func() {
		_, _ = admin.Exec(context.Background(), "drop database if exists "+db+" with (force)")
		admin.Close(context.Background())
		stop()
	}, nil
}
