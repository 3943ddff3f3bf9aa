package pool

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// memDrive is a drive in memory that models power loss: writes and zeroing
// since the last Sync or Flush are pending, and a crash keeps any subset
// of them, each whole, torn (at 512-byte sectors or finer), or not at all,
// in any order.
type memDrive struct {
	mu      sync.Mutex
	durable []byte
	cur     []byte // what reads see
	pending []memOp
	// before, when set, runs before every operation that changes the drive
	// or makes it durable (the points where power may fail).
	before func()
}

type memOp struct {
	off  int64
	data []byte // nil: zero n bytes
	n    int64
}

var _ drive = (*memDrive)(nil)

func newMemDrive(image []byte) *memDrive {
	return &memDrive{durable: image, cur: append([]byte(nil), image...)}
}

func (d *memDrive) hook() {
	if d.before != nil {
		d.before()
	}
}

func (d *memDrive) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.cur)) {
		return 0, fmt.Errorf("memDrive: read of %d at %d past %d", len(p), off, len(d.cur))
	}
	return copy(p, d.cur[off:]), nil
}

func (d *memDrive) WriteAt(p []byte, off int64) (int, error) {
	d.hook()
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(d.cur)) {
		return 0, fmt.Errorf("memDrive: write of %d at %d past %d", len(p), off, len(d.cur))
	}
	copy(d.cur[off:], p)
	d.pending = append(d.pending, memOp{off: off, data: append([]byte(nil), p...), n: int64(len(p))})
	return len(p), nil
}

// WriteMeta is durable when it returns; power may fail before it, or
// while it is under way.
func (d *memDrive) WriteMeta(p []byte, off int64) error {
	if _, err := d.WriteAt(p, off); err != nil {
		return err
	}
	d.hook()
	d.mu.Lock()
	defer d.mu.Unlock()
	op := d.pending[len(d.pending)-1]
	d.pending = d.pending[:len(d.pending)-1]
	op.apply(d.durable, 0, op.n)
	return nil
}

func (d *memDrive) Zero(off, n int64) error {
	d.hook()
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.cur[off : off+n])
	d.pending = append(d.pending, memOp{off: off, n: n})
	return nil
}

func (d *memDrive) Size() int64                { return int64(len(d.cur)) }
func (d *memDrive) Reserve(off, n int64) error { return nil }
func (d *memDrive) Close() error               { return nil }
func (d *memDrive) Flush() error               { return d.Sync() }

func (d *memDrive) Sync() error {
	d.hook()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, op := range d.pending {
		op.apply(d.durable, 0, op.n)
	}
	d.pending = nil
	return nil
}

func (op memOp) apply(img []byte, from, to int64) {
	if op.data == nil {
		clear(img[op.off+from : op.off+to])
		return
	}
	copy(img[op.off+from:op.off+to], op.data[from:to])
}

// crash returns the drive's contents after a power loss now.
func (d *memDrive) crash(rng *rand.Rand) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	img := append([]byte(nil), d.durable...)
	ops := append([]memOp(nil), d.pending...)
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for _, op := range ops {
		switch rng.IntN(3) {
		case 0: // lost
		case 1:
			op.apply(img, 0, op.n)
		case 2: // torn: some sectors made it, or (worse than drives
			// promise) some 16-byte pieces
			g := []int64{512, 16}[rng.IntN(2)]
			for s := int64(0); s < op.n; s += g {
				if rng.IntN(2) == 0 {
					op.apply(img, s, min(s+g, op.n))
				}
			}
		}
	}
	return img
}
