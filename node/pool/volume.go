package pool

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Volume is one volume of a pool: a Backend for aoe/target (ReadAt,
// WriteAt, Size, Sync) plus its persistent epoch and in-sync flag. Its
// methods are safe for concurrent use; I/O to allocated chunks runs in
// parallel (positioned I/O under a shared lock), only the first write to
// a chunk takes the pool's lock.
type Volume struct {
	p      *Pool
	id     string
	slot   int
	serial uint64
	thick  bool

	// io is held shared by I/O and exclusively by Delete, Resize, Discard
	// and Close, which change what I/O sees.
	io   sync.RWMutex
	gone error // guarded by io: set when deleted or closed
	m    chunkMap
	// size changes only under io held exclusively, so I/O holding it
	// shared sees one value; Size reads it without the lock.
	size      atomic.Int64
	allocated atomic.Int64 // chunks
	epoch     atomic.Uint64
	inSync    atomic.Bool
}

func newVolume(p *Pool, slot int, r volRecord) *Volume {
	v := &Volume{p: p, id: r.ID, slot: slot, serial: r.Serial, thick: r.Thick}
	v.size.Store(r.Size)
	v.epoch.Store(r.Epoch)
	v.inSync.Store(r.InSync)
	v.m.grow(p.chunksOf(r.Size))
	return v
}

// ID is the volume's id.
func (v *Volume) ID() string { return v.id }

// Thick reports whether the volume is preallocated.
func (v *Volume) Thick() bool { return v.thick }

// Size is the volume's size in bytes.
func (v *Volume) Size() int64 { return v.size.Load() }

// Allocated is the bytes of chunks the volume holds.
func (v *Volume) Allocated() int64 { return v.allocated.Load() << v.p.shift }

// Epoch is the volume's persistent epoch (the fence level of its export).
func (v *Volume) Epoch() uint64 { return v.epoch.Load() }

// InSync is the volume's persistent in-sync flag.
func (v *Volume) InSync() bool { return v.inSync.Load() }

// Info describes the volume.
func (v *Volume) Info() VolumeInfo {
	v.p.mu.Lock()
	defer v.p.mu.Unlock()
	return v.infoLocked()
}

func (v *Volume) infoLocked() VolumeInfo {
	return VolumeInfo{ID: v.id, Size: v.Size(), Thick: v.thick, Allocated: v.Allocated(), Epoch: v.Epoch(), InSync: v.InSync()}
}

// SetEpoch stores the epoch durably before it returns. It takes any value:
// refusing a stale epoch is the caller's business.
func (v *Volume) SetEpoch(e uint64) error {
	return v.setRecord(func(r *volRecord) { r.Epoch = e }, func() { v.epoch.Store(e) })
}

// SetInSync stores the in-sync flag durably before it returns.
func (v *Volume) SetInSync(in bool) error {
	return v.setRecord(func(r *volRecord) { r.InSync = in }, func() { v.inSync.Store(in) })
}

func (v *Volume) setRecord(change func(*volRecord), done func()) error {
	p := v.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	if p.vols[v.id] != v {
		return fmt.Errorf("pool %s: volume %q deleted: %w", p.path, v.id, ErrNotFound)
	}
	change(&p.slots[v.slot].rec)
	if err := p.writeRecord(v.slot); err != nil {
		return err
	}
	done()
	return nil
}

func (v *Volume) rangeErr(op string, off, n int64) error {
	return fmt.Errorf("pool %s: volume %q: %s of %d bytes at %d: past the end (%d bytes): %w", v.p.path, v.id, op, n, off, v.Size(), ErrRange)
}

// ReadAt reads len(b) bytes at off; chunks never written read as zeros.
// As io.ReaderAt says, a read reaching past the end returns what there is
// and io.EOF. A negative offset is an error.
func (v *Volume) ReadAt(b []byte, off int64) (int, error) {
	v.io.RLock()
	defer v.io.RUnlock()
	if v.gone != nil {
		return 0, v.gone
	}
	if off < 0 {
		return 0, fmt.Errorf("pool %s: volume %q: read at offset %d: %w", v.p.path, v.id, off, ErrInvalid)
	}
	size := v.Size()
	if off >= size {
		if len(b) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var eof error
	if int64(len(b)) > size-off {
		b, eof = b[:size-off], io.EOF
	}
	n, err := v.rw(b, off, false)
	if err != nil {
		return n, err
	}
	return n, eof
}

// WriteAt writes len(b) bytes at off, taking chunks for parts never
// written before. When the pool has no free chunk left the write fails
// with an error matching syscall.ENOSPC and writes nothing. A write
// reaching past the end fails with ErrRange and writes nothing. The data
// is durable after Sync.
func (v *Volume) WriteAt(b []byte, off int64) (int, error) {
	v.io.RLock()
	defer v.io.RUnlock()
	if v.gone != nil {
		return 0, v.gone
	}
	if size := v.Size(); off < 0 || off > size || int64(len(b)) > size-off {
		return 0, v.rangeErr("write", off, int64(len(b)))
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !v.thick {
		if err := v.allocate(off, int64(len(b))); err != nil {
			return 0, err
		}
	}
	return v.rw(b, off, true)
}

// rw moves b to or from the volume at off, all of which is inside the
// volume. Unmapped chunks read as zeros (writes find them mapped).
func (v *Volume) rw(b []byte, off int64, write bool) (int, error) {
	p := v.p
	cs := p.sb.ChunkSize
	done := 0
	for done < len(b) {
		pos := off + int64(done)
		l := pos >> p.shift
		in := pos & (cs - 1)
		k := min(cs-in, int64(len(b)-done))
		ph := v.m.get(l)
		// Take following chunks along while they are consecutive on disk.
		rest := int64(len(b) - done)
		for j := int64(1); ph != 0 && k < rest && v.m.get(l+j) == ph+uint32(j); j++ {
			k += min(cs, rest-k)
		}
		seg := b[done : done+int(k)]
		if ph == 0 {
			clear(seg)
			done += len(seg)
			continue
		}
		at := p.chunkOff(ph-1) + in
		var n int
		var err error
		if write {
			n, err = p.d.WriteAt(seg, at)
		} else {
			n, err = p.d.ReadAt(seg, at)
		}
		done += n
		if err != nil {
			op := "read"
			if write {
				op = "write"
			}
			return done, fmt.Errorf("pool %s: volume %q: %s of %d bytes at %d (drive offset %d): %w", p.path, v.id, op, len(seg), pos, at, err)
		}
	}
	return done, nil
}

// Sync makes the volume's completed writes durable (fdatasync of the
// drive; the metadata of its chunks is durable already).
func (v *Volume) Sync() error {
	v.io.RLock()
	defer v.io.RUnlock()
	if v.gone != nil {
		return v.gone
	}
	if err := v.p.d.Sync(); err != nil {
		return fmt.Errorf("pool %s: volume %q: sync: %w", v.p.path, v.id, err)
	}
	return nil
}

// Discard frees the chunks lying wholly inside [off, off+n) (the last,
// partial chunk of the volume counts as whole when the range reaches the
// end): they read as zeros afterwards and return to the pool. Parts of
// chunks in the range keep their data. A thick volume keeps its chunks
// and Discard does nothing. It waits for the volume's I/O in flight.
func (v *Volume) Discard(off, n int64) error {
	v.io.Lock()
	defer v.io.Unlock()
	if v.gone != nil {
		return v.gone
	}
	size := v.Size()
	if off < 0 || n < 0 || off > size || n > size-off {
		return v.rangeErr("discard", off, n)
	}
	if v.thick || n == 0 {
		return nil
	}
	p := v.p
	first := (off + p.sb.ChunkSize - 1) >> p.shift
	end := (off + n) >> p.shift
	if off+n == size {
		end = p.chunksOf(size)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	var chunks []uint32
	var logical []int64
	for l := first; l < end; l++ {
		if ph := v.m.get(l); ph != 0 {
			chunks = append(chunks, ph-1)
			logical = append(logical, l)
		}
	}
	if err := p.release(chunks); err != nil {
		return err
	}
	for _, l := range logical {
		v.m.set(l, 0)
	}
	v.allocated.Add(-int64(len(chunks)))
	return nil
}

// chunkMap maps a volume's logical chunks to physical chunk+1 (0: none)
// in pages made on first use, so a large thin volume costs little memory.
// get is lock-free; set runs under the pool's lock; grow under the
// volume's exclusive lock.
type chunkMap struct {
	pages []atomic.Pointer[mapPage]
}

const pageShift = 10

type mapPage [1 << pageShift]atomic.Uint32

func (m *chunkMap) get(l int64) uint32 {
	i := l >> pageShift
	if i >= int64(len(m.pages)) {
		return 0
	}
	pg := m.pages[i].Load()
	if pg == nil {
		return 0
	}
	return pg[l&(1<<pageShift-1)].Load()
}

func (m *chunkMap) set(l int64, ph uint32) {
	i := l >> pageShift
	pg := m.pages[i].Load()
	if pg == nil {
		if ph == 0 {
			return
		}
		pg = new(mapPage)
		m.pages[i].Store(pg)
	}
	pg[l&(1<<pageShift-1)].Store(ph)
}

func (m *chunkMap) grow(chunks int64) {
	n := int((chunks + 1<<pageShift - 1) >> pageShift)
	if n <= len(m.pages) {
		return
	}
	pages := make([]atomic.Pointer[mapPage], n)
	for i := range m.pages {
		pages[i].Store(m.pages[i].Load())
	}
	m.pages = pages
}
