package proto

import (
	"math/bits"
	"sync"
)

// minPooled is the smallest reassembly buffer worth keeping for reuse: a
// smaller one costs the garbage collector little, and its zeroing less.
const minPooled = 32 << 10

// bufPool keeps reassembly buffers that handlers gave back with
// [Request.Release], so that a stream of large messages does not allocate
// (and zero) a new buffer for each, nor bring a garbage collection every
// few messages. Buffers are sorted into size classes, four per power of
// two; a class holds buffers whose capacity falls in it.
type bufPool struct {
	classes [4 * 64]sync.Pool // of *[]byte
}

// sizeClass is the class of a buffer of capacity n (n ≥ 4).
func sizeClass(n int) int {
	k := bits.Len(uint(n)) - 1 // 2^k ≤ n < 2^(k+1)
	return 4*k + int(uint(n)>>(k-2))&3
}

// get returns an empty buffer with room for n bytes. Its contents past
// its length are whatever an earlier message left there.
func (bp *bufPool) get(n int) []byte {
	if n < minPooled {
		return make([]byte, 0, n)
	}
	if v, ok := bp.classes[sizeClass(n)].Get().(*[]byte); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]byte, 0, n)
}

// put gives b back for reuse. Nothing may use b afterwards.
func (bp *bufPool) put(b []byte) {
	if cap(b) < minPooled {
		return
	}
	b = b[:0]
	bp.classes[sizeClass(cap(b))].Put(&b)
}
