package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/localcluster"
)

func registration(k int) map[string]any {
	return map[string]any{
		"mac":       fmt.Sprintf("02:00:00:00:%02x:%02x", k>>8, k&0xff),
		"inventory": map[string]any{"hostname": fmt.Sprintf("n%d", k), "memory_mb": 1024},
	}
}

func start(t *testing.T) *localcluster.Cluster {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mvcontroller")
	if err := localcluster.Build(t.Context(), ".", bin); err != nil {
		t.Fatal(err)
	}
	c, err := localcluster.Start(localcluster.Config{Bin: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// countNodes pages through /api/nodes on replica i.
func countNodes(ctx context.Context, c *localcluster.Cluster, i int) (int, error) {
	n, after := 0, ""
	for {
		var page struct {
			Items []struct{ ID string }
			Next  string
		}
		path := "/api/nodes?limit=1000"
		if after != "" {
			path += "&after=" + after
		}
		if err := c.Client(i).Do(ctx, "GET", path, nil, &page); err != nil {
			return 0, err
		}
		n += len(page.Items)
		if page.Next == "" {
			return n, nil
		}
		after = page.Next
	}
}

func waitCount(t *testing.T, ctx context.Context, c *localcluster.Cluster, i, want int) {
	t.Helper()
	var got int
	err := localcluster.Retry(ctx, func() error {
		var err error
		if got, err = countNodes(ctx, c, i); err == nil && got != want {
			return localcluster.ErrNotYet
		}
		return err
	})
	if err != nil {
		t.Fatalf("replica c%d holds %d nodes, want %d: %v", i+1, got, want, err)
	}
}

func write(ctx context.Context, c *localcluster.Cluster, i, k int) error {
	return localcluster.Retry(ctx, func() error { return c.Client(i).Do(ctx, "POST", "/api/nodes", registration(k), nil) })
}

func TestDurabilityAndFailoverWithRealProcesses(t *testing.T) {
	c := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}

	// 1,000 acked writes, spread over all three replicas (followers forward).
	const writes = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	began := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1)); k <= writes; k = int(next.Add(1)) {
				if err := write(ctx, c, (w+k)%3, k); err != nil {
					errs <- fmt.Errorf("write %d: %w", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d acked writes in %v", writes, time.Since(began).Round(time.Millisecond))

	// kill -9 all three, restart: every acked write is there.
	for i := range 3 {
		c.Kill(i)
	}
	for i := range 3 {
		if err := c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		waitCount(t, ctx, c, i, writes)
	}

	// kill -9 of the leader: the others elect a new one that takes writes.
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.Kill(l)
	if err := write(ctx, c, (l+1)%3, writes+1); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader killed: a new leader acked a write after %v", time.Since(killed).Round(time.Millisecond))
	// The killed replica restarts and catches up.
	if err := c.Start(l); err != nil {
		t.Fatal(err)
	}
	waitCount(t, ctx, c, l, writes+1)
}

func TestJoinPromoteRemoveWithRealProcesses(t *testing.T) {
	c := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 20; k++ {
		if err := write(ctx, c, k%3, k); err != nil {
			t.Fatal(err)
		}
	}
	j, id, err := c.Join(1)
	if err != nil {
		t.Fatal(err)
	}
	// The joiner is promoted once caught up; then it holds every write.
	err = localcluster.Retry(ctx, func() error {
		var cl struct {
			Members []struct {
				ID    string
				Voter bool
			}
		}
		if err := c.Client(0).Do(ctx, "GET", "/api/cluster", nil, &cl); err != nil {
			return err
		}
		for _, m := range cl.Members {
			if m.ID == id && m.Voter {
				return nil
			}
		}
		return localcluster.ErrNotYet
	})
	if err != nil {
		t.Fatalf("%s never became a voter: %v", id, err)
	}
	waitCount(t, ctx, c, j, 20)
	if err := localcluster.Retry(ctx, func() error { return c.Client(2).Do(ctx, "DELETE", "/api/cluster/members/"+id, nil, nil) }); err != nil {
		t.Fatalf("remove %s: %v", id, err)
	}
	var cl struct{ Members []struct{ ID string } }
	if err := c.Client(0).Do(ctx, "GET", "/api/cluster", nil, &cl); err != nil || len(cl.Members) != 3 {
		t.Errorf("after removing %s: %+v %v, want 3 members", id, cl.Members, err)
	}
}

func TestSIGTERMShutsDownCleanly(t *testing.T) {
	c := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := c.Terminate(ctx, l); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v; want 0", code, err)
	}
}
