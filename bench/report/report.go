// Package report prints benchmark figures beside their anchors.
//
// Every figure mvstack's benchmarks print stands next to an anchor measured
// in the same run on the same machine (Go TCP over the same veth pair,
// vblade, rrdcached, a local file), with their ratio, because this machine is
// noisy and only figures from one run compare.
package report

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Row is one figure beside its anchor.
type Row struct {
	What       string  // what was measured, e.g. "RPC round trip p50, 64 B"
	Unit       string  // e.g. "µs", "MB/s", "ops/s"
	Ours       float64 // our figure
	AnchorName string  // what the anchor is, e.g. "Go TCP, same veth"
	Anchor     float64 // the anchor's figure, same unit; 0 when there is none
	// LowerIsBetter marks latencies and costs, so the ratio reads "better
	// than 1" the same way for every row.
	LowerIsBetter bool
	Note          string // e.g. the first mark the issue sets
}

// Table collects rows and prints them together.
type Table struct {
	Title string
	Rows  []Row
}

// Add appends a row.
func (t *Table) Add(r Row) { t.Rows = append(t.Rows, r) }

// Ratio is ours over the anchor for higher-is-better figures and anchor over
// ours for lower-is-better ones, so a ratio above 1 always means we did better.
func (r Row) Ratio() (float64, bool) {
	if r.Anchor == 0 || r.Ours == 0 {
		return 0, false
	}
	if r.LowerIsBetter {
		return r.Anchor / r.Ours, true
	}
	return r.Ours / r.Anchor, true
}

// Print writes the table. The ratio column reads ×1.00 at parity and is
// above 1 when our figure is the better one.
func (t *Table) Print(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n", t.Title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tours\tanchor\tanchor is\tratio (>1 better)\tnote")
	for _, r := range t.Rows {
		ratio := "-"
		if v, ok := r.Ratio(); ok {
			ratio = fmt.Sprintf("×%.2f", v)
		}
		anchor := "-"
		if r.Anchor != 0 {
			anchor = fmt.Sprintf("%s %s", num(r.Anchor), r.Unit)
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\n", r.What, num(r.Ours), r.Unit, anchor, r.AnchorName, ratio, r.Note)
	}
	tw.Flush()
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
