package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/rest"
)

// freePorts returns n ports that were free a moment ago on 127.0.0.1.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ls []net.Listener
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

type proc struct {
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process was reaped
	http string
}

type cluster struct {
	t     *testing.T
	bin   string
	procs []*proc
	token string
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mvcontroller")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startCluster(t *testing.T, bin string) *cluster {
	t.Helper()
	dir := t.TempDir()
	tok, _, _ := rest.NewToken()
	tokFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 6)
	c := &cluster{t: t, bin: bin, token: tok}
	var boot []string
	for i := range 3 {
		boot = append(boot, "--bootstrap", fmt.Sprintf("c%d=%s/%s", i+1, ports[2*i], ports[2*i+1]))
	}
	for i := range 3 {
		args := append([]string{"serve", "--id", fmt.Sprintf("c%d", i+1),
			"--raft-addr", ports[2*i], "--http-addr", ports[2*i+1],
			"--data-dir", filepath.Join(dir, fmt.Sprintf("c%d", i+1)),
			"--admin-token-file", tokFile, "--log-level", "warn"}, boot...)
		c.procs = append(c.procs, &proc{args: args, http: ports[2*i+1]})
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.kill(i)
		}
	})
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	p := c.procs[i]
	log, err := os.OpenFile(filepath.Join(c.t.TempDir(), fmt.Sprintf("c%d.log", i+1)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(c.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) { cmd.Wait(); log.Close(); close(done) }(p.cmd)
}

// kill sends SIGKILL (kill -9) to replica i.
func (c *cluster) kill(i int) {
	p := c.procs[i]
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

func (c *cluster) client(i int) *client.Client { return client.New(c.procs[i].http, c.token) }

// leader polls the live replicas until one reports itself leader and its
// token works, or fails after the bound.
func (c *cluster) leader(ctx context.Context) int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, p := range c.procs {
			if p.cmd == nil {
				continue
			}
			var cl struct{ Self, Leader string }
			if err := c.client(i).Do(ctx, "GET", "/api/cluster", nil, &cl); err == nil && cl.Leader == cl.Self && cl.Self != "" {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond) // polling real processes, bounded
	}
	c.t.Fatal("no leader within 30 s")
	return -1
}

func registration(k int) map[string]any {
	return map[string]any{
		"mac":       fmt.Sprintf("02:00:00:00:%02x:%02x", k>>8, k&0xff),
		"inventory": map[string]any{"hostname": fmt.Sprintf("n%d", k), "memory_mb": 1024},
	}
}

// countNodes pages through /api/nodes on replica i.
func (c *cluster) countNodes(ctx context.Context, i int) (int, error) {
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
		if err := c.client(i).Do(ctx, "GET", path, nil, &page); err != nil {
			return 0, err
		}
		n += len(page.Items)
		if page.Next == "" {
			return n, nil
		}
		after = page.Next
	}
}

func (c *cluster) waitCount(ctx context.Context, i, want int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got int
	var err error
	for time.Now().Before(deadline) {
		if got, err = c.countNodes(ctx, i); err == nil && got == want {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling real processes, bounded
	}
	c.t.Fatalf("replica %d holds %d nodes (err %v), want %d", i+1, got, err, want)
}

// write registers node k through replica i, retrying 503s; it returns once
// the write is acked.
func (c *cluster) write(ctx context.Context, i, k int) error {
	for {
		err := c.client(i).Do(ctx, "POST", "/api/nodes", registration(k), nil)
		var ae *client.Error
		if err == nil || !(errors.As(err, &ae) && ae.Status == 503) && !isConnErr(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(10 * time.Millisecond) // retry against a real process
	}
}

func isConnErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

func TestDurabilityAndFailoverWithRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	bin := buildBinary(t)
	c := startCluster(t, bin)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c.leader(ctx)

	// 1,000 acked writes, spread over all three replicas (followers forward).
	const writes = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	start := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1)); k <= writes; k = int(next.Add(1)) {
				if err := c.write(ctx, (w+k)%3, k); err != nil {
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
	t.Logf("%d acked writes in %v", writes, time.Since(start).Round(time.Millisecond))

	// kill -9 all three, restart: every acked write is there.
	for i := range 3 {
		c.kill(i)
	}
	for i := range 3 {
		c.start(i)
	}
	c.leader(ctx)
	for i := range 3 {
		c.waitCount(ctx, i, writes)
	}

	// kill -9 of the leader: the others elect a new one that takes writes.
	l := c.leader(ctx)
	killed := time.Now()
	c.kill(l)
	other := (l + 1) % 3
	if err := c.write(ctx, other, writes+1); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader killed: a new leader acked a write after %v", time.Since(killed).Round(time.Millisecond))
	// The killed replica restarts and catches up.
	c.start(l)
	c.waitCount(ctx, l, writes+1)
}
