// Command perfc measures what a performance counter costs on a hot path:
// nanoseconds per increment, uncontended and with every CPU incrementing
// the same counter, and per histogram observation, each beside a plain
// increment and a single shared atomic.Int64 measured in the same run.
//
//	go run ./bench/perfc
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"testing"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/perfcbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/perfc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q", args)
	}
	testing.Init()
	// This machine is shared and noisy: run every case in several short
	// rounds, interleaved so anchor and figure see the same load, and keep
	// each one's best round.
	if err := flag.Set("test.benchtime", "150ms"); err != nil {
		return err
	}
	const rounds = 5
	ns := map[string]float64{}
	for round := range rounds {
		for _, c := range perfcbench.Cases() {
			if err := ctx.Err(); err != nil {
				return err
			}
			r := testing.Benchmark(c.F)
			if r.N == 0 {
				return fmt.Errorf("benchmark %s did not run", c.Name)
			}
			v := float64(r.T.Nanoseconds()) / float64(r.N)
			if old, ok := ns[c.Name]; !ok || v < old {
				ns[c.Name] = v
			}
			fmt.Fprintf(stderr, "round %d %-36s %10d ops %8.2f ns/op\n", round, c.Name, r.N, v)
		}
	}

	procs := runtime.GOMAXPROCS(0)
	par := fmt.Sprintf("all %d Ps on one counter, wall ns/op", procs)
	t := report.Table{Title: fmt.Sprintf("perfc: cost per event (GOMAXPROCS %d, default shards %d)", procs, perfc.DefaultConfig().Shards)}
	row := func(what, ours, anchorName, anchor, note string) {
		t.Add(report.Row{What: what, Unit: "ns", Ours: ns[ours], AnchorName: anchorName, Anchor: ns[anchor], LowerIsBetter: true, Note: note})
	}
	row(fmt.Sprintf("Counter.Inc, uncontended, default (%d shards)", perfc.DefaultConfig().Shards), "counter/inc", "shared atomic.Int64 Add", "anchor/shared_atomic", "")
	row("Counter.Inc, uncontended", "counter/inc", "plain non-atomic x++", "anchor/plain_inc", "")
	row("Counter.Inc, uncontended, 1 shard", "counter/inc_1shard", "shared atomic.Int64 Add", "anchor/shared_atomic", "")
	row("Counter.Inc on a nil counter (no set)", "counter/inc_nil", "plain non-atomic x++", "anchor/plain_inc", "")
	row(fmt.Sprintf("Counter.Inc, contended, default (%d shards)", perfc.DefaultConfig().Shards), "counter/inc_parallel", "shared atomic.Int64, "+par, "anchor/shared_atomic_parallel", "")
	row("Counter.Inc, contended, 1 shard", "counter/inc_parallel_1shard", "shared atomic.Int64, "+par, "anchor/shared_atomic_parallel", "")
	row("Counter.Inc, contended, 8 shards", "counter/inc_parallel_8shards", "shared atomic.Int64, "+par, "anchor/shared_atomic_parallel", "")
	row("Family.With(method).Inc, 4 keys", "family/with_inc", "shared atomic.Int64 Add", "anchor/shared_atomic", "")
	row("Histogram.Observe (22 latency buckets)", "histogram/observe", "shared atomic.Int64 Add", "anchor/shared_atomic", "")
	row("Histogram.Observe, contended", "histogram/observe_parallel", "shared atomic.Int64, "+par, "anchor/shared_atomic_parallel", "")
	row("Histogram.ObserveSince", "histogram/observe_since", "time.Since alone", "anchor/time_since", "")
	t.Add(report.Row{What: "Dump+MarshalBinary, 100 counters + 10 histograms", Unit: "µs", Ours: ns["set/dump_110_marshal"] / 1000, LowerIsBetter: true, Note: "PERFC_DUMP reply cost"})
	t.Print(stdout)
	fmt.Fprintf(stdout, "Best of %d interleaved rounds each. Contended rows: ns/op is wall time over all Ps' operations, so ideal scaling halves it per added P.\n", rounds)
	return nil
}
