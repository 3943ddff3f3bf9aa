package rrdcached

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/rrd/rrdcli"
)

// startRRDCached runs a real rrdcached on a unix socket in a temporary
// directory; it is killed when the test ends.
func startRRDCached(t *testing.T) (sock, dir string) {
	t.Helper()
	bin, err := exec.LookPath("rrdcached")
	if err != nil {
		t.Skip("needs rrdcached (apt install rrdcached): not in PATH")
	}
	if _, err := exec.LookPath("rrdtool"); err != nil {
		t.Skip("needs rrdtool (apt install rrdtool): not in PATH")
	}
	tmp := t.TempDir()
	dir = filepath.Join(tmp, "data")
	journal := filepath.Join(tmp, "journal")
	os.Mkdir(dir, 0o755)
	os.Mkdir(journal, 0o755)
	sock = filepath.Join(tmp, "rrdcached.sock")
	cmd := exec.Command(bin, "-g", "-l", "unix:"+sock, "-b", dir, "-B", "-p", filepath.Join(tmp, "pid"),
		"-j", journal, "-w", "3600", "-f", "7200", "-t", "2", "-o", filepath.Join(tmp, "log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		exited <- nil
	})
	// Poll (bounded) until the real process listens.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := Dial(context.Background(), Config{Addr: "unix:" + sock, DialTimeout: time.Second}); err == nil {
			c.Close()
			return sock, dir
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(tmp, "log"))
			t.Fatalf("rrdcached exited: %v; log:\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(tmp, "log"))
			t.Fatalf("rrdcached did not listen on %s within 10 s; log:\n%s", sock, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRRDCachedWritesRealFiles(t *testing.T) {
	sock, dir := startRRDCached(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: "unix:" + sock, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	spec := rrd.Spec{Step: 10}
	for _, s := range []string{"DS:load:GAUGE:30:0:U", "DS:rx:COUNTER:30:0:U"} {
		d, _ := rrd.ParseDS(s)
		spec.DS = append(spec.DS, d)
	}
	for _, s := range []string{"RRA:AVERAGE:0.5:1:100", "RRA:MAX:0.5:6:20"} {
		a, _ := rrd.ParseRRA(s)
		spec.RRA = append(spec.RRA, a)
	}
	start := rrd.Time{Sec: 1700000000}
	b := NewBackend(c)
	ref, _ := rrd.New(spec, start)
	for _, name := range []string{"node1.rrd", "node2.rrd"} {
		if err := b.Create(name, spec, start); err != nil {
			t.Fatal(err)
		}
	}
	now := start.Sec
	var ctr uint64
	for round := 0; round < 5; round++ {
		for k := 0; k < 40; k++ {
			now += 7
			ctr += uint64(1000 + 13*k)
			v := []rrd.Value{rrd.Float(float64(k % 9)), rrd.Uint(ctr)}
			if k == 17 {
				v[0] = rrd.Unknown
			}
			ref.Update(rrd.Time{Sec: now}, v...)
			b.Update("node1.rrd", rrd.Time{Sec: now}, v...)
			b.Update("node2.rrd", rrd.Time{Sec: now}, v...)
		}
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A refused update comes back as a batch error naming the command.
	b.Update("node1.rrd", rrd.Time{Sec: 5}, rrd.Float(1), rrd.Uint(1))
	if err := b.Commit(ctx); !errors.Is(err, ErrServer) {
		t.Fatalf("update in the past: %v, want ErrServer", err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st["UpdatesReceived"] < 400 {
		t.Errorf("STATS UpdatesReceived = %d, want >= 400 (%v)", st["UpdatesReceived"], st)
	}
	if err := c.Flush(ctx, "node1.rrd"); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx, "node2.rrd"); err != nil {
		t.Fatal(err)
	}
	// The real .rrd files hold what our engine computes.
	for _, name := range []string{"node1.rrd", "node2.rrd"} {
		for _, fa := range [][]string{
			{"AVERAGE", "-s", strconv.FormatInt(now-900, 10), "-e", strconv.FormatInt(now, 10)},
			{"MAX", "-s", strconv.FormatInt(now-1200, 10), "-e", strconv.FormatInt(now, 10), "-r", "60"},
		} {
			out, err := exec.Command("rrdtool", append([]string{"fetch", filepath.Join(dir, name)}, fa...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("rrdtool fetch: %v\n%s", err, out)
			}
			cf, _ := rrd.ParseCF(fa[0])
			s, _ := strconv.ParseInt(fa[2], 10, 64)
			e, _ := strconv.ParseInt(fa[4], 10, 64)
			res := uint64(1)
			if len(fa) > 5 {
				res = 60
			}
			fr, err := ref.Fetch(cf, s, e, res)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			rrdcli.WriteFetch(&want, fr)
			if string(out) != want.String() {
				t.Errorf("%s %v: rrdtool fetch of rrdcached's file:\n%s\nour engine:\n%s", name, fa, out, want.String())
			}
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Error("empty address accepted")
	}
	sock, _ := startRRDCached(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(ctx, "NOSUCHCOMMAND"); !errors.Is(err, ErrServer) {
		t.Errorf("unknown command: %v, want ErrServer", err)
	}
	if err := c.Flush(ctx, "missing.rrd"); !errors.Is(err, ErrServer) {
		t.Errorf("flush of a missing file: %v, want ErrServer", err)
	}
	if _, err := c.Do(ctx, "PING\nPING"); err == nil {
		t.Error("a command with a line break was sent")
	}
}
