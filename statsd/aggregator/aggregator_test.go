package aggregator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/emitter/simsource"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/statframe"
)

var aggMAC = proto.MAC{2, 0, 0, 0, 0, 0xaa}

func nodeMAC(i int) proto.MAC { return proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, byte(0x10 + i)} }

func keyring(t *testing.T, id uint8) *proto.Keyring {
	t.Helper()
	k, err := proto.NewKey(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// smallConfig keeps the files small: a 1 s step for 10 minutes, and
// 5-step MIN/MAX/LAST/AVERAGE.
func smallConfig(dir string) aggregator.Config {
	cfg := aggregator.DefaultConfig(dir)
	cfg.Step, cfg.Heartbeat = 1, 5
	cfg.Sync = rrd.SyncNone
	cfg.RRA = []rrd.RRA{{CF: rrd.Average, XFF: 0.5, Steps: 1, Rows: 600}}
	for _, cf := range []rrd.CF{rrd.Average, rrd.Min, rrd.Max, rrd.Last} {
		cfg.RRA = append(cfg.RRA, rrd.RRA{CF: cf, XFF: 0.5, Steps: 5, Rows: 120})
	}
	return cfg
}

// recorder keeps the frames the switch carries, for replays.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) hook(f linktest.Frame) linktest.Verdict {
	if f.Src == nodeMAC(0) && f.To == aggMAC {
		r.mu.Lock()
		r.frames = append(r.frames, bytes.Clone(f.Payload))
		r.mu.Unlock()
	}
	return linktest.Deliver()
}

func get(t *testing.T, h http.Handler, url string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", url, nil))
	return w
}

func getJSON(t *testing.T, h http.Handler, url string, v any) {
	t.Helper()
	w := get(t, h, url)
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", url, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Two nodes emit every second for 30 s through the in-memory switch; the
// aggregator stores a series for every entity of §2.6.1, values fetch back
// consistent, graphs and /metrics render, and forged, replayed and
// malformed frames are dropped and counted without touching a series.
func TestEmitterToAggregator(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
		defer sw.Close()
		keys := keyring(t, 1)
		cfg := smallConfig(dir)
		cfg.Link, cfg.Keys = sw.Link(aggMAC, proto.EtherTypeStats), keys
		agg, err := aggregator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { agg.Run(ctx) })
		for i := range 2 {
			ec := emitter.DefaultConfig()
			ec.Link, ec.Keys, ec.Interval = sw.Link(nodeMAC(i), proto.EtherTypeStats), keys, time.Second
			ec.ProcFS, ec.SysFS = "../emitter/testdata/proc", "../emitter/testdata/sys"
			sc := simsource.DefaultConfig()
			sc.Seed = uint64(i)
			ec.Source = simsource.New(sc)
			e, err := emitter.New(ec)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { e.Run(ctx) })
		}
		time.Sleep(5 * time.Second)
		sw.SetHook(rec.hook)
		time.Sleep(25 * time.Second)
		synctest.Wait()
		sw.SetHook(nil)
		before := agg.Stats()

		// An intruder with another key, one forging a node's MAC, replays of
		// real frames, and garbage.
		intruder := sw.Link(proto.MAC{2, 0, 0, 0, 0, 0x66}, proto.EtherTypeStats)
		other, _ := proto.NewSealer(keyring(t, 1), emitter.Purpose, intruder.Addr())
		forged, _ := proto.NewSealer(keyring(t, 1), emitter.Purpose, nodeMAC(0))
		bad := statframe.Frame{Time: time.Now().UnixNano(), Records: []statframe.Record{&statframe.Host{Time: time.Now().UnixNano(), MemTotal: 1, MemFree: 666}}}
		body, _ := bad.MarshalBinary()
		intruder.WriteTo(other.Seal(nil, aggMAC, body), aggMAC)
		intruder.WriteTo(forged.Seal(nil, aggMAC, body), aggMAC)
		rec.mu.Lock()
		replays := rec.frames[:3] // node 0's first frames after 5 s
		rec.mu.Unlock()
		replayer := sw.Link(nodeMAC(0), proto.EtherTypeStats) // frames as node 0 sent them
		for _, f := range replays {
			replayer.WriteTo(f, proto.Broadcast)
		}
		intruder.WriteTo([]byte("not a stat frame at all, just bytes long enough"), aggMAC)
		valid, _ := proto.NewSealer(keys, emitter.Purpose, intruder.Addr())
		intruder.WriteTo(valid.Seal(nil, aggMAC, []byte{1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0}), aggMAC) // 9 records promised, none there
		intruder.WriteTo(valid.Seal(nil, aggMAC, []byte{1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), aggMAC)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		cancel()
		wg.Wait()

		st := agg.Stats()
		want := map[string]uint64{aggregator.DropAuth: 2, aggregator.DropReplay: 3, aggregator.DropTruncated: 1, aggregator.DropMalformed: 2}
		for r, n := range want {
			if got := st.FramesDropped[r] - before.FramesDropped[r]; got != n {
				t.Errorf("frames dropped for %s: %d, want %d (all: %v)", r, got, n, st.FramesDropped)
			}
		}
		if before.FramesDropped[aggregator.DropAuth]+before.FramesDropped[aggregator.DropReplay] != 0 {
			t.Errorf("honest frames were dropped: %v", before.FramesDropped)
		}
		if st.UpdatesWritten == 0 || st.UpdatesDropped[aggregator.DropWrite] != 0 {
			t.Errorf("updates: %+v", st)
		}

		h := agg.Handler()
		var series []aggregator.Series
		getJSON(t, h, "/api/series", &series)
		byKind := map[aggregator.Kind]map[string]int{}
		for _, s := range series {
			if byKind[s.Kind] == nil {
				byKind[s.Kind] = map[string]int{}
			}
			byKind[s.Kind][s.Labels["node"]]++
			if s.Labels["node"] == intruder.Addr().NodeID() {
				t.Errorf("a series from the intruder: %+v", s)
			}
		}
		for _, k := range aggregator.Kinds {
			for i := range 2 {
				node := nodeMAC(i).NodeID()
				want := map[aggregator.Kind]int{aggregator.KindHost: 1, aggregator.KindPCPU: 2, aggregator.KindNUMA: 2,
					aggregator.KindPool: 1, aggregator.KindDomain: 2, aggregator.KindVCPU: 4, aggregator.KindVIF: 2, aggregator.KindVBD: 4}[k]
				if got := byKind[k][node]; got != want {
					t.Errorf("node %s: %d %s series, want %d", node, got, k, want)
				}
			}
		}
		node := nodeMAC(0).NodeID()
		var host aggregator.FetchResponse
		now := time.Now().Unix()
		getJSON(t, h, fmt.Sprintf("/api/fetch?entity=%s/host&start=%d&end=%d", node, now-20, now-5), &host)
		if host.Step != 1 || len(host.Rows) < 15 || len(host.DS) != 9 {
			t.Fatalf("host fetch: step %d, %d rows, ds %v", host.Step, len(host.Rows), host.DS)
		}
		for _, r := range host.Rows {
			if r[5] == nil || r[6] == nil || *r[6] > *r[5] || *r[5] != 8000000*1024 {
				t.Errorf("host row %v: want mem_free <= mem_total = 8192000000", deref(r))
			}
			if *r[6] == 666 {
				t.Errorf("a forged value was stored")
			}
		}
		var vif aggregator.FetchResponse
		getJSON(t, h, fmt.Sprintf("/api/fetch?entity=%s/dn1/vif/0&ds=rx_packets,tx_packets&cf=MAX&resolution=5&start=%d&end=%d", node, now-25, now-5), &vif)
		if vif.Step != 5 || vif.CF != "MAX" || len(vif.DS) != 2 {
			t.Errorf("vif fetch: step %d, cf %s, ds %v", vif.Step, vif.CF, vif.DS)
		}
		for _, r := range vif.Rows {
			// simsource: rx packets grow by 10+seed per second.
			if r[1] == nil || *r[1] != 11 {
				t.Errorf("vif row %v: rx_packets rate want 11/s", deref(r))
			}
		}
		var vcpu aggregator.FetchResponse
		getJSON(t, h, fmt.Sprintf("/api/fetch?entity=%s/dn1/vcpu/0&ds=time&start=%d&end=%d", node, now-25, now-5), &vcpu)
		prev := -1.0
		for _, r := range vcpu.Rows {
			if r[1] != nil {
				if *r[1] < prev {
					t.Errorf("vcpu time went back from %v to %v", prev, *r[1])
				}
				prev = *r[1]
			}
		}
		if prev <= 0 {
			t.Errorf("vcpu time never known: %v", vcpu.Rows)
		}

		w := get(t, h, fmt.Sprintf("/graph.png?entity=%s/dn1/vbd/0&width=640&height=200&start=-30s", node))
		img, err := png.Decode(w.Body)
		if err != nil {
			t.Fatalf("graph.png: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 200 {
			t.Errorf("graph is %dx%d, want 640x200", b.Dx(), b.Dy())
		}
		w = get(t, h, fmt.Sprintf("/graph.svg?entity=%s/host&ds=load1", node))
		if !strings.Contains(w.Body.String(), "<svg") {
			t.Errorf("graph.svg: %.200s", w.Body)
		}
		for url, code := range map[string]int{
			"/api/fetch":                                    400,
			"/api/fetch?entity=nope/host":                   404,
			"/api/fetch?entity=" + node + "/host&ds=nope":   404,
			"/api/fetch?entity=" + node + "/host&cf=MEDIAN": 400,
			"/graph.png?entity=" + node + "/host&width=9":   400,
		} {
			if w := get(t, h, url); w.Code != code {
				t.Errorf("GET %s: %d, want %d", url, w.Code, code)
			}
		}

		w = get(t, h, "/metrics")
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(w.Body)
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		for _, name := range []string{"mvstats_host_mem_free_bytes", "mvstats_pcpu_busy_seconds_total", "mvstats_numa_mem_total_bytes",
			"mvstats_pool_load", "mvstats_domain_mem_current_bytes", "mvstats_domain_info", "mvstats_vcpu_util_percent",
			"mvstats_vif_rx_bytes_total", "mvstats_vbd_wr_sectors_total", "mvstatsd_frames_dropped_total", "mvstatsd_updates_written_total"} {
			if fams[name] == nil {
				t.Errorf("/metrics has no %s", name)
			}
		}
		if f := fams["mvstats_vbd_rd_req_total"]; f != nil {
			l := map[string]string{}
			for _, lp := range f.Metric[0].Label {
				l[lp.GetName()] = lp.GetValue()
			}
			for _, k := range []string{"node", "domain", "vbd", "device", "backing"} {
				if l[k] == "" {
					t.Errorf("vbd metric without label %s: %v", k, l)
				}
			}
		}
		if err := agg.Close(); err != nil {
			t.Fatal(err)
		}

		// Restarted on the same directory, every series is there again.
		cfg.Link = nil
		again, err := aggregator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer again.Close()
		if got := again.List("", ""); len(got) != len(series) {
			t.Errorf("after restart %d series, want %d", len(got), len(series))
		}
		if _, err := again.Fetch(node+"/host", nil, rrd.Last, now-20, now-5, 0); err != nil {
			t.Errorf("fetch after restart: %v", err)
		}
	})
}

func deref(r []*float64) []any {
	var out []any
	for _, v := range r {
		if v == nil {
			out = append(out, nil)
		} else {
			out = append(out, *v)
		}
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	ok := aggregator.DefaultConfig(t.TempDir())
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc string
		mod  func(*aggregator.Config)
		want string
	}{
		{"no dir", func(c *aggregator.Config) { c.Dir = "" }, "Dir"},
		{"link without keys", func(c *aggregator.Config) {
			c.Link = linktest.NewSwitch(linktest.Config{}).Link(aggMAC, proto.EtherTypeStats)
		}, "Keys"},
		{"heartbeat under the step", func(c *aggregator.Config) { c.Heartbeat = 5 }, "Heartbeat"},
		{"no archive", func(c *aggregator.Config) { c.RRA = nil }, "archives"},
		{"no flush interval", func(c *aggregator.Config) { c.FlushInterval = 0 }, "FlushInterval"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			cfg := ok
			c.mod(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error naming %s", err, c.want)
			}
		})
	}
}
