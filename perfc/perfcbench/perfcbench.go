// Package perfcbench holds the benchmark bodies of package perfc, so that
// `go test -bench` in perfc and bench/perfc (make bench) measure the same
// code: each perfc figure beside the anchors it is compared with.
package perfcbench

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvstack/mvstack/perfc"
)

// Case is one benchmark.
type Case struct {
	Name string
	// Parallel cases run b.RunParallel on GOMAXPROCS goroutines; their
	// ns/op is wall time over all goroutines' operations.
	Parallel bool
	F        func(b *testing.B)
}

// newSet makes a set with the given shards, or the default with 0.
func newSet(shards int) *perfc.Set {
	cfg := perfc.DefaultConfig()
	if shards > 0 {
		cfg.Shards = shards
	}
	s, err := perfc.NewSet(&cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// sink keeps the plain increment's target on the heap so the compiler
// stores every increment.
type sink struct{ n int64 }

// Anchors: the cheapest increments there are.

func plainInc(b *testing.B) {
	s := &sink{}
	for b.Loop() {
		s.n++
	}
}

func sharedAtomic(b *testing.B) {
	var n atomic.Int64
	for b.Loop() {
		n.Add(1)
	}
}

func sharedAtomicParallel(b *testing.B) {
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Add(1)
		}
	})
}

func counterInc(shards int) func(*testing.B) {
	return func(b *testing.B) {
		c := newSet(shards).Counter("bench.inc", "events", "benchmark")
		for b.Loop() {
			c.Inc()
		}
	}
}

func counterIncParallel(shards int) func(*testing.B) {
	return func(b *testing.B) {
		c := newSet(shards).Counter("bench.inc", "events", "benchmark")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Inc()
			}
		})
	}
}

func nilCounterInc(b *testing.B) {
	var s *perfc.Set
	c := s.Counter("bench.inc", "events", "benchmark")
	for b.Loop() {
		c.Inc()
	}
}

func familyInc(b *testing.B) {
	f := newSet(0).CounterFamily("bench.calls", "calls", "benchmark")
	keys := []string{"vm_start", "vm_stop", "perfc_dump", "heartbeat"}
	i := 0
	for b.Loop() {
		f.With(keys[i&3]).Inc()
		i++
	}
}

func histObserve(b *testing.B) {
	h := newSet(0).Histogram("bench.latency", "ns", "benchmark", nil)
	v := int64(0)
	for b.Loop() {
		h.Observe(v)
		v = (v + 7919) & (1<<24 - 1) // spread over the µs–ms buckets
	}
}

func histObserveParallel(b *testing.B) {
	h := newSet(0).Histogram("bench.latency", "ns", "benchmark", nil)
	b.RunParallel(func(pb *testing.PB) {
		v := int64(0)
		for pb.Next() {
			h.Observe(v)
			v = (v + 7919) & (1<<24 - 1)
		}
	})
}

func timeSince(b *testing.B) {
	t0 := time.Now()
	var d time.Duration
	for b.Loop() {
		d += time.Since(t0)
	}
	_ = d
}

func histObserveSince(b *testing.B) {
	h := newSet(0).Histogram("bench.latency", "ns", "benchmark", nil)
	t0 := time.Now()
	for b.Loop() {
		h.ObserveSince(t0)
	}
}

func dump(b *testing.B) {
	s := newSet(0)
	for i := range 100 {
		s.Counter("bench.c"+string(rune('a'+i%26))+string(rune('a'+i/26)), "events", "benchmark").Inc()
	}
	for i := range 10 {
		s.Histogram("bench.h"+string(rune('a'+i)), "ns", "benchmark", nil).Observe(5000)
	}
	for b.Loop() {
		d := s.Dump(perfc.Query{})
		if _, err := d.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

// Cases returns every benchmark, anchors first.
func Cases() []Case {
	return []Case{
		{Name: "anchor/plain_inc", F: plainInc},
		{Name: "anchor/shared_atomic", F: sharedAtomic},
		{Name: "anchor/shared_atomic_parallel", Parallel: true, F: sharedAtomicParallel},
		{Name: "anchor/time_since", F: timeSince},
		{Name: "counter/inc", F: counterInc(0)},
		{Name: "counter/inc_1shard", F: counterInc(1)},
		{Name: "counter/inc_nil", F: nilCounterInc},
		{Name: "counter/inc_parallel_1shard", Parallel: true, F: counterIncParallel(1)},
		{Name: "counter/inc_parallel", Parallel: true, F: counterIncParallel(0)},
		{Name: "counter/inc_parallel_8shards", Parallel: true, F: counterIncParallel(8)},
		{Name: "family/with_inc", F: familyInc},
		{Name: "histogram/observe", F: histObserve},
		{Name: "histogram/observe_parallel", Parallel: true, F: histObserveParallel},
		{Name: "histogram/observe_since", F: histObserveSince},
		{Name: "set/dump_110_marshal", F: dump},
	}
}
