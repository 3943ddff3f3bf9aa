// Command perfcrpc measures what a node's performance counters cost the
// control protocol: RPC round trips per second over the in-memory Ethernet
// switch with the node counting every request it serves (served counter,
// latency histogram, perfcrpc.Instrument, plus the endpoint's Stats and the
// PERFC handlers attached to the same set) beside the same node without
// counters, in interleaved rounds of one run. The goal is under 1%.
//
//	go run ./bench/perfcrpc
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/perfcrpc"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/perfcrpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("perfcrpc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", 25, "interleaved rounds per case")
	span := fs.Duration("span", 150*time.Millisecond, "length of one round")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *span <= 0 {
		return errors.New("-rounds and -span must be positive")
	}
	testing.Init()
	if err := flag.Set("test.benchtime", "150ms"); err != nil {
		return err
	}
	r, err := newRig()
	if err != nil {
		return err
	}
	defer r.close()

	t := report.Table{Title: "perfcrpc: node counters and RPC throughput (in-memory switch, 64 B ping-like requests)"}
	for _, callers := range []int{1, 16} {
		var plain, counted, ratios []float64
		for round := range *rounds {
			// Alternate which goes first, so drift in the machine's load
			// falls on both alike.
			order := []string{methodPlain, methodCounted}
			if round%2 == 1 {
				order = []string{methodCounted, methodPlain}
			}
			for _, m := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				rate, err := r.rate(ctx, m, callers, *span)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "round %d %d callers %-8s %10.0f RPC/s\n", round, callers, m, rate)
				if m == methodPlain {
					plain = append(plain, rate)
				} else {
					counted = append(counted, rate)
				}
			}
			ratios = append(ratios, counted[round]/plain[round])
		}
		t.Add(report.Row{
			What: fmt.Sprintf("RPC round trips/s, %d caller(s), node counting each request", callers), Unit: "RPC/s",
			Ours: median(counted), AnchorName: "same node, no counters", Anchor: median(plain),
			Note: fmt.Sprintf("median of paired rounds ×%.3f; goal ×0.99 or better", median(ratios)),
		})
	}

	// The counters' own cost per request, measured apart: the instrumented
	// handler beside the bare one, called directly.
	bare := benchHandler(perfcrpc.Ping)
	set, err := perfc.NewSet(nil)
	if err != nil {
		return err
	}
	inst := benchHandler(perfcrpc.Instrument(set, "echo", perfcrpc.Ping))
	extra := max(inst-bare, 0)
	rtt := 1e9 / median(r.lastPlain)
	t.Add(report.Row{What: "counters per served request (Instrument: Inc, time.Now, ObserveSince)", Unit: "ns",
		Ours: extra, AnchorName: "1-caller round trip, no counters", Anchor: rtt, LowerIsBetter: true,
		Note: fmt.Sprintf("%.3f%% of a round trip", 100*extra/rtt)})
	t.Print(stdout)
	fmt.Fprintf(stdout, "Medians of %d interleaved rounds of %v each; a paired ratio compares the two halves of one round.\n"+
		"On a busy machine the throughput rows swing by more than the counters cost: the last row is their own share.\n", *rounds, *span)
	return nil
}

const (
	methodPlain   = "plain"
	methodCounted = "counted"
)

// rig is a node and a caller on one in-memory switch. The node serves the
// same echo twice: bare, and wrapped with its counters.
type rig struct {
	sw        *linktest.Switch
	node, ctl *proto.Endpoint
	lastPlain []float64 // 1-caller plain rates, for the cost row
}

func newRig() (*rig, error) {
	k, err := proto.NewKey(1)
	if err != nil {
		return nil, err
	}
	keys, err := proto.NewKeyring(k)
	if err != nil {
		return nil, err
	}
	r := &rig{sw: linktest.NewSwitch(linktest.Config{MTU: 1500})}
	open := func(mac proto.MAC) (*proto.Endpoint, error) {
		cfg := proto.DefaultConfig()
		cfg.Keys = keys
		return proto.NewEndpoint(r.sw.Link(mac, proto.EtherTypeControl), cfg)
	}
	if r.node, err = open(proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}); err != nil {
		return nil, err
	}
	if r.ctl, err = open(proto.MAC{2, 0, 0, 0, 0, 1}); err != nil {
		r.node.Close()
		return nil, err
	}
	// The node's whole perfc wiring: PERFC handlers, the endpoint's Stats,
	// and the counted handler.
	set, err := perfc.NewSet(nil)
	if err != nil {
		return nil, err
	}
	perfcrpc.Register(r.node, set)
	if _, err := perfcrpc.AttachStats(set, r.node); err != nil {
		return nil, err
	}
	r.node.Handle(methodPlain, perfcrpc.Ping)
	r.node.Handle(methodCounted, perfcrpc.Instrument(set, methodCounted, perfcrpc.Ping))
	return r, nil
}

func (r *rig) close() {
	r.ctl.Close()
	r.node.Close()
	r.sw.Close()
}

// rate makes calls of method from callers goroutines for span and returns
// the round trips per second.
func (r *rig) rate(ctx context.Context, method string, callers int, span time.Duration) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	payload := make([]byte, 64)
	start := time.Now()
	deadline := start.Add(span)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := r.ctl.Call(ctx, r.node.Addr(), method, payload); err != nil {
					once.Do(func() { firstErr = err })
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	v := float64(done.Load()) / time.Since(start).Seconds()
	if method == methodPlain && callers == 1 {
		r.lastPlain = append(r.lastPlain, v)
	}
	return v, nil
}

// benchHandler returns the best ns per call of h over a few rounds.
func benchHandler(h proto.Handler) float64 {
	req := &proto.Request{Method: "echo", Payload: make([]byte, 64)}
	best := 0.0
	for range 5 {
		res := testing.Benchmark(func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				h(ctx, req)
			}
		})
		v := float64(res.T.Nanoseconds()) / float64(res.N)
		if best == 0 || v < best {
			best = v
		}
	}
	return best
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
