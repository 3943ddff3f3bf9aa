package perfc

import (
	"sync/atomic"
	"unsafe"
)

// cacheLine is the size the shards are padded to. 64 bytes on amd64 and
// most arm64; 128 would also cover adjacent-line prefetching, at twice the
// memory.
const cacheLine = 64

// shard is one cache line holding one atomic word.
type shard struct {
	v atomic.Int64
	_ [cacheLine - 8]byte
}

// shardOf picks a shard for the calling goroutine: a hash of the address of
// a variable on its stack. A goroutine keeps the same shard (until its stack
// is moved), and goroutines running at the same time on different CPUs
// mostly get different ones, which is what keeps their increments off each
// other's cache lines. shift is 64 − log2(shards); with one shard it is 64
// and the result is 0. Which shard is picked never changes a value, only
// its cost.
func shardOf(shift uint8) uintptr {
	var x byte
	// Goroutine stacks start at 2 KiB, so goroutines made one after the
	// other sit 2 KiB apart: drop the bits below that, then spread the rest
	// (Fibonacci hashing), so neighbours get different shards.
	return uintptr((uint64(uintptr(unsafe.Pointer(&x)))>>11)*0x9E3779B97F4A7C15) >> shift
}

// Counter counts events; it only goes up between resets. Its methods are
// safe for concurrent use and do nothing on a nil *Counter.
type Counter struct {
	shards []shard
	shift  uint8
}

func newCounter(n int) *Counter {
	return &Counter{shards: make([]shard, n), shift: shiftFor(n)}
}

// shiftFor returns 64 − log2(n) for a power of two n.
func shiftFor(n int) uint8 {
	s := uint8(64)
	for n > 1 {
		n >>= 1
		s--
	}
	return s
}

// Inc adds one.
func (c *Counter) Inc() {
	if c == nil {
		return
	}
	c.shards[shardOf(c.shift)].v.Add(1)
}

// Add adds n, which must not be negative (not checked: it is a hot path).
func (c *Counter) Add(n int64) {
	if c == nil {
		return
	}
	c.shards[shardOf(c.shift)].v.Add(n)
}

// Value returns the count since the last reset: the sum of the shards,
// each read atomically.
func (c *Counter) Value() int64 {
	if c == nil {
		return 0
	}
	var v int64
	for i := range c.shards {
		v += c.shards[i].v.Load()
	}
	return v
}

// reset zeroes the shards one by one and returns what they held.
func (c *Counter) reset() int64 {
	var v int64
	for i := range c.shards {
		v += c.shards[i].v.Swap(0)
	}
	return v
}

// Gauge is a level that goes up and down (open sessions, outstanding
// commands). A reset leaves it alone. Its methods are safe for concurrent
// use and do nothing on a nil *Gauge.
type Gauge struct {
	v atomic.Int64
}

// Set sets the level.
func (g *Gauge) Set(v int64) {
	if g != nil {
		g.v.Store(v)
	}
}

// Add adds d, which may be negative.
func (g *Gauge) Add(d int64) {
	if g != nil {
		g.v.Add(d)
	}
}

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the level.
func (g *Gauge) Value() int64 {
	if g == nil {
		return 0
	}
	return g.v.Load()
}
