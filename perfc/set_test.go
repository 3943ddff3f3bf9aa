package perfc

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newTestSet(t *testing.T, shards int) *Set {
	t.Helper()
	s, err := NewSet(&Config{Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConcurrentIncrementsAreAllCounted(t *testing.T) {
	for _, shards := range []int{1, 2, 8} {
		s := newTestSet(t, shards)
		c := s.Counter("proto.frames_in.control", "frames", "Control frames received")
		const workers, each = 8, 10000
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					c.Inc()
				}
				c.Add(5)
			})
		}
		wg.Wait()
		if got, want := c.Value(), int64(workers*(each+5)); got != want {
			t.Errorf("%d shards: Value = %d, want %d", shards, got, want)
		}
		m, err := s.Get("proto.frames_in.control")
		if err != nil || m.Value != int64(workers*(each+5)) {
			t.Errorf("%d shards: Get = %+v, %v", shards, m, err)
		}
	}
}

func TestResetRacingWithIncrementsLosesNothing(t *testing.T) {
	s := newTestSet(t, 4)
	c := s.Counter("aoe.cmd.write", "commands", "AoE write commands issued")
	h := s.Histogram("aoe.cmd.write.latency", "ns", "AoE write latency", nil)
	const workers, each = 4, 20000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				c.Inc()
				h.Observe(1500)
			}
		})
	}
	var taken, observed int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			d := s.Reset(Query{Prefix: "aoe"})
			m, _ := d.Find("", "aoe.cmd.write")
			taken += m.Value
			hm, _ := d.Find("", "aoe.cmd.write.latency")
			observed += hm.Hist.Count()
		}
	}()
	wg.Wait()
	<-done
	if got := taken + c.Value(); got != workers*each {
		t.Errorf("counter: reset took %d, %d left: %d in all, want %d", taken, c.Value(), got, workers*each)
	}
	if got := observed + h.Value().Count(); got != workers*each {
		t.Errorf("histogram: %d observations in all, want %d", got, workers*each)
	}
}

func TestResetZeroesCountersAndHistogramsNotGauges(t *testing.T) {
	s := newTestSet(t, 2)
	c := s.Counter("proto.rpc.calls.ping", "calls", "Ping calls made")
	g := s.Gauge("proto.sessions.open", "sessions", "Sessions open")
	h := s.Histogram("proto.rpc.latency.ping", "ns", "Ping round trip", []int64{10, 100})
	c.Add(7)
	g.Set(3)
	h.Observe(50)
	before := s.Reset(Query{})
	want := Dump{Metrics: []Metric{
		{Name: "proto.rpc.calls.ping", Kind: KindCounter, Unit: "calls", Desc: "Ping calls made", Value: 7},
		{Name: "proto.rpc.latency.ping", Kind: KindHistogram, Unit: "ns", Desc: "Ping round trip", Value: 1,
			Hist: &HistValue{Bounds: []int64{10, 100}, Counts: []int64{0, 1, 0}, Sum: 50}},
		{Name: "proto.sessions.open", Kind: KindGauge, Unit: "sessions", Desc: "Sessions open", Value: 3},
	}}
	if diff := cmp.Diff(want, before); diff != "" {
		t.Errorf("Reset returned (-want +got):\n%s", diff)
	}
	after := s.Dump(Query{NoDesc: true})
	want = Dump{Metrics: []Metric{
		{Name: "proto.rpc.calls.ping", Kind: KindCounter, Unit: "calls"},
		{Name: "proto.rpc.latency.ping", Kind: KindHistogram, Unit: "ns", Hist: &HistValue{Counts: []int64{0, 0, 0}}},
		{Name: "proto.sessions.open", Kind: KindGauge, Unit: "sessions", Value: 3},
	}}
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("Dump after reset (-want +got):\n%s", diff)
	}
}

func TestHistogramBucketsAreInclusiveUpperBounds(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		obs    []int64
		counts []int64
	}{
		{"below the first bound", []int64{-3, 0, 9}, []int64{3, 0, 0, 0}},
		{"on a bound", []int64{10, 100, 1000}, []int64{1, 1, 1, 0}},
		{"just above a bound", []int64{11, 101}, []int64{0, 1, 1, 0}},
		{"above the last bound", []int64{1001, 1 << 40}, []int64{0, 0, 0, 2}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s := newTestSet(t, 2)
			h := s.Histogram("x.size", "bytes", "sizes", []int64{10, 100, 1000})
			var sum int64
			for _, v := range tc.obs {
				h.Observe(v)
				sum += v
			}
			want := HistValue{Bounds: []int64{10, 100, 1000}, Counts: tc.counts, Sum: sum}
			if diff := cmp.Diff(want, h.Value()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestLatencyBoundsRunOneTwoFiveFromMicrosecondToTenSeconds(t *testing.T) {
	b := LatencyBounds()
	if len(b) != 22 || b[0] != 1000 || b[1] != 2000 || b[2] != 5000 || b[21] != 10e9 {
		t.Fatalf("LatencyBounds = %v", b)
	}
	if err := checkBounds(b); err != nil {
		t.Fatal(err)
	}
}

func TestQuantileReportsTheBucketBound(t *testing.T) {
	h := HistValue{Bounds: []int64{10, 100, 1000}, Counts: []int64{50, 40, 9, 1}}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 10}, {0.9, 100}, {0.99, 1000}, {1, 1000}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if got := (&HistValue{Bounds: []int64{1}, Counts: []int64{0, 0}}).Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile = %d, want 0", got)
	}
}

func TestRegistrationIsIdempotentAndRejectsConflicts(t *testing.T) {
	s := newTestSet(t, 1)
	a := s.Counter("proto.drops.bad_mac", "frames", "Frames dropped: authentication failed")
	b := s.Counter("proto.drops.bad_mac", "frames", "Frames dropped: authentication failed")
	if a != b {
		t.Error("registering the same counter twice gave two counters")
	}
	mustPanic(t, ErrConflict, func() { s.Gauge("proto.drops.bad_mac", "frames", "x") })
	mustPanic(t, ErrConflict, func() { s.Counter("proto.drops.bad_mac", "bytes", "x") })
	mustPanic(t, ErrConflict, func() { s.Histogram("h", "ns", "x", []int64{1}); s.Histogram("h", "ns", "x", []int64{2}) })
	for _, bad := range []string{"", "Proto.x", "proto..x", "proto.x.", ".x", "9x", "proto.drops-bad", "proto/x", "a.b c"} {
		mustPanic(t, ErrInvalid, func() { s.Counter(bad, "frames", "d") })
	}
	mustPanic(t, ErrInvalid, func() { s.Counter("ok.name", "", "d") })
	mustPanic(t, ErrInvalid, func() { s.Counter("ok.name", "Frames", "d") })
	mustPanic(t, ErrInvalid, func() { s.Counter("ok.name", "frames", "") })
	mustPanic(t, ErrInvalid, func() { s.Histogram("ok.hist", "ns", "d", []int64{5, 5}) })
	mustPanic(t, ErrInvalid, func() { s.Child("DN5") })
	mustPanic(t, ErrInvalid, func() { s.Child("") })
}

func mustPanic(t *testing.T, want error, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		err, _ := r.(error)
		if !errors.Is(err, want) {
			t.Errorf("panic %v, want one wrapping %v", r, want)
		}
	}()
	f()
}

func TestDomainsDumpSortedAndSelectByPrefix(t *testing.T) {
	s := newTestSet(t, 1)
	s.Counter("proto.drops.bad_mac", "frames", "bad MAC").Add(2)
	s.Counter("proto.drops.replay", "frames", "replayed").Add(1)
	s.Counter("proto.dropsy", "frames", "not below proto.drops").Add(9)
	s.Counter("aoe.cmd.read", "commands", "reads").Add(4)
	s.Child("dn5").Counter("node.domain.start", "ops", "starts").Add(1)
	s.Child("dn12").Counter("node.domain.start", "ops", "starts").Add(3)
	s.Child("dn5").Child("vcpu0").Counter("node.domain.start", "ops", "starts")

	type row struct {
		Domain, Name string
		Value        int64
	}
	rows := func(d Dump) []row {
		var r []row
		for _, m := range d.Metrics {
			r = append(r, row{m.Domain, m.Name, m.Value})
		}
		return r
	}
	for _, tc := range []struct {
		desc string
		set  *Set
		q    Query
		want []row
	}{
		{"everything, node first then domains by name", s, Query{}, []row{
			{"", "aoe.cmd.read", 4}, {"", "proto.drops.bad_mac", 2}, {"", "proto.drops.replay", 1}, {"", "proto.dropsy", 9},
			{"dn12", "node.domain.start", 3}, {"dn5", "node.domain.start", 1}, {"dn5/vcpu0", "node.domain.start", 0},
		}},
		{"a prefix selects whole segments", s, Query{Prefix: "proto.drops"}, []row{
			{"", "proto.drops.bad_mac", 2}, {"", "proto.drops.replay", 1},
		}},
		{"an exact name", s, Query{Prefix: "proto.drops.replay"}, []row{{"", "proto.drops.replay", 1}}},
		{"local leaves domains out", s, Query{Prefix: "aoe", Local: true}, []row{{"", "aoe.cmd.read", 4}}},
		{"a domain's set names its children relative to itself", s.Child("dn5"), Query{}, []row{
			{"", "node.domain.start", 1}, {"vcpu0", "node.domain.start", 0},
		}},
		{"nothing matches", s, Query{Prefix: "statsd"}, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, rows(tc.set.Dump(tc.q))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	if got := s.Children(); !cmp.Equal(got, []string{"dn12", "dn5"}) {
		t.Errorf("Children = %v", got)
	}
	if _, err := s.LookupChild("dn7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupChild(dn7) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get("proto.drops"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a prefix = %v, want ErrNotFound", err)
	}
	s.RemoveChild("dn12")
	if _, err := s.LookupChild("dn12"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after RemoveChild, LookupChild = %v", err)
	}
}

func TestNilSetHandsOutMetricsThatDoNothing(t *testing.T) {
	var s *Set
	c := s.Counter("a.b", "x", "y")
	c.Inc()
	c.Add(3)
	g := s.Gauge("a.g", "x", "y")
	g.Inc()
	h := s.Histogram("a.h", "ns", "y", nil)
	h.Observe(3)
	s.GaugeFunc("a.f", "x", "y", func() int64 { return 1 })
	if c.Value() != 0 || g.Value() != 0 || h.Value().Count() != 0 || len(s.Dump(Query{}).Metrics) != 0 {
		t.Error("nil set recorded something")
	}
	if s.Child("dn1") != nil {
		t.Error("nil set made a child")
	}
	if _, err := s.Attach(&fakeSource{}); err != nil {
		t.Error(err)
	}
}

func TestGaugeFuncIsReadAtDumpTime(t *testing.T) {
	s := newTestSet(t, 1)
	n := int64(0)
	var mu sync.Mutex
	s.GaugeFunc("proto.peers", "peers", "Peers known", func() int64 { mu.Lock(); defer mu.Unlock(); return n })
	mu.Lock()
	n = 4
	mu.Unlock()
	if m, err := s.Get("proto.peers"); err != nil || m.Value != 4 || m.Kind != KindGauge {
		t.Errorf("Get = %+v, %v", m, err)
	}
	mustPanic(t, ErrConflict, func() { s.GaugeFunc("proto.peers", "peers", "again", func() int64 { return 0 }) })
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, n := range []int{0, 3, 128, -1} {
		if err := (Config{Shards: n}).Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Shards %d: %v", n, err)
		}
		if _, err := NewSet(&Config{Shards: n}); err == nil {
			t.Errorf("NewSet with Shards %d succeeded", n)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}
