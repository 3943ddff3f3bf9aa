// Command controller benchmarks the mvstack controller with three real
// mvcontroller replicas on localhost (TCP raft, boltdb): acked REST writes
// per second beside a no-op HTTP handler at the same concurrency, and leader
// failover time over 10 kill -9s beside the floor the raft timers allow.
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/localcluster"
	"github.com/mvstack/mvstack/controller/replica"
)

const (
	writers  = 16
	duration = 3 * time.Second
	kills    = 10
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bench/controller:", err)
		os.Exit(1)
	}
}

func registration(k int64) map[string]any {
	return map[string]any{
		"mac":       fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(k>>32), byte(k>>24), byte(k>>16), byte(k>>8), byte(k)),
		"inventory": map[string]any{"hostname": fmt.Sprintf("n%d", k)},
	}
}

// load runs writers clients against do for d and returns acked writes/s
// and the latencies.
func load(ctx context.Context, d time.Duration, do func(k int64) error) (float64, []time.Duration, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := do(next.Add(1)); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(len(lat)) / time.Since(start).Seconds(), lat, firstErr
}

// load1 is load with a single writer.
func load1(ctx context.Context, d time.Duration, do func(k int64) error) (float64, []time.Duration, error) {
	var lat []time.Duration
	start := time.Now()
	for k := int64(1); time.Since(start) < d; k++ {
		t0 := time.Now()
		if err := do(k); err != nil {
			return 0, nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return float64(len(lat)) / time.Since(start).Seconds(), lat, nil
}

// fsyncLatency is the median time to write 4 KiB and fsync it in dir.
func fsyncLatency(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	return pct(ds, 0.5), nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "bench-controller-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "mvcontroller")
	if err := localcluster.Build(ctx, "./cmd/mvcontroller", bin); err != nil {
		return err
	}
	c, err := localcluster.Start(localcluster.Config{Bin: bin, Dir: dir})
	if err != nil {
		return err
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	l, err := c.Leader(wctx)
	cancel()
	if err != nil {
		return err
	}
	leaderClient := c.Client(l)
	wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	err = localcluster.Retry(wctx, func() error { return leaderClient.Do(wctx, "GET", "/api/nodes", nil, nil) })
	cancel()
	if err != nil {
		return err
	}

	// Anchor: the same client and body against a handler that does nothing.
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("{}"))
	}))
	defer noop.Close()
	anchorClient := client.New(noop.URL, c.Token)
	anchorRate, anchorLat, err := load(ctx, duration, func(k int64) error {
		return anchorClient.Do(ctx, "POST", "/api/nodes", registration(k), nil)
	})
	if err != nil {
		return err
	}
	rate, lat, err := load(ctx, duration, func(k int64) error {
		return leaderClient.Do(ctx, "POST", "/api/nodes", registration(k), nil)
	})
	if err != nil {
		return err
	}
	follower := c.Client((l + 1) % c.Len())
	fRate, _, err := load(ctx, duration, func(k int64) error {
		return follower.Do(ctx, "POST", "/api/nodes", registration(1<<28+k), nil)
	})
	if err != nil {
		return err
	}

	// One writer: a write's latency beside the disk's fsync, of which a
	// raft commit needs two in sequence (the leader's log, then a
	// follower's).
	_, lat1, err := load1(ctx, duration, func(k int64) error {
		return leaderClient.Do(ctx, "POST", "/api/nodes", registration(3<<28+k), nil)
	})
	if err != nil {
		return err
	}
	fsync, err := fsyncLatency(dir, 200)
	if err != nil {
		return err
	}

	// Failover: kill -9 the leader, time until another replica acks a write.
	var fo []time.Duration
	for i := range kills {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		l, err := c.Leader(wctx)
		if err != nil {
			cancel()
			return err
		}
		other := c.Client((l + 1) % c.Len())
		t0 := time.Now()
		c.Kill(l)
		err = localcluster.Retry(wctx, func() error {
			return other.Do(wctx, "POST", "/api/nodes", registration(2<<28+int64(i)), nil)
		})
		fo = append(fo, time.Since(t0))
		if err == nil {
			err = c.Start(l)
		}
		if err == nil { // wait for the restarted replica to rejoin
			err = localcluster.Retry(wctx, func() error {
				var cl struct{ Leader string }
				if err := c.Client(l).Do(wctx, "GET", "/api/cluster", nil, &cl); err != nil {
					return err
				}
				if cl.Leader == "" {
					return localcluster.ErrNotYet
				}
				return nil
			})
		}
		cancel()
		if err != nil {
			return err
		}
	}

	def := replica.DefaultConfig()
	t := report.Table{Title: fmt.Sprintf("controller: 3 mvcontroller replicas on localhost (TCP raft, boltdb), %d concurrent writers, %v each", writers, duration)}
	t.Add(report.Row{What: "acked REST writes/s via the leader", Unit: "writes/s", Ours: rate,
		AnchorName: "same POSTs to a no-op HTTP handler", Anchor: anchorRate, Note: "each write: raft commit on 2 of 3 + fsync"})
	t.Add(report.Row{What: "acked REST writes/s via a follower (forwarded)", Unit: "writes/s", Ours: fRate,
		AnchorName: "same POSTs to a no-op HTTP handler", Anchor: anchorRate})
	t.Add(report.Row{What: "write latency p50 via the leader", Unit: "ms", Ours: ms(pct(lat, 0.5)),
		AnchorName: "no-op HTTP handler p50", Anchor: ms(pct(anchorLat, 0.5)), LowerIsBetter: true})
	t.Add(report.Row{What: "write latency p99 via the leader", Unit: "ms", Ours: ms(pct(lat, 0.99)),
		AnchorName: "no-op HTTP handler p99", Anchor: ms(pct(anchorLat, 0.99)), LowerIsBetter: true})
	t.Add(report.Row{What: "write latency p50, one writer", Unit: "ms", Ours: ms(pct(lat1, 0.5)),
		AnchorName: "2 × fsync p50 of a 4 KiB write, same disk", Anchor: 2 * ms(fsync), LowerIsBetter: true,
		Note: "quorum check + leader log fsync + follower log fsync + apply"})
	floor := ms(def.HeartbeatTimeout)
	t.Add(report.Row{What: fmt.Sprintf("leader failover p50 over %d kill -9", kills), Unit: "ms", Ours: ms(pct(fo, 0.5)),
		AnchorName: "raft floor: heartbeat timeout", Anchor: floor, LowerIsBetter: true,
		Note: fmt.Sprintf("followers wait %v..%v without a heartbeat before electing; issue mark: 3 s", def.HeartbeatTimeout, 2*def.HeartbeatTimeout)})
	t.Add(report.Row{What: fmt.Sprintf("leader failover p99 over %d kill -9", kills), Unit: "ms", Ours: ms(pct(fo, 0.99)),
		AnchorName: "raft ceiling of the wait: 2 × heartbeat timeout", Anchor: 2 * floor, LowerIsBetter: true})
	t.Print(os.Stdout)
	return nil
}
