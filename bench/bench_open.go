package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// openRun is one open-loop run: a product mix at an offered rate, on a freshly started platform.
type openRun struct {
	products, rate         int
	achieved               float64
	placed, failed         int
	inFlight               int             // sagas not final when the load stopped
	accepted, visible      []time.Duration // POST answered; the order readable at its position
	confirmed              []time.Duration
	unconfirmed, cancelled int
	finished               time.Duration // from the last order sent to the last saga final (-1: not within a minute)
	stockExact             bool          // exactly the confirmed orders' units reserved, on hand untouched
	// What an order cost, over the middle of the run (the first and last seconds left out): CPU of
	// the platform's process and of its PostgreSQL, and the platform's allocations.
	platformCPU, pgCPU time.Duration
	// platformSys, pgSys are the shares of platformCPU and pgCPU spent in the kernel.
	platformSys, pgSys float64
	allocs, allocBytes float64
	// transactions and WAL bytes an order cost its PostgreSQL database.
	transactions, wal float64
	pgBackendsOnly    bool
	byTarget          map[string]float64 // share of the platform's CPU by target
	// growth is the CPU an order cost in the second half of the window over the first: above 1
	// where a cost grows with the log or the read models (a plan that scans a table), 0 unknown.
	growth float64
}

// cpu is the CPU an order cost, the platform and its PostgreSQL together.
func (r openRun) cpu() time.Duration { return r.platformCPU + r.pgCPU }

// benchOpen runs `orderflow-bench open`: for each product mix (50 products, one hot product) and
// each offered rate, a freshly started platform (every target, the saga included, in this process)
// is sent orders at that fixed rate whatever the answers take (open loop: queueing shows), and
// each order is timed placed→visible (a GraphQL read with the command's consistency position) and
// placed→confirmed (the event store's timestamps). It prints a table, the highest rate at which
// placed→confirmed p99 stays within the goal, and writes a chart (SVG).
func benchOpen(fs *flag.FlagSet) benchRun {
	ratesFlag := fs.String("rates", "100,200,400", "offered rates, orders per second")
	mixesFlag := fs.String("products", "50,1", "product mixes: how many products the orders spread over")
	duration := fs.Duration("duration", 60*time.Second, "how long each run places orders")
	goal := fs.Duration("goal", 250*time.Millisecond, "the placed→confirmed p99 a rate must keep to count as sustained")
	chart := fs.String("chart", "", "write an SVG chart of p99 latency against offered rate here")
	cpuProfile := fs.String("cpuprofile", "", "write the platform's CPU profile of each run to this file (suffixed with products and rate when there are several runs)")
	memProfile := fs.String("memprofile", "", "write what the platform allocated over each run's measuring window (a pprof allocs profile) to this file (suffixed as -cpuprofile's)")
	export := fs.Int("export", 0, "also measure, at this rate over the first mix, what exporting traces, logs and metrics (OTLP, to a sink in this process; metrics every 10 s) costs against not: two runs, a ratio")
	baseline := fs.String("baseline", "", "compare against this git revision (built in a worktree of its own) or orderflow-bench binary: --pairs pairs of runs per mix and rate, this code's and the baseline's alternating, and the ratios this/baseline with 95% intervals, in place of the table")
	pairs := fs.Int("pairs", 4, "pairs of runs per mix and rate with --baseline")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		rates, err := ints(*ratesFlag)
		if err != nil {
			return fmt.Errorf("--rates: %w", err)
		}
		mixes, err := ints(*mixesFlag)
		if err != nil {
			return fmt.Errorf("--products: %w", err)
		}
		server, err := benchPGServer(ctx, getenv, stdout)
		if err != nil {
			return err
		}
		defer server.stop()
		if *baseline != "" {
			if *pairs < 1 {
				return fmt.Errorf("--pairs %d: want at least one", *pairs)
			}
			bin, remove, err := baselineBinary(ctx, *baseline, stdout)
			if err != nil {
				return err
			}
			defer remove()
			for _, products := range mixes {
				for _, rate := range rates {
					if err := abCompare(ctx, server, products, rate, *duration, bin, *pairs, stdout); err != nil {
						return fmt.Errorf("%d/s over %d products: %w", rate, products, err)
					}
				}
			}
			return nil
		}
		var runs []openRun
		for _, products := range mixes {
			for _, rate := range rates {
				fmt.Fprintf(stdout, "open loop: %d orders/s over %d product(s) for %s, a fresh platform in a process of its own…\n", rate, products, *duration)
				save := profiles{cpu: *cpuProfile, mem: *memProfile}
				if len(mixes)*len(rates) > 1 {
					save = save.suffixed(fmt.Sprintf(".%d-%d", products, rate))
				}
				r, err := openLoop(ctx, server, products, rate, *duration, save, nil, "", stdout)
				if err != nil {
					return fmt.Errorf("%d/s over %d products: %w", rate, products, err)
				}
				runs = append(runs, r)
			}
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "products\toffered/s\tachieved/s\tplaced\tfailed\taccepted p99\tvisible p50\tp99\tmax\tconfirmed p50\tp99\tmax\tin flight at end\tall final after\tnot confirmed\tstock exact\tCPU/order\t2nd half/1st\tallocs/order\t")
		for _, r := range runs {
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%.2f\t%.0f\t\n", r.products, r.rate, r.achieved, r.placed, r.failed,
				pct(r.accepted, 99), pct(r.visible, 50), pct(r.visible, 99), pct(r.visible, 100), pct(r.confirmed, 50), pct(r.confirmed, 99), pct(r.confirmed, 100),
				r.inFlight, finishedText(r.finished), r.unconfirmed+r.cancelled, yesNo(r.stockExact), ms(r.cpu()), r.growth, r.allocs)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		sustained := map[int]int{}
		for _, r := range runs {
			if r.failed == 0 && r.unconfirmed+r.cancelled == 0 && r.stockExact && r.finished >= 0 && r.finished <= drainGoal &&
				len(r.confirmed) > 0 && pct(r.confirmed, 99) <= *goal && r.rate > sustained[r.products] {
				sustained[r.products] = r.rate
			}
		}
		for _, products := range mixes {
			fmt.Fprintf(stdout, "sustained (placed→confirmed p99 ≤ %s, every saga final within %s of the last order, stock exact, no error): %d orders/s over %d product(s)\n",
				*goal, drainGoal, sustained[products], products)
		}
		if len(mixes) == 2 && sustained[mixes[0]] > 0 {
			fmt.Fprintf(stdout, "open loop: sustained rate of %d product(s) against %d: ratio %.2f\n", mixes[1], mixes[0], float64(sustained[mixes[1]])/float64(sustained[mixes[0]]))
		}
		if *export > 0 {
			if err := exportCost(ctx, server, mixes[0], *export, *duration, stdout); err != nil {
				return err
			}
		}
		if *chart != "" {
			if err := os.MkdirAll(filepath.Dir(*chart), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(*chart, []byte(openChart(runs, mixes, rates, *goal)), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "chart: %s\n", *chart)
		}
		return nil
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("want positive numbers separated by commas, not %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// openLoop is one run on a fresh platform in a process of its own, on server: bin's `platform`
// ("": this binary's).
// profiles are where a run writes the platform's profiles ("": not written).
type profiles struct{ cpu, mem string }

// suffixed is ps with suffix after each path that is set.
func (ps profiles) suffixed(suffix string) profiles {
	for _, p := range []*string{&ps.cpu, &ps.mem} {
		if *p != "" {
			*p += suffix
		}
	}
	return ps
}

func openLoop(ctx context.Context, server pgServer, products, rate int, duration time.Duration, save profiles, env map[string]string, bin string, stdout io.Writer) (openRun, error) {
	r := openRun{products: products, rate: rate}
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["PAYMENT_PROVIDER_LATENCY"], env["GATEWAY_RATE_LIMIT"] = "5ms", "0"
	p, err := startChildPlatform(ctx, fmt.Sprintf("open_%d_%d", products, rate), server, env, bin, stdout)
	if err != nil {
		return r, err
	}
	defer p.stop()
	for i := range products {
		if err := p.post("/api/v1/products", fmt.Sprintf(`{"productId":"open-%d","sku":"OPEN-%d","name":"Open %d","priceCents":100}`, i, i, i)); err != nil {
			return r, err
		}
		if err := p.post(fmt.Sprintf("/api/v1/products/open-%d/restock", i), fmt.Sprintf(`{"quantity":%d}`, openStock)); err != nil {
			return r, err
		}
	}
	// The costs are measured over the middle of the run: the first seconds warm the caches and the
	// pools, the last ones leave orders in flight.
	edge := min(2*time.Second, duration/5)
	window := (duration - 2*edge).Truncate(time.Second)
	type measured struct {
		from, mid, to costs
		byTarget      map[string]float64
		err           error
	}
	measure := make(chan measured, 1)
	go func() {
		var m measured
		defer func() { measure <- m }()
		time.Sleep(edge)
		if m.from, m.err = p.sample(ctx); m.err != nil {
			return
		}
		mid := make(chan error, 1)
		go func() {
			time.Sleep(window / 2)
			var err error
			m.mid, err = p.sample(ctx)
			mid <- err
		}()
		defer func() {
			if err := <-mid; m.err == nil {
				m.err = err
			}
		}()
		if window >= time.Second {
			if save.mem != "" {
				allocs := make(chan error, 1)
				go func() {
					_, err := p.profile(ctx, "allocs", window, save.mem)
					allocs <- err
				}()
				defer func() {
					if err := <-allocs; m.err == nil {
						m.err = err
					}
				}()
			}
			m.byTarget, m.err = p.cpuProfile(ctx, window, save.cpu)
		} else {
			time.Sleep(duration - 2*edge) // too short a window to profile (a smoke test)
		}
		if m.err == nil {
			m.to, m.err = p.sample(ctx)
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var sent []time.Time // when each order placed went out
	tick := time.NewTicker(time.Second / time.Duration(rate))
	start := time.Now()
	n := 0
	for time.Since(start) < duration {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-tick.C:
		}
		n++
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			at := time.Now()
			accepted, visible, err := p.placeAndRead(ctx, fmt.Sprintf("o-%d", i), fmt.Sprintf("c-%d", i%100), fmt.Sprintf("open-%d", i%products))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.failed++
				return
			}
			r.placed++
			sent = append(sent, at)
			r.accepted = append(r.accepted, accepted)
			r.visible = append(r.visible, visible)
		}(n)
	}
	tick.Stop()
	lastSent := time.Now()
	r.achieved = float64(n) / time.Since(start).Seconds()
	m := <-measure
	if m.err != nil {
		return r, fmt.Errorf("measure the platform's costs: %w", m.err)
	}
	wg.Wait()
	inWindow, firstHalf := 0, 0
	for _, at := range sent {
		if !at.Before(m.from.at) && at.Before(m.to.at) {
			inWindow++
			if at.Before(m.mid.at) {
				firstHalf++
			}
		}
	}
	if secondHalf := inWindow - firstHalf; firstHalf > 0 && secondHalf > 0 {
		first := float64(m.mid.platformCPU-m.from.platformCPU+m.mid.pgCPU-m.from.pgCPU) / float64(firstHalf)
		second := float64(m.to.platformCPU-m.mid.platformCPU+m.to.pgCPU-m.mid.pgCPU) / float64(secondHalf)
		if first > 0 {
			r.growth = second / first
		}
	}
	if inWindow > 0 {
		r.platformCPU = (m.to.platformCPU - m.from.platformCPU) / time.Duration(inWindow)
		r.pgCPU = (m.to.pgCPU - m.from.pgCPU) / time.Duration(inWindow)
		r.platformSys = float64(m.to.platformSys-m.from.platformSys) / float64(max(m.to.platformCPU-m.from.platformCPU, 1))
		r.pgSys = float64(m.to.pgSys-m.from.pgSys) / float64(max(m.to.pgCPU-m.from.pgCPU, 1))
		r.allocs = float64(m.to.mallocs-m.from.mallocs) / float64(inWindow)
		r.allocBytes = float64(m.to.allocBytes-m.from.allocBytes) / float64(inWindow)
		r.transactions = float64(m.to.transactions-m.from.transactions) / float64(inWindow)
		r.wal = float64(m.to.wal-m.from.wal) / float64(inWindow)
	}
	r.pgBackendsOnly, r.byTarget = m.to.pgBackendsOnly, m.byTarget
	conn, err := pgx.Connect(ctx, p.dbURL)
	if err != nil {
		return r, err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, `select count(*) from fulfillment.fulfillment where step not in ('CONFIRMED', 'CANCELLED')`).Scan(&r.inFlight); err != nil {
		return r, err
	}
	// Let the sagas finish (a minute at most), then take placed→confirmed from the log.
	r.finished = -1
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var open int
		if err := conn.QueryRow(ctx, `select count(*) from fulfillment.fulfillment where step not in ('CONFIRMED', 'CANCELLED')`).Scan(&open); err != nil {
			return r, err
		}
		if open == 0 {
			r.finished = time.Since(lastSent)
			break
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if r.confirmed, _, err = latencies(ctx, p.dbURL, "o-"); err != nil {
		return r, err
	}
	if err := conn.QueryRow(ctx, `select count(*) filter (where status = 'CANCELLED'), count(*) filter (where status not in ('CONFIRMED', 'CANCELLED'))
from orders.orders`).Scan(&r.cancelled, &r.unconfirmed); err != nil {
		return r, err
	}
	// Stock: each confirmed order holds one unit reserved (until it ships), every cancelled one
	// released its unit, nothing left the shelf and nothing is oversold. The catalog
	// read model follows the inventory streams; give it a few seconds to catch up.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var onHand, reserved, confirmed int64
		if err := conn.QueryRow(ctx, `select (select coalesce(sum(on_hand), 0) from catalog.products where product_id like 'open-%'),
  (select coalesce(sum(reserved), 0) from catalog.products where product_id like 'open-%'),
  (select count(*) from orders.orders where status = 'CONFIRMED')`).Scan(&onHand, &reserved, &confirmed); err != nil {
			return r, err
		}
		if r.stockExact = onHand == int64(products)*openStock && reserved == confirmed; r.stockExact || time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(r.visible)
	slices.Sort(r.accepted)
	fmt.Fprintf(stdout, "  %d placed (%d failed), %.0f/s achieved; accepted p99 %s; visible p99 %s; confirmed p99 %s; %d sagas in flight at the end, all final %s after the last order; stock exact: %s\n",
		r.placed, r.failed, r.achieved, pct(r.accepted, 99), pct(r.visible, 99), pct(r.confirmed, 99), r.inFlight, finishedText(r.finished), yesNo(r.stockExact))
	fmt.Fprintf(stdout, "  an order cost %s of CPU (platform %s, %.0f%% of it in the kernel; PostgreSQL %s%s, %.0f%% in the kernel; the window's second half %.2f× its first), %.0f allocations (%.0f KiB), %.1f PostgreSQL transactions and %.1f KiB of WAL; the platform's CPU by target: %s\n",
		ms(r.cpu()), ms(r.platformCPU), 100*r.platformSys, ms(r.pgCPU), map[bool]string{true: ", its backends only"}[r.pgBackendsOnly], 100*r.pgSys, r.growth, r.allocs, r.allocBytes/1024, r.transactions, r.wal/1024, shares(r.byTarget))
	return r, nil
}

// ms is d in milliseconds, two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// shares lists a share per target, largest first.
func shares(byTarget map[string]float64) string {
	names := slices.Collect(maps.Keys(byTarget))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(byTarget[b], byTarget[a]) })
	var parts []string
	for _, t := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", t, 100*byTarget[t]))
	}
	return strings.Join(parts, ", ")
}

const (
	openStock = 1_000_000       // units each product starts with
	drainGoal = 5 * time.Second // every saga final this long after the last order, at most
)

func finishedText(d time.Duration) string {
	if d < 0 {
		return "not within 1m"
	}
	return d.Round(10 * time.Millisecond).String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// placeAndRead places an order and reads it back through GraphQL at the command's position:
// placed→accepted (the POST's answer) and placed→visible, as a client sees them.
func (p *benchPlatform) placeAndRead(ctx context.Context, orderID, customer, product string) (accepted, visible time.Duration, err error) {
	t0 := time.Now()
	b, err := p.postAnswer(ctx, "/api/v1/orders", fmt.Appendf(nil, `{"orderId":%q,"customerId":%q,"lines":[{"productId":%q,"quantity":1}]}`, orderID, customer, product))
	if err != nil {
		return 0, 0, err
	}
	accepted = time.Since(t0)
	var placed struct{ Position string }
	if err := json.Unmarshal(b, &placed); err != nil {
		return 0, 0, err
	}
	q, err := json.Marshal(map[string]any{"query": "query($id: ID!) { order(id: $id) { id } }", "variables": map[string]string{"id": orderID}})
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/graphql", bytes.NewReader(q))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("X-Consistency-Position", placed.Position)
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var ans struct {
		Data   struct{ Order *struct{ ID string } }
		Errors []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return 0, 0, err
	}
	if ans.Data.Order == nil || len(ans.Errors) > 0 {
		return 0, 0, errors.New("the order was not visible at its position")
	}
	return accepted, time.Since(t0), nil
}

// spaced are the rates whose axis labels stand at least gap pixels (by at) from the previous one
// labelled, lowest first: close rates (200/s and 250/s) do not print over each other.
func spaced(rates []int, at func(float64) float64, gap float64) map[int]bool {
	sorted := slices.Sorted(slices.Values(rates))
	out := map[int]bool{}
	last := math.Inf(-1)
	for _, r := range sorted {
		if p := at(float64(r)); math.Abs(p-last) >= gap {
			out[r], last = true, p
		}
	}
	return out
}

// openChart draws p99 placed→confirmed and placed→visible against the offered rate, one colour
// per product mix, and below it the achieved rate and the CPU an order cost against the offered
// rate, as an SVG.
func openChart(runs []openRun, mixes, rates []int, goal time.Duration) string {
	latency := latencyChart(runs, mixes, rates, goal)
	achieved := achievedChart(runs, mixes, rates)
	return strings.Replace(latency, "</svg>\n", "", 1) + achieved + "</svg>\n"
}

// achievedChart is the lower panel of openChart (from y = 420): achieved orders per second
// against offered (the diagonal is keeping up), with each run's CPU per order written beside it.
func achievedChart(runs []openRun, mixes, rates []int) string {
	const w, left, right, top, height = 860, 70, 270, 450, 300
	maxRate := float64(slices.Max(rates)) * 1.1
	x := func(rate float64) float64 { return left + rate/maxRate*float64(w-left-right) }
	y := func(rate float64) float64 { return top + height - rate/maxRate*float64(height) }
	var b strings.Builder
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14">achieved against offered orders per second (the diagonal: keeping up), and the CPU an order cost (platform + PostgreSQL)</text>`+"\n", left, top-12)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="black"/><line x1="%d" y1="%d" x2="%d" y2="%.0f" stroke="black"/>`+"\n",
		left, y(0), w-right, y(0), left, top, left, y(0))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#bbb" stroke-dasharray="4 4"/>`+"\n", x(0), y(0), x(maxRate), y(maxRate))
	onX, onY := spaced(rates, x, 40), spaced(rates, y, 14)
	for _, rate := range rates {
		if onX[rate] {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%d/s</text>`+"\n", x(float64(rate)), y(0)+18, rate)
		}
		if onY[rate] {
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%d/s</text><line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#eee"/>`+"\n",
				left-6, y(float64(rate))+4, rate, left, y(float64(rate)), w-right, y(float64(rate)))
		}
	}
	colours := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"}
	for i, products := range mixes {
		colour := colours[i%len(colours)]
		var pts []string
		for _, r := range runs {
			if r.products != products {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.0f,%.0f", x(float64(r.rate)), y(r.achieved)))
			fmt.Fprintf(&b, `<circle cx="%.0f" cy="%.0f" r="3" fill="%s"/><text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n",
				x(float64(r.rate)), y(r.achieved), colour, x(float64(r.rate))+6, y(r.achieved)+14, colour, ms(r.cpu()))
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), colour)
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%d product(s): achieved/s</text>`+"\n", w-right+6, top+20+18*i, colour, products)
	}
	return b.String()
}

// latencyChart is the upper panel of openChart.
func latencyChart(runs []openRun, mixes, rates []int, goal time.Duration) string {
	const w, h, left, right, top, bottom = 860, 420, 70, 270, 40, 50
	// A logarithmic latency axis: the runs within the goal and the ones far past it both read.
	lo, hi := 5.0, float64(goal.Milliseconds())*2
	for _, r := range runs {
		for _, d := range []time.Duration{pct(r.confirmed, 99), pct(r.visible, 99)} {
			hi = max(hi, float64(d.Microseconds())/1000*1.3)
		}
	}
	maxRate := float64(slices.Max(rates)) * 1.1
	x := func(rate int) float64 { return left + float64(rate)/maxRate*float64(w-left-right) }
	y := func(ms float64) float64 {
		ms = max(ms, lo)
		return float64(h-bottom) - (math.Log10(ms)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*float64(h-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h+360)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h+360)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14">orderflow open loop: p99 latency (log scale) against offered rate, a fresh platform each run</text>`+"\n", left)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n",
		left, h-bottom, w-right, h-bottom, left, top, left, h-bottom)
	for _, ms := range []float64{5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000} {
		if ms < lo || ms > hi {
			continue
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text><line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#eee"/>`+"\n",
			left-6, y(ms)+4, time.Duration(ms*float64(time.Millisecond)), left, y(ms), w-right, y(ms))
	}
	onX := spaced(rates, func(r float64) float64 { return x(int(r)) }, 40)
	for _, rate := range rates {
		if onX[rate] {
			fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%d/s</text>`+"\n", x(rate), h-bottom+18, rate)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">offered orders per second</text>`+"\n", (left+w-right)/2, h-12)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#c00" stroke-dasharray="4 4"/><text x="%d" y="%.0f" fill="#c00">goal %s</text>`+"\n",
		left, y(float64(goal.Milliseconds())), w-right, y(float64(goal.Milliseconds())), w-right+6, y(float64(goal.Milliseconds()))+4, goal)
	colours := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"}
	legend := top + 20
	for i, products := range mixes {
		colour := colours[i%len(colours)]
		for _, series := range []struct {
			name string
			dash string
			of   func(openRun) time.Duration
		}{{"placed→confirmed", "", func(r openRun) time.Duration { return pct(r.confirmed, 99) }},
			{"placed→visible", "6 3", func(r openRun) time.Duration { return pct(r.visible, 99) }}} {
			var pts []string
			for _, r := range runs {
				if r.products == products {
					ms := float64(series.of(r).Microseconds()) / 1000
					pts = append(pts, fmt.Sprintf("%.0f,%.0f", x(r.rate), y(ms)))
					fmt.Fprintf(&b, `<circle cx="%.0f" cy="%.0f" r="3" fill="%s"/>`+"\n", x(r.rate), y(ms), colour)
				}
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", strings.Join(pts, " "), colour, series.dash)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%d" y="%d">%d product(s), %s p99</text>`+"\n",
				w-right+6, legend, w-right+26, legend, colour, series.dash, w-right+30, legend+4, products, series.name)
			legend += 18
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// cpuProfile starts a CPU profile into path ("": none) and returns what stops it.
func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// exportCost runs rate over products twice, export off then on (traces, logs and metrics, these
// every 10 s as the compose file sends them, over OTLP/HTTP to a sink in this process that
// answers at once), and prints what export costs as ratios.
func exportCost(ctx context.Context, server pgServer, products, rate int, duration time.Duration, stdout io.Writer) error {
	var received atomic.Int64
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = sink.Serve(ln) }()
	defer sink.Close()
	fmt.Fprintf(stdout, "export: %d orders/s over %d product(s), export off then on…\n", rate, products)
	off, err := openLoop(ctx, server, products, rate, duration, profiles{}, nil, "", stdout)
	if err != nil {
		return fmt.Errorf("export off: %w", err)
	}
	on, err := openLoop(ctx, server, products, rate, duration, profiles{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + ln.Addr().String(), "OTEL_METRIC_EXPORT_INTERVAL": "10000"}, "", stdout)
	if err != nil {
		return fmt.Errorf("export on: %w", err)
	}
	fmt.Fprintf(stdout, "export of traces, logs and metrics: %.1f KiB per order sent; CPU per order %s on vs %s off; confirmed p99 %s vs %s\n",
		float64(received.Load())/1024/float64(max(on.placed, 1)), ms(on.cpu()), ms(off.cpu()), pct(on.confirmed, 99), pct(off.confirmed, 99))
	fmt.Fprintf(stdout, "export on vs off: CPU per order ratio %.2f\n", float64(on.cpu())/float64(max(off.cpu(), 1)))
	return nil
}
