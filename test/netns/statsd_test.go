package netns_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/emitter/simsource"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/test/netns"
)

// statsdClient talks HTTP to mvstatsd over its unix socket (the lab's
// namespaces have no IP).
type statsdClient struct {
	t    *testing.T
	http *http.Client
}

func newStatsdClient(t *testing.T, sock string) *statsdClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &statsdClient{t: t, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *statsdClient) get(path string) ([]byte, error) {
	resp, err := c.http.Get("http://mvstatsd" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

func (c *statsdClient) json(path string, v any) {
	c.t.Helper()
	b, err := c.get(path)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

func (c *statsdClient) series() []aggregator.Series {
	c.t.Helper()
	var s []aggregator.Series
	c.json("/api/series", &s)
	return s
}

// Four nodes emit every second over real AF_PACKET sockets to mvstatsd in
// its own namespace: every metric family of §2.6.1 is stored per node,
// domain, VIF and VBD, values are consistent, a graph is a PNG of the size
// asked, /metrics parses; forged and malformed frames are dropped and
// counted; kill -9 during ingest leaves every file valid with at most the
// last step lost, and the restarted daemon carries on.
func TestStatsdFourNodes(t *testing.T) {
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: 5, MTU: 1500})
	bin := netns.BuildBinaries(t, "./cmd/mvstatsd")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	keyFile, data, sock := filepath.Join(dir, "cluster.key"), filepath.Join(dir, "rrd"), filepath.Join(dir, "http.sock")
	k, _ := proto.NewKey(1)
	if err := proto.WriteKeyFile(keyFile, k); err != nil {
		t.Fatal(err)
	}
	keys, err := proto.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	statsHost, nodes := lab.Hosts[4], lab.Hosts[:4]
	const step = 1
	args := []string{"serve", "--iface", statsHost.Iface, "--key", keyFile, "--dir", data, "--listen", "unix:" + sock,
		"--step", "1", "--heartbeat", "5", "--flush", "500ms",
		"--rra", "RRA:AVERAGE:0.5:1:600", "--rra", "RRA:MIN:0.5:5:120", "--rra", "RRA:MAX:0.5:5:120", "--rra", "RRA:LAST:0.5:5:120"}
	start := func() *netns.Process {
		p := statsHost.Start(t, bin["mvstatsd"], args...)
		if err := p.WaitOutput(ctx, "listening on"); err != nil {
			t.Fatal(err)
		}
		return p
	}
	daemon := start()
	c := newStatsdClient(t, sock)

	// The nodes: the emitter in this process, on a raw socket in each
	// node's namespace, host figures from this machine's /proc.
	ectx, stopEmitters := context.WithCancel(ctx)
	defer stopEmitters()
	for i, h := range nodes {
		var link *proto.PacketLink
		if err := h.Do(func() (err error) {
			link, err = proto.OpenPacketLink(h.Iface, proto.EtherTypeStats, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { link.Close() })
		cfg := emitter.DefaultConfig()
		cfg.Link, cfg.Keys, cfg.Interval = link, keys, time.Second
		if i%2 == 0 {
			cfg.Dest = statsHost.MAC // the others broadcast
		}
		sc := simsource.DefaultConfig()
		sc.Seed = uint64(i)
		cfg.Source = simsource.New(sc)
		e, err := emitter.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		go e.Run(ectx)
	}

	// Every entity of every node, bounded wait.
	perNode := map[aggregator.Kind]int{aggregator.KindHost: 1, aggregator.KindPool: 1, aggregator.KindDomain: 2,
		aggregator.KindVCPU: 4, aggregator.KindVIF: 2, aggregator.KindVBD: 4}
	complete := func(series []aggregator.Series) error {
		count := map[string]map[aggregator.Kind]int{}
		for _, s := range series {
			n := s.Labels["node"]
			if count[n] == nil {
				count[n] = map[aggregator.Kind]int{}
			}
			count[n][s.Kind]++
		}
		for _, h := range nodes {
			got := count[h.MAC.NodeID()]
			for k, want := range perNode {
				if got[k] != want {
					return fmt.Errorf("node %s: %d %s series, want %d", h.MAC.NodeID(), got[k], k, want)
				}
			}
			if got[aggregator.KindPCPU] == 0 || got[aggregator.KindNUMA] == 0 {
				return fmt.Errorf("node %s: no pcpu or numa series: %v", h.MAC.NodeID(), got)
			}
		}
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := complete(c.series())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: %v", err)
		}
		time.Sleep(250 * time.Millisecond) // polling a real process, bounded
	}
	// Let the series grow for a while, as an operator would look at them.
	time.Sleep(8 * time.Second)

	series := c.series()
	now := time.Now().Unix()
	for _, s := range series {
		var fr aggregator.FetchResponse
		c.json(fmt.Sprintf("/api/fetch?entity=%s&start=%d&end=%d", s.Entity, now-8, now-2), &fr)
		known := 0
		prev := map[int]float64{}
		free, total := slices.Index(fr.DS, "mem_free"), slices.Index(fr.DS, "mem_total")
		for _, row := range fr.Rows {
			if free >= 0 && row[free+1] != nil && row[total+1] != nil && *row[free+1] > *row[total+1] {
				t.Errorf("%s at %v: mem_free %v > mem_total %v", s.Entity, *row[0], *row[free+1], *row[total+1])
			}
			for i := 1; i < len(row); i++ {
				if row[i] == nil {
					continue
				}
				known++
				v, ds := *row[i], fr.DS[i-1]
				if v < 0 {
					t.Errorf("%s %s = %v: negative", s.Entity, ds, v)
				}
				if ds == "time" {
					// RRD values are floats computed from the samples:
					// 6408.030000000001 then 6408.03 is rounding, not time
					// going back.
					if p, ok := prev[i]; ok && v < p-1e-9*max(1, math.Abs(p)) {
						t.Errorf("%s CPU time went back from %v to %v", s.Entity, p, v)
					}
					prev[i] = v
				}
			}
		}
		if known == 0 {
			t.Errorf("%s: no known value between %d and %d", s.Entity, now-8, now-2)
		}
		// free ≤ total, current ≤ max, from the latest values as sent.
		l := s.Latest
		for _, pair := range [][2]string{{"mem_free", "mem_total"}, {"mem_current", "mem_max"}} {
			small, big := l[pair[0]], l[pair[1]]
			if (small == nil) != (big == nil) || small != nil && *small > *big {
				t.Errorf("%s: %s %v > %s %v", s.Entity, pair[0], derefStat(small), pair[1], derefStat(big))
			}
		}
	}

	node := nodes[0].MAC.NodeID()
	b, err := c.get(fmt.Sprintf("/graph.png?entity=%s/dn1/vif/0&ds=rx_bytes,tx_bytes&start=-20s&width=500&height=250", node))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("graph.png is not a PNG: %v", err)
	} else if r := img.Bounds(); r.Dx() != 500 || r.Dy() != 250 {
		t.Errorf("graph.png is %dx%d, want 500x250", r.Dx(), r.Dy())
	}

	// Forged frames: another key, a node's MAC claimed by another host
	// (the seal binds the sender's MAC), and garbage.
	rogue := nodes[1]
	var rl *proto.PacketLink
	if err := rogue.Do(func() (err error) {
		rl, err = proto.OpenPacketLink(rogue.Iface, proto.EtherTypeStats, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	otherKey, _ := proto.NewKey(1)
	otherRing, _ := proto.NewKeyring(otherKey)
	wrong, _ := proto.NewSealer(otherRing, emitter.Purpose, rl.Addr())
	forged, _ := proto.NewSealer(keys, emitter.Purpose, nodes[0].MAC)
	right, _ := proto.NewSealer(keys, emitter.Purpose, rl.Addr())
	for range 3 {
		rl.WriteTo(wrong.Seal(nil, statsHost.MAC, make([]byte, 40)), statsHost.MAC)
		rl.WriteTo(forged.Seal(nil, statsHost.MAC, make([]byte, 40)), statsHost.MAC)
		rl.WriteTo([]byte("\x01\x01 not a datagram, just noise on the stats EtherType"), statsHost.MAC)
		rl.WriteTo(right.Seal(nil, statsHost.MAC, []byte{1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), statsHost.MAC) // flags set
	}
	want := map[string]float64{aggregator.DropAuth: 6, aggregator.DropMalformed: 6}
	deadline = time.Now().Add(10 * time.Second)
	for {
		drops, fams := statsdMetrics(t, c)
		ok := true
		for r, n := range want {
			ok = ok && drops[r] >= n
		}
		if ok {
			for _, name := range []string{"mvstats_host_mem_free_bytes", "mvstats_pcpu_busy_seconds_total", "mvstats_numa_mem_free_bytes",
				"mvstats_pool_load", "mvstats_domain_mem_max_bytes", "mvstats_vcpu_util_percent", "mvstats_vif_tx_drops_total",
				"mvstats_vbd_outstanding", "mvstatsd_updates_written_total"} {
				if !fams[name] {
					t.Errorf("/metrics lacks %s", name)
				}
			}
			if drops[aggregator.DropReplay] != 0 {
				t.Errorf("honest frames dropped as replays: %v", drops)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drops %v, want at least %v", drops, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// kill -9 during ingest.
	before := map[string]float64{}
	for _, s := range c.series() {
		before[s.Entity] = s.Last
	}
	daemon.Kill()
	// Every file opens on its own (the files are never torn) ...
	files := 0
	err = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rrd") {
			return err
		}
		files++
		f, err := rrd.Open(p)
		if err != nil {
			t.Errorf("after kill -9: %v", err)
			return nil
		}
		defer f.Close()
		for _, cf := range []rrd.CF{rrd.Average, rrd.Min, rrd.Max, rrd.Last} {
			if _, err := f.Fetch(cf, now-60, now+60, 5); err != nil {
				t.Errorf("after kill -9: %s %s: %v", p, cf, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != len(before) {
		t.Errorf("%d files after kill -9, %d series before", files, len(before))
	}
	// ... and with the store's journal replayed, as mvstatsd opens them,
	// no more than the last step is lost.
	store, err := rrd.OpenStore(rrd.DefaultStoreConfig(data))
	if err != nil {
		t.Fatalf("after kill -9 the store does not open: %v", err)
	}
	for entity, b := range before {
		last, err := store.Last(entity + ".rrd")
		if err != nil {
			t.Errorf("after kill -9: %s: %v", entity, err)
			continue
		}
		// What was received but not yet committed is lost: at most one flush
		// interval (0.5 s) and a commit; allow the commit a second on a
		// loaded machine, so at most the last step (1 s) and that.
		if b-last.Unix() > step+0.5+1 {
			t.Errorf("%s: last update %.3f after kill -9, %.3f before: more than the last step lost", entity, last.Unix(), b)
		}
		for _, cf := range []rrd.CF{rrd.Average, rrd.Min, rrd.Max, rrd.Last} {
			if _, err := store.Fetch(entity+".rrd", cf, now-60, now+60, 5); err != nil {
				t.Errorf("after kill -9: %s %s: %v", entity, cf, err)
			}
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	// rrdtool's commands read the files as scripts would.
	hostFile := filepath.Join(data, node, "host.rrd")
	out, err := statsHost.Run(ctx, bin["mvstatsd"], "rrd", "fetch", hostFile, "AVERAGE", "--start", fmt.Sprint(now-5), "--end", fmt.Sprint(now-2))
	if err != nil || !strings.Contains(out, "mem_free") || !strings.Contains(out, fmt.Sprintf("%d:", now-2)) {
		t.Errorf("mvstatsd rrd fetch %s: %v\n%s", hostFile, err, out)
	}

	// Restarted, the daemon finds every series and keeps storing.
	daemon = start()
	after := c.series()
	if len(after) != len(before) {
		t.Errorf("after restart %d series, want %d", len(after), len(before))
	}
	killed := time.Now()
	deadline = killed.Add(10 * time.Second)
	for {
		fresh := 0
		for _, s := range c.series() {
			if s.Last > float64(killed.Unix()) {
				fresh++
			}
		}
		if fresh == len(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart only %d of %d series were updated", fresh, len(before))
		}
		time.Sleep(250 * time.Millisecond)
	}
	drops, _ := statsdMetrics(t, c)
	if drops["write"] != 0 {
		t.Errorf("updates refused after restart: %v", drops)
	}
	stopEmitters()
	if err := daemon.Stop(ctx); err != nil {
		t.Errorf("mvstatsd did not stop cleanly on SIGTERM: %v\n%s", err, daemon.Output())
	}
	if _, err := os.Stat(data); err != nil {
		t.Fatal(err)
	}
}

func derefStat(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// metrics scrapes /metrics, checks it parses with Prometheus' text parser,
// and returns the frame drops by reason (and update drops as "write",
// "stale", "overflow") with the families.
func statsdMetrics(t *testing.T, c *statsdClient) (map[string]float64, map[string]bool) {
	t.Helper()
	b, err := c.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	drops := map[string]float64{}
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		if name != "mvstatsd_frames_dropped_total" && name != "mvstatsd_updates_dropped_total" {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "reason" {
					drops[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return drops, names
}
