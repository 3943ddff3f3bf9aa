package perfc

import (
	"fmt"
	"sync/atomic"
	"time"
)

// MaxBounds is the most buckets (bounds) a histogram may have.
const MaxBounds = 64

// LatencyBounds returns the default bounds of a latency histogram in
// nanoseconds: a 1-2-5 series from 1 µs to 10 s (22 bounds), which covers a
// LAN round trip, an AoE command and a stuck call alike.
func LatencyBounds() []int64 {
	b := make([]int64, 0, 22)
	for decade := int64(time.Microsecond); decade <= int64(time.Second)*10; decade *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if v := decade * m; v <= int64(10*time.Second) {
				b = append(b, v)
			}
		}
	}
	return b
}

// Histogram counts observations (latencies, sizes) in fixed buckets. Its
// methods are safe for concurrent use and do nothing on a nil *Histogram.
// Like a [Counter] it is sharded; each shard holds its buckets and sum on
// cache lines of its own.
type Histogram struct {
	bounds []int64
	// words holds, per shard, len(bounds)+1 bucket counts and the sum,
	// padded to whole cache lines: shard i starts at i*stride.
	words  []atomic.Int64
	stride int
	shift  uint8
}

func newHistogram(bounds []int64, shards int) *Histogram {
	n := len(bounds) + 2
	stride := (n + cacheLine/8 - 1) / (cacheLine / 8) * (cacheLine / 8)
	return &Histogram{
		bounds: append([]int64(nil), bounds...),
		words:  make([]atomic.Int64, stride*shards),
		stride: stride,
		shift:  shiftFor(shards),
	}
}

func checkBounds(bounds []int64) error {
	if len(bounds) == 0 || len(bounds) > MaxBounds {
		return fmt.Errorf("perfc: histogram needs 1 to %d bounds, got %d: %w", MaxBounds, len(bounds), ErrInvalid)
	}
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			return fmt.Errorf("perfc: histogram bounds must increase: %d after %d: %w", bounds[i], bounds[i-1], ErrInvalid)
		}
	}
	return nil
}

// Observe records one observation of v (in the histogram's unit).
func (h *Histogram) Observe(v int64) {
	if h == nil {
		return
	}
	// The first bound ≥ v, by binary search; len(bounds) when v is above all.
	lo, hi := 0, len(h.bounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.bounds[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	base := int(shardOf(h.shift)) * h.stride
	h.words[base+lo].Add(1)
	h.words[base+len(h.bounds)+1].Add(v)
}

// ObserveDuration records d for a histogram whose unit is "ns".
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(int64(d)) }

// ObserveSince records the time since start for a histogram whose unit is
// "ns".
func (h *Histogram) ObserveSince(start time.Time) {
	if h != nil {
		h.Observe(int64(time.Since(start)))
	}
}

// Value returns the histogram's content since the last reset.
func (h *Histogram) Value() HistValue {
	if h == nil {
		return HistValue{}
	}
	return h.read(false)
}

func (h *Histogram) read(reset bool) HistValue {
	nb := len(h.bounds)
	v := HistValue{Bounds: append([]int64(nil), h.bounds...), Counts: make([]int64, nb+1)}
	for base := 0; base < len(h.words); base += h.stride {
		for i := 0; i <= nb+1; i++ {
			w := &h.words[base+i]
			var x int64
			if reset {
				x = w.Swap(0)
			} else {
				x = w.Load()
			}
			if i <= nb {
				v.Counts[i] += x
			} else {
				v.Sum += x
			}
		}
	}
	return v
}
