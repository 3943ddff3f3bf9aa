package aggregator_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/rrd/rrdcached"
	"github.com/mvstack/mvstack/statsd/statframe"
)

// recordingMirror is an rrd.Backend that records what it is given and can
// refuse updates.
type recordingMirror struct {
	mu                        sync.Mutex
	creates, updates, commits int
	refuse                    bool
	closed                    bool
}

func (m *recordingMirror) Create(string, rrd.Spec, rrd.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	return nil
}

func (m *recordingMirror) Update(string, rrd.Time, ...rrd.Value) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse {
		return errors.New("mirror is full")
	}
	m.updates++
	return nil
}

func (m *recordingMirror) Commit(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commits++
	return nil
}

func (m *recordingMirror) Close() error { m.closed = true; return nil }

// feed sends one frame of two NUMA records at second s and flushes.
func feed(t *testing.T, agg *aggregator.Aggregator, s *proto.Sealer, src proto.MAC, sec int64) {
	t.Helper()
	f := statframe.Frame{Time: sec * 1e9, Records: []statframe.Record{
		&statframe.NUMA{ID: 0, MemTotal: 100, MemFree: 50}, &statframe.NUMA{ID: 1, MemTotal: 100, MemFree: 40}}}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !agg.Ingest(s.Seal(nil, aggMAC, b), src, aggMAC) {
		t.Fatal("a valid frame was refused")
	}
	if err := agg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMirrorGetsEveryWriteAndItsFailuresCostTheFilesNothing(t *testing.T) {
	keys := keyring(t, 1)
	m := &recordingMirror{}
	cfg := smallConfig(t.TempDir())
	cfg.Keys, cfg.Mirror = keys, m
	agg, err := aggregator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := nodeMAC(0)
	s, _ := proto.NewSealer(keys, emitter.Purpose, src)
	const t0 = 1_700_000_000
	feed(t, agg, s, src, t0+10)
	feed(t, agg, s, src, t0+20)
	if m.creates != 2 || m.updates != 4 || m.commits != 2 {
		t.Fatalf("mirror got %d creates, %d updates, %d commits; want 2, 4, 2", m.creates, m.updates, m.commits)
	}
	m.refuse = true
	feed(t, agg, s, src, t0+30)
	st := agg.Stats()
	if st.UpdatesWritten != 6 || st.UpdatesDropped[aggregator.DropMirror] != 2 {
		t.Fatalf("with a refusing mirror: %d written, %d mirror drops; want 6 and 2", st.UpdatesWritten, st.UpdatesDropped[aggregator.DropMirror])
	}
	agg.Close()
	if !m.closed {
		t.Error("closing the aggregator did not close the mirror")
	}
}

// With a real rrdcached as the mirror, rrdcached writes real .rrd files
// that rrdtool reads, beside the aggregator's own.
func TestRRDCachedMirrorWritesRealRRDFiles(t *testing.T) {
	bin, err := exec.LookPath("rrdcached")
	if err != nil {
		t.Skip("needs rrdcached (apt install rrdcached): not in PATH")
	}
	if _, err := exec.LookPath("rrdtool"); err != nil {
		t.Skip("needs rrdtool (apt install rrdtool): not in PATH")
	}
	tmp := t.TempDir()
	data, journal := filepath.Join(tmp, "data"), filepath.Join(tmp, "journal")
	os.Mkdir(data, 0o755)
	os.Mkdir(journal, 0o755)
	sock := filepath.Join(tmp, "rrdcached.sock")
	cmd := exec.Command(bin, "-g", "-l", "unix:"+sock, "-b", data, "-B", "-p", filepath.Join(tmp, "pid"), "-j", journal)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var c *rrdcached.Client
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = rrdcached.Dial(context.Background(), rrdcached.Config{Addr: "unix:" + sock, DialTimeout: time.Second}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rrdcached did not listen: %v", err)
		}
	}
	keys := keyring(t, 1)
	cfg := smallConfig(t.TempDir())
	cfg.Keys, cfg.Mirror = keys, rrdcached.NewBackend(c)
	agg, err := aggregator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := nodeMAC(0)
	s, _ := proto.NewSealer(keys, emitter.Purpose, src)
	const t0 = 1_700_000_000
	for i := int64(1); i <= 5; i++ {
		feed(t, agg, s, src, t0+10*i)
	}
	agg.Close()
	var files []string
	filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".rrd") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 2 {
		t.Fatalf("rrdcached wrote %d .rrd files, want 2 (one per NUMA node): %v", len(files), files)
	}
	out, err := exec.Command("rrdtool", "flushcached", "--daemon", "unix:"+sock, files[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("rrdtool flushcached: %v\n%s", err, out)
	}
	out, err = exec.Command("rrdtool", "last", files[0]).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1700000050" {
		t.Fatalf("rrdtool last of %s: %q, %v; want 1700000050", files[0], out, err)
	}
}
