package bench

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
	"time"
)

// TestOpenChartIsAnSVGWithALinePerSeries: two mixes, two latency series each (placed→confirmed
// and placed→visible) and an achieved rate each, a point per run and series, the goal line, and
// well-formed XML.
func TestOpenChartIsAnSVGWithALinePerSeries(t *testing.T) {
	t.Parallel()
	ms := func(n int) []time.Duration { return []time.Duration{time.Duration(n) * time.Millisecond} }
	runs := []openRun{
		{products: 50, rate: 100, confirmed: ms(120), visible: ms(60)}, {products: 50, rate: 200, confirmed: ms(200), visible: ms(100)},
		{products: 1, rate: 100, confirmed: ms(125), visible: ms(58)}, {products: 1, rate: 200, confirmed: ms(4000), visible: ms(300)},
	}
	svg := openChart(runs, []int{50, 1}, []int{100, 200}, 250*time.Millisecond)
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v", err)
			}
			break
		}
	}
	if n := strings.Count(svg, "<polyline"); n != 6 {
		t.Errorf("%d lines, want 6", n)
	}
	if n := strings.Count(svg, "<circle"); n != 12 {
		t.Errorf("%d points, want 12", n)
	}
	if !strings.Contains(svg, "goal 250ms") {
		t.Error("no goal line")
	}
}

// TestCloseRatesGetOneLabel: of two rates closer than the gap on an axis, only the first is
// labelled; the others are.
func TestCloseRatesGetOneLabel(t *testing.T) {
	at := func(r float64) float64 { return r / 5 } // 200/s and 250/s: 10 px apart
	got := spaced([]int{250, 100, 200, 400}, at, 20)
	if !got[100] || !got[200] || got[250] || !got[400] {
		t.Errorf("labelled %v, want 100, 200 and 400", got)
	}
}

// TestRatioInterval: the geometric mean of the pairs' ratios and Student's 95% interval on their
// logarithms; one ratio has no interval.
func TestRatioInterval(t *testing.T) {
	mean, lo, hi := ratioInterval([]float64{0.9, 1.1, 1.0})
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"mean", mean, 0.99666}, {"low", lo, 0.77668}, {"high", hi, 1.27894}} {
		if math.Abs(c.got-c.want) > 0.0005 {
			t.Errorf("%s %.5f, want %.5f", c.name, c.got, c.want)
		}
	}
	if v := verdict(lo, hi); v != ": no difference shown" {
		t.Errorf("verdict %q across 1", v)
	}
	if _, lo, hi := ratioInterval([]float64{0.9, 0.91, 0.92}); verdict(lo, hi) != ": lower" {
		t.Errorf("verdict %q for ratios all below 1 and close", verdict(lo, hi))
	}
	if mean, lo, _ := ratioInterval([]float64{1.2}); mean != 1.2 || !math.IsNaN(lo) {
		t.Errorf("one ratio: mean %v, low %v; want 1.2 and no interval", mean, lo)
	}
}
