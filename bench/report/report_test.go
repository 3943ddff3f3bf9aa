package report

import (
	"strings"
	"testing"
)

func TestRatioReadsTheSameWayForLatencyAndThroughput(t *testing.T) {
	for _, tc := range []struct {
		desc string
		row  Row
		want float64
	}{
		{"throughput twice the anchor", Row{Ours: 200, Anchor: 100}, 2},
		{"latency half the anchor", Row{Ours: 10, Anchor: 20, LowerIsBetter: true}, 2},
		{"latency twice the anchor", Row{Ours: 40, Anchor: 20, LowerIsBetter: true}, 0.5},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := tc.row.Ratio()
			if !ok || got != tc.want {
				t.Fatalf("Ratio() = %v, %v; want %v, true", got, ok, tc.want)
			}
		})
	}
	if _, ok := (Row{Ours: 5}).Ratio(); ok {
		t.Fatal("a row without an anchor has no ratio")
	}
}

func TestPrintShowsFigureAnchorAndRatio(t *testing.T) {
	tb := Table{Title: "proto over veth"}
	tb.Add(Row{What: "p50", Unit: "µs", Ours: 20, AnchorName: "Go TCP", Anchor: 30, LowerIsBetter: true})
	var b strings.Builder
	tb.Print(&b)
	for _, want := range []string{"proto over veth", "p50", "20.0 µs", "30.0 µs", "Go TCP", "×1.50"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
