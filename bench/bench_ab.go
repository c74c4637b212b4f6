package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Paired runs against a baseline (`orderflow-bench open --baseline REV --pairs N`). On a shared
// two-core machine one run's CPU per order moves by ±5–10% from run to run, more than most single
// changes save; two versions run one after the other, alternating which goes first, pair by pair,
// see the same machine, and the ratios of the pairs tell a difference from the noise.

// abPair is one pair of runs: this code's and the baseline's, on fresh platforms one after the other.
type abPair struct{ this, base openRun }

// abCompare runs pairs pairs of runs at rate over products, this code's platform and bin's
// (the baseline's orderflow-bench) alternating which runs first, and prints each pair and the
// ratios this/baseline with their 95% intervals.
func abCompare(ctx context.Context, server pgServer, products, rate int, duration time.Duration, bin string, pairs int, stdout io.Writer) error {
	var runs []abPair
	for i := range pairs {
		var pair abPair
		for _, base := range [2]bool{i%2 == 1, i%2 == 0} {
			who, b, into := "this code", "", &pair.this
			if base {
				who, b, into = "the baseline", bin, &pair.base
			}
			fmt.Fprintf(stdout, "pair %d of %d, %s: %d orders/s over %d product(s) for %s, a fresh platform in a process of its own…\n", i+1, pairs, who, rate, products, duration)
			r, err := openLoop(ctx, server, products, rate, duration, profiles{}, nil, b, stdout)
			if err != nil {
				return fmt.Errorf("pair %d, %s: %w", i+1, who, err)
			}
			*into = r
		}
		runs = append(runs, pair)
	}
	printPairs(runs, stdout)
	return nil
}

// abFigure is one figure of a run that the pairs compare.
type abFigure struct {
	name string
	of   func(openRun) float64
	unit func(float64) string
}

var abFigures = func() []abFigure {
	cpu := func(v float64) string { return ms(time.Duration(v)) }
	latency := func(v float64) string { return time.Duration(v).Round(100 * time.Microsecond).String() }
	return []abFigure{
		{"CPU per order", func(r openRun) float64 { return float64(r.cpu()) }, cpu},
		{"platform CPU per order", func(r openRun) float64 { return float64(r.platformCPU) }, cpu},
		{"PostgreSQL CPU per order", func(r openRun) float64 { return float64(r.pgCPU) }, cpu},
		{"allocations per order", func(r openRun) float64 { return r.allocs }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
		{"WAL per order", func(r openRun) float64 { return r.wal }, func(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }},
		{"visible p50", func(r openRun) float64 { return float64(pct(r.visible, 50)) }, latency},
		{"confirmed p50", func(r openRun) float64 { return float64(pct(r.confirmed, 50)) }, latency},
		{"accepted p99", func(r openRun) float64 { return float64(pct(r.accepted, 99)) }, latency},
		{"visible p99", func(r openRun) float64 { return float64(pct(r.visible, 99)) }, latency},
		{"confirmed p99", func(r openRun) float64 { return float64(pct(r.confirmed, 99)) }, latency},
	}
}()

// printPairs prints the pairs' CPU per order and, for each figure, the ratio this/baseline (the
// geometric mean of the pairs' ratios) with its 95% interval.
func printPairs(pairs []abPair, stdout io.Writer) {
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tCPU/order this\tbaseline\tratio\tplatform this\tbaseline\tPostgreSQL this\tbaseline\tconfirmed p99 this\tbaseline\t")
	for i, p := range pairs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", i+1, ms(p.this.cpu()), ms(p.base.cpu()), float64(p.this.cpu())/float64(max(p.base.cpu(), 1)),
			ms(p.this.platformCPU), ms(p.base.platformCPU), ms(p.this.pgCPU), ms(p.base.pgCPU), pct(p.this.confirmed, 99), pct(p.base.confirmed, 99))
	}
	_ = tw.Flush()
	for _, f := range abFigures {
		var ratios []float64
		var this, base float64
		for _, p := range pairs {
			a, b := f.of(p.this), f.of(p.base)
			this, base = this+a/float64(len(pairs)), base+b/float64(len(pairs))
			if a > 0 && b > 0 {
				ratios = append(ratios, a/b)
			}
		}
		mean, lo, hi := ratioInterval(ratios)
		fmt.Fprintf(stdout, "%s, this code against the baseline: ratio %.3f (95%% interval %s; means %s vs %s)%s\n",
			f.name, mean, interval(lo, hi), f.unit(this), f.unit(base), verdict(lo, hi))
	}
}

func interval(lo, hi float64) string {
	if math.IsNaN(lo) {
		return "needs two pairs"
	}
	return fmt.Sprintf("%.3f–%.3f", lo, hi)
}

// verdict says whether the interval tells the two apart.
func verdict(lo, hi float64) string {
	switch {
	case math.IsNaN(lo):
		return ""
	case hi < 1:
		return ": lower"
	case lo > 1:
		return ": higher"
	}
	return ": no difference shown"
}

// ratioInterval is the geometric mean of ratios and its 95% confidence interval (Student's t on
// the logarithms); lo and hi are NaN for fewer than two ratios.
func ratioInterval(ratios []float64) (mean, lo, hi float64) {
	n := len(ratios)
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	var sum float64
	for _, r := range ratios {
		sum += math.Log(r)
	}
	m := sum / float64(n)
	if n < 2 {
		return math.Exp(m), math.NaN(), math.NaN()
	}
	var ss float64
	for _, r := range ratios {
		ss += (math.Log(r) - m) * (math.Log(r) - m)
	}
	half := studentT95(n-1) * math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
	return math.Exp(m), math.Exp(m - half), math.Exp(m + half)
}

// studentT95 is the two-sided 95% quantile of Student's t with df degrees of freedom.
func studentT95(df int) float64 {
	table := []float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131}
	switch {
	case df < 1:
		return math.NaN()
	case df <= len(table):
		return table[df-1]
	case df < 30:
		return 2.09
	}
	return 1.96
}

// baselineBinary is the orderflow-bench of rev: rev itself if it names a file (a binary built
// before), else built from that git revision of this repository (a worktree of its own, removed
// after the build). remove deletes what was built.
func baselineBinary(ctx context.Context, rev string, stdout io.Writer) (bin string, remove func(), err error) {
	if st, err := os.Stat(rev); err == nil && !st.IsDir() {
		return rev, func() {}, nil
	}
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", nil, fmt.Errorf("--baseline %s: neither a file nor a revision of a git checkout here: %w", rev, err)
	}
	repo := strings.TrimSpace(string(top))
	dir, err := os.MkdirTemp("", "orderflow-bench-baseline-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	src, bin := filepath.Join(dir, "src"), filepath.Join(dir, "orderflow-bench")
	fmt.Fprintf(stdout, "baseline: building orderflow-bench at %s…\n", rev)
	if out, err := exec.CommandContext(ctx, "git", "-C", repo, "worktree", "add", "--detach", src, rev).CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("--baseline %s: git worktree add: %w: %s", rev, err, out)
	}
	defer func() {
		_ = exec.Command("git", "-C", repo, "worktree", "remove", "--force", src).Run()
		_ = exec.Command("git", "-C", repo, "worktree", "prune").Run()
	}()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/orderflow-bench")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("--baseline %s: go build: %w: %s", rev, err, out)
	}
	return bin, remove, nil
}
