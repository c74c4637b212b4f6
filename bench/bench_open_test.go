package bench

import (
	"encoding/xml"
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
