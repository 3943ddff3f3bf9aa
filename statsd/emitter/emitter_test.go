package emitter_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/emitter/simsource"
	"github.com/mvstack/mvstack/statsd/statframe"
)

var (
	nodeMAC = proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}
	aggMAC  = proto.MAC{2, 0, 0, 0, 0, 0xaa}
)

func testKeys(t *testing.T) *proto.Keyring {
	t.Helper()
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// sample is what the aggregator side received for one sample time.
type sample struct {
	frames int
	recs   []statframe.Record
}

// receive reads and opens frames until n distinct sample times were seen
// and the link is quiet.
func receive(t *testing.T, l proto.Link, keys *proto.Keyring, mtu int) map[int64]*sample {
	t.Helper()
	o := proto.NewOpener(keys, emitter.Purpose)
	got := map[int64]*sample{}
	buf := make([]byte, 9000)
	for {
		l.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, src, dst, err := l.ReadFrom(buf)
		if proto.IsTimeout(err) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > mtu {
			t.Errorf("frame of %d bytes over the MTU %d", n, mtu)
		}
		if src != nodeMAC || dst != aggMAC {
			t.Errorf("frame %s → %s", src, dst)
		}
		p, err := o.Open(buf[:n], src, dst)
		if err != nil {
			t.Fatalf("frame does not open with the cluster key: %v", err)
		}
		var f statframe.Frame
		if err := f.UnmarshalBinary(p); err != nil {
			t.Fatal(err)
		}
		s := got[f.Time]
		if s == nil {
			s = &sample{}
			got[f.Time] = s
		}
		s.frames++
		s.recs = append(s.recs, f.Records...)
	}
}

// The emitter sends every metric group of §2.6.1 every interval, packed
// into frames no larger than the MTU, sealed with the cluster key, with
// the host's figures as /proc and /sys give them, and vCPU utilisation
// from consecutive samples.
func TestEmitterSendsEveryGroupEachInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const mtu = 400 // small: a sample needs several frames
		sw := linktest.NewSwitch(linktest.Config{MTU: mtu})
		defer sw.Close()
		keys := testKeys(t)
		agg := sw.Link(aggMAC, proto.EtherTypeStats)
		cfg := emitter.DefaultConfig()
		cfg.Link = sw.Link(nodeMAC, proto.EtherTypeStats)
		cfg.Keys, cfg.Dest = keys, aggMAC
		cfg.Interval = 2 * time.Second
		cfg.ProcFS, cfg.SysFS = "testdata/proc", "testdata/sys"
		sim := simsource.DefaultConfig()
		cfg.Source = simsource.New(sim)
		e, err := emitter.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- e.Run(ctx) }()
		time.Sleep(5 * time.Second) // fake time: samples at 0, 2 and 4 s
		synctest.Wait()
		cancel()
		<-done
		got := receive(t, agg, keys, mtu)
		if len(got) != 3 {
			t.Fatalf("%d samples, want 3 (at 0, 2 and 4 s)", len(got))
		}
		perSample := 1 + 2 + 2 + 1 + sim.Domains*(2+sim.VCPUs+sim.VIFs+sim.VBDs)
		first := time.Now().Add(-5 * time.Second).UnixNano()
		for ts, s := range got {
			if len(s.recs) != perSample {
				t.Errorf("sample at %d: %d records, want %d", ts, len(s.recs), perSample)
			}
			if s.frames < 2 {
				t.Errorf("sample at %d in %d frames: records were not split at the MTU", ts, s.frames)
			}
			count := map[statframe.Type]int{}
			for _, r := range s.recs {
				count[r.Type()]++
				switch r := r.(type) {
				case *statframe.Host:
					want := statframe.Host{Time: ts, PCPUs: 2, Pools: 1, NUMANodes: 2, Guests: 2,
						MemTotal: 8000000 * 1024, MemFree: 3000000 * 1024, Load1: 0.5, Load5: 1.25, Load15: 2}
					if *r != want {
						t.Errorf("host %+v, want %+v", *r, want)
					}
				case *statframe.PCPU:
					if r.ID == 1 && r.CPUTime != 3075*1e7 {
						t.Errorf("pcpu 1 busy %d ns, want user+nice+system+irq+softirq+steal = 30.75 s", r.CPUTime)
					}
				case *statframe.NUMA:
					if r.MemFree > r.MemTotal || r.MemTotal != 4000000*1024 {
						t.Errorf("numa %+v", *r)
					}
				case *statframe.VCPU:
					if ts == first && !math.IsNaN(r.Util) {
						t.Errorf("first sample: vcpu util %v, want unknown", r.Util)
					}
					if ts != first && (r.Util < 10 || r.Util > 70) {
						t.Errorf("vcpu %d/%d util %v%%, want the simulated 10..70%%", r.Domain, r.ID, r.Util)
					}
				case *statframe.VBD:
					if !strings.HasPrefix(r.Device, "vd") || r.Backing == statframe.BackingUnknown {
						t.Errorf("vbd %+v", *r)
					}
				}
			}
			for typ := statframe.TypeHost; typ <= statframe.TypeVBD; typ++ {
				if count[typ] == 0 {
					t.Errorf("sample at %d has no %s record", ts, typ)
				}
			}
		}
		if st := e.Stats(); st.Samples != 3 || st.Errors != 0 || st.Records != uint64(3*perSample) {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
	defer sw.Close()
	ok := emitter.DefaultConfig()
	ok.Link, ok.Keys = sw.Link(nodeMAC, proto.EtherTypeStats), testKeys(t)
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with a link and keys: %v", err)
	}
	for _, c := range []struct {
		desc string
		mod  func(*emitter.Config)
		want string
	}{
		{"no link", func(c *emitter.Config) { c.Link = nil }, "Link"},
		{"no keys", func(c *emitter.Config) { c.Keys = nil }, "Keys"},
		{"no destination", func(c *emitter.Config) { c.Dest = proto.MAC{} }, "Dest"},
		{"interval under a second", func(c *emitter.Config) { c.Interval = 100 * time.Millisecond }, "Interval"},
		{"interval over an hour", func(c *emitter.Config) { c.Interval = 2 * time.Hour }, "Interval"},
		{"frames too small", func(c *emitter.Config) { c.MaxPayload = 50 }, "VBD"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			cfg := ok
			c.mod(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error naming %s", err, c.want)
			}
			if _, err := emitter.New(cfg); err == nil {
				t.Errorf("New accepted it")
			}
		})
	}
}
