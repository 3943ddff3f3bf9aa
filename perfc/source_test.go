package perfc

import (
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeSource stands for PMU events: values it is told, reset by name.
type fakeSource struct {
	mu          sync.Mutex
	vals        map[string]int64
	base        map[string]int64
	unsupported string
}

func (f *fakeSource) Read(dst []Metric, reset func(string) bool) []Metric {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range []string{"perf.hw.cycles", "perf.sw.task_clock"} {
		m := Metric{Name: n, Unit: "events", Desc: n + " desc", Value: f.vals[n] - f.base[n]}
		if n == f.unsupported {
			m.Value, m.State = 0, StateUnsupported
		}
		if reset != nil && reset(n) {
			f.base[n] = f.vals[n]
		}
		dst = append(dst, m)
	}
	return dst
}

func TestSourcesAreReadAndResetByName(t *testing.T) {
	s := newTestSet(t, 1)
	dom := s.Child("dn3")
	src := &fakeSource{vals: map[string]int64{"perf.hw.cycles": 0, "perf.sw.task_clock": 0}, base: map[string]int64{}, unsupported: "perf.hw.cycles"}
	detach, err := dom.Attach(src)
	if err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.vals["perf.sw.task_clock"] = 1000
	src.mu.Unlock()

	got := s.Reset(Query{Prefix: "perf.sw"})
	want := Dump{Metrics: []Metric{{Domain: "dn3", Name: "perf.sw.task_clock", Unit: "events", Desc: "perf.sw.task_clock desc", Value: 1000}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Reset (-want +got):\n%s", diff)
	}
	got = s.Dump(Query{})
	want = Dump{Metrics: []Metric{
		{Domain: "dn3", Name: "perf.hw.cycles", Unit: "events", Desc: "perf.hw.cycles desc", State: StateUnsupported},
		{Domain: "dn3", Name: "perf.sw.task_clock", Unit: "events", Desc: "perf.sw.task_clock desc"},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Dump after reset (-want +got):\n%s", diff)
	}

	if _, err := dom.Attach(&fakeSource{vals: map[string]int64{}, base: map[string]int64{}}); !errors.Is(err, ErrConflict) {
		t.Errorf("attaching the same names twice: %v, want ErrConflict", err)
	}
	mustPanic(t, ErrConflict, func() { dom.Counter("perf.hw.cycles", "events", "x") })
	detach()
	if n := len(s.Dump(Query{}).Metrics); n != 0 {
		t.Errorf("after detach, %d metrics dumped", n)
	}
	dom.Counter("perf.hw.cycles", "events", "now ours")
	if _, err := dom.Attach(src); !errors.Is(err, ErrConflict) {
		t.Errorf("attaching over a counter: %v, want ErrConflict", err)
	}
}
