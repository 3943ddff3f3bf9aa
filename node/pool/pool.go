package pool

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errors, matched with errors.Is. A write or Create that finds no free
// chunk fails with an error matching syscall.ENOSPC.
var (
	ErrNotPool    = errors.New("not a pool")
	ErrVersion    = errors.New("unsupported format version")
	ErrTruncated  = errors.New("drive smaller than the pool on it")
	ErrCorrupt    = errors.New("metadata damaged or inconsistent")
	ErrPoolExists = errors.New("drive already holds a pool")
	ErrNotBlank   = errors.New("drive is not blank")
	ErrInvalid    = errors.New("invalid argument")
	ErrRange      = errors.New("out of range")
	ErrExists     = errors.New("volume exists")
	ErrNotFound   = errors.New("no such volume")
	ErrTableFull  = errors.New("volume table full")
	ErrClosed     = errors.New("closed")
	ErrBusy       = errors.New("drive in use by another pool")
)

// errNoMagic marks a block without our magic; Open turns it into ErrNotPool.
var errNoMagic = errors.New("no pool magic")

// FormatOptions says how Format lays out a pool. The zero value gives the
// defaults.
type FormatOptions struct {
	// ChunkSize is the allocation unit: a power of two from 64 KiB to
	// 1 GiB; 0 means 1 MiB.
	ChunkSize int64
	// MaxVolumes is the number of volume table slots: 1 to 65536; 0 means
	// 256.
	MaxVolumes int
	// Force formats a drive that holds a pool or other data, destroying it.
	Force bool
}

func (o FormatOptions) withDefaults() (FormatOptions, error) {
	if o.ChunkSize == 0 {
		o.ChunkSize = defaultChunkSize
	}
	if o.MaxVolumes == 0 {
		o.MaxVolumes = defaultVolumes
	}
	if err := checkChunkSize(o.ChunkSize); err != nil {
		return o, fmt.Errorf("ChunkSize: %w", err)
	}
	if o.MaxVolumes < 1 || o.MaxVolumes > maxVolumes {
		return o, fmt.Errorf("MaxVolumes %d: want 1 to %d: %w", o.MaxVolumes, maxVolumes, ErrInvalid)
	}
	return o, nil
}

// IsBlank reports whether the first 64 KiB of the drive at path (all of it
// when smaller) are zero: a fresh drive that Format takes without Force.
func IsBlank(path string) (bool, error) {
	d, err := openDrive(path, os.O_RDONLY)
	if err != nil {
		return false, fmt.Errorf("pool: %s: %w", path, err)
	}
	defer d.Close()
	b, err := readHead(d)
	if err != nil {
		return false, fmt.Errorf("pool: %s: %w", path, err)
	}
	return allZero(b), nil
}

func readHead(d drive) ([]byte, error) {
	b := make([]byte, min(d.Size(), blankSpan))
	if _, err := d.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read first %d bytes: %w", len(b), err)
	}
	return b, nil
}

// Format writes an empty pool onto the drive (regular file or block
// device) at path. It refuses a drive that holds a pool (ErrPoolExists) or
// whose first 64 KiB are not all zero (ErrNotBlank) unless opts.Force.
// Format zeroes the whole pool area (hole punching or BLKZEROOUT), so no
// earlier contents can ever be read through a volume.
func Format(path string, opts FormatOptions) error {
	if err := formatPath(path, opts); err != nil {
		return fmt.Errorf("pool: format %s: %w", path, err)
	}
	return nil
}

func formatPath(path string, opts FormatOptions) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	d, err := openDrive(path, os.O_RDWR)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := lockDrive(d); err != nil {
		return err
	}
	return format(d, opts)
}

// format writes an empty pool onto d (see Format); its errors do not name
// the drive.
func format(d drive, opts FormatOptions) error {
	head, err := readHead(d)
	if err != nil {
		return err
	}
	if !opts.Force {
		for c := range 2 {
			b := head[c*blockSize : min(len(head), (c+1)*blockSize)]
			if len(b) >= 4 && string(b[:4]) == string(magic[:]) {
				return fmt.Errorf("%w (Force overwrites it)", ErrPoolExists)
			}
		}
		if !allZero(head) {
			return fmt.Errorf("first %d bytes are not all zero: %w (Force overwrites it)", len(head), ErrNotBlank)
		}
	}
	sb, ok := fitLayout(d.Size(), opts.ChunkSize, opts.MaxVolumes)
	if !ok {
		need := layoutFor(opts.ChunkSize, opts.MaxVolumes, 1).PoolSize
		return fmt.Errorf("drive of %d bytes holds no chunk of %d bytes beside its tables (needs %d bytes): %w",
			d.Size(), opts.ChunkSize, need, ErrInvalid)
	}
	if _, err := rand.Read(sb.UUID[:]); err != nil {
		return err
	}
	// Tables and data first, superblocks last: a format cut short leaves
	// a drive that is no pool, never a pool with stale contents.
	if err := d.Zero(0, sb.PoolSize); err != nil {
		return fmt.Errorf("zero %d bytes: %w", sb.PoolSize, err)
	}
	if err := d.Flush(); err != nil {
		return err
	}
	for c := range uint64(2) {
		if _, err := d.WriteAt(sb.marshal(c), int64(c)*blockSize); err != nil {
			return fmt.Errorf("write superblock: %w", err)
		}
	}
	return d.Flush()
}

func lockDrive(d drive) error {
	fd, ok := d.(*fileDrive)
	if !ok {
		return nil
	}
	err := fd.control(func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrBusy
	}
	return err
}

// Stats is the state of a pool's space.
type Stats struct {
	// Size is the data capacity in bytes: Chunks × ChunkSize.
	Size       int64
	ChunkSize  int64
	Chunks     int64
	FreeChunks int64
	Volumes    int
	MaxVolumes int
}

// VolumeInfo describes one volume.
type VolumeInfo struct {
	ID    string
	Size  int64
	Thick bool
	// Allocated is the bytes of chunks the volume holds.
	Allocated int64
	Epoch     uint64
	InSync    bool
}

// Pool is an open pool. Its methods are safe for concurrent use.
type Pool struct {
	path  string
	d     drive
	sb    superblock
	shift uint // log2 of the chunk size

	closed atomic.Bool

	// qmu guards the queue of allocation requests (see alloc.go).
	qmu     sync.Mutex
	queue   []*allocReq
	leading bool

	// mu guards the metadata below and every metadata write. Lock order:
	// Volume.io before mu.
	mu sync.Mutex
	// broken is set when a metadata write failed: the on-disk state is
	// unknown until the pool is opened again, so no more changes.
	broken     error
	vols       map[string]*Volume
	slots      []slot
	entries    []entry  // by physical chunk
	blockSeq   []uint64 // sequence of each chunk table block
	free       []uint32 // free physical chunks, lowest last
	nextSerial uint64
}

type slot struct {
	rec volRecord
	seq uint64
}

// Open opens the pool on the drive at path, validates it, and finishes or
// rolls back any change a crash interrupted. The drive is locked (flock)
// against a second Open until Close.
func Open(path string) (*Pool, error) {
	d, err := openDrive(path, os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("pool: open %s: %w", path, err)
	}
	if err := lockDrive(d); err != nil {
		d.Close()
		return nil, fmt.Errorf("pool: open %s: %w", path, err)
	}
	p, err := open(d, path)
	if err != nil {
		d.Close()
		return nil, err
	}
	return p, nil
}

func open(d drive, path string) (*Pool, error) {
	p := &Pool{path: path, d: d, vols: map[string]*Volume{}}
	sb, err := readSuper(d)
	if err != nil {
		return nil, fmt.Errorf("pool: open %s: %w", path, err)
	}
	p.sb = sb
	p.shift = uint(bits.TrailingZeros64(uint64(sb.ChunkSize)))
	if d.Size() < sb.PoolSize {
		return nil, fmt.Errorf("pool: open %s: drive has %d bytes, the pool needs %d: %w", path, d.Size(), sb.PoolSize, ErrTruncated)
	}
	if err := p.load(); err != nil {
		return nil, fmt.Errorf("pool: open %s: %w", path, err)
	}
	return p, nil
}

func readSuper(d drive) (superblock, error) {
	if d.Size() < 2*blockSize {
		return superblock{}, fmt.Errorf("drive of %d bytes is too small for a superblock: %w", d.Size(), ErrNotPool)
	}
	b := make([]byte, 2*blockSize)
	if _, err := d.ReadAt(b, 0); err != nil {
		return superblock{}, fmt.Errorf("read superblock: %w", err)
	}
	s0, err0 := unmarshalSuper(b[:blockSize], 0)
	if err0 == nil {
		return s0, nil
	}
	s1, err1 := unmarshalSuper(b[blockSize:], 1)
	if err1 == nil {
		return s1, nil
	}
	if errors.Is(err0, errNoMagic) && errors.Is(err1, errNoMagic) {
		return superblock{}, ErrNotPool
	}
	if errors.Is(err0, errNoMagic) {
		err0 = err1
	}
	return superblock{}, fmt.Errorf("both superblock copies unusable: %w", err0)
}

// tableReader reads a table's block pairs a megabyte at a time.
type tableReader struct {
	d    drive
	base int64
	n    int64 // blocks in the table
	buf  []byte
	at   int64 // first block in buf
}

func (r *tableReader) pair(i int64) ([]byte, []byte, error) {
	const per = 128 // pairs per read
	if r.buf == nil || i < r.at || i >= r.at+int64(len(r.buf))/(2*blockSize) {
		k := min(per, r.n-i)
		if cap(r.buf) < per*2*blockSize {
			r.buf = make([]byte, per*2*blockSize)
		}
		r.buf = r.buf[:k*2*blockSize]
		if _, err := r.d.ReadAt(r.buf, r.base+i*2*blockSize); err != nil {
			return nil, nil, fmt.Errorf("read table at %d: %w", r.base+i*2*blockSize, err)
		}
		r.at = i
	}
	o := (i - r.at) * 2 * blockSize
	return r.buf[o : o+blockSize], r.buf[o+blockSize : o+2*blockSize], nil
}

// pickCopy chooses the newer sound copy of a block pair. decode returns a
// copy's sequence number. A block with sequence s is always written to
// copy s%2, so the other copy holds the last version made durable; a torn
// write damages only the copy being written.
func pickCopy(what string, a, b []byte, decode func(c int, b []byte) (uint64, error)) (int, uint64, error) {
	seqA, errA := decode(0, a)
	seqB, errB := decode(1, b)
	if errA == nil && seqA%2 != 0 {
		errA = fmt.Errorf("sequence %d in copy 0: %w", seqA, ErrCorrupt)
	}
	if errB == nil && seqB != 0 && seqB%2 != 1 {
		errB = fmt.Errorf("sequence %d in copy 1: %w", seqB, ErrCorrupt)
	}
	switch {
	case errA != nil && errB != nil:
		return 0, 0, fmt.Errorf("%s: both copies unusable: %w; %w", what, errA, errB)
	case errA != nil:
		return 1, seqB, nil
	case errB != nil:
		return 0, seqA, nil
	case seqA >= seqB:
		return 0, seqA, nil
	}
	return 1, seqB, nil
}

// load reads the tables, checks them against each other, and repairs what a
// crash can leave behind.
func (p *Pool) load() error {
	sb := p.sb
	p.slots = make([]slot, sb.MaxVolumes)
	bySerial := map[uint64]int{}
	ids := map[string]int{}
	vr := &tableReader{d: p.d, base: sb.VolTable, n: int64(sb.MaxVolumes)}
	for i := range p.slots {
		a, b, err := vr.pair(int64(i))
		if err != nil {
			return err
		}
		recs := [2]volRecord{}
		c, seq, err := pickCopy(fmt.Sprintf("volume record %d", i), a, b, func(c int, blk []byte) (uint64, error) {
			r, seq, err := unmarshalVolRecord(blk, uint64(i))
			recs[c] = r
			return seq, err
		})
		if err != nil {
			return err
		}
		r := recs[c]
		p.slots[i] = slot{rec: r, seq: seq}
		if r.State == stateFree {
			continue
		}
		if err := p.checkSize(r.Size); err != nil {
			return fmt.Errorf("volume record %d (%q): %w: %w", i, r.ID, err, ErrCorrupt)
		}
		if j, dup := ids[r.ID]; dup {
			return fmt.Errorf("volume %q in records %d and %d: %w", r.ID, j, i, ErrCorrupt)
		}
		if j, dup := bySerial[r.Serial]; dup {
			return fmt.Errorf("serial %d in records %d and %d: %w", r.Serial, j, i, ErrCorrupt)
		}
		ids[r.ID], bySerial[r.Serial] = i, i
		p.nextSerial = max(p.nextSerial, r.Serial)
	}
	p.nextSerial++

	nb := chunkBlocks(sb.Chunks)
	p.entries = make([]entry, sb.Chunks)
	p.blockSeq = make([]uint64, nb)
	cr := &tableReader{d: p.d, base: sb.ChunkTable, n: nb}
	for blk := range nb {
		a, b, err := cr.pair(blk)
		if err != nil {
			return err
		}
		n := int(min(perBlock, sb.Chunks-blk*perBlock))
		var got [2][]entry
		c, seq, err := pickCopy(fmt.Sprintf("chunk table block %d", blk), a, b, func(c int, bb []byte) (uint64, error) {
			es, seq, err := unmarshalChunkBlock(bb, uint64(blk), n)
			got[c] = es
			return seq, err
		})
		if err != nil {
			return err
		}
		copy(p.entries[blk*perBlock:], got[c])
		p.blockSeq[blk] = seq
	}

	// Check every owned chunk against its volume, building the volumes'
	// maps as we go (they also catch a logical chunk held twice).
	vols := make([]*Volume, len(p.slots))
	for i, s := range p.slots {
		if s.rec.State != stateFree {
			vols[i] = newVolume(p, i, s.rec)
		}
	}
	owned := make([]int64, len(p.slots)) // chunks per slot
	var release []uint32
	for ph, e := range p.entries {
		if e.Serial == 0 {
			continue
		}
		i, ok := bySerial[e.Serial]
		if !ok {
			return fmt.Errorf("chunk %d belongs to serial %d, which no volume record has: %w", ph, e.Serial, ErrCorrupt)
		}
		r, v := p.slots[i].rec, vols[i]
		if e.Logical >= uint64(p.chunksOf(r.Size)) {
			if r.State == stateActive && !r.Thick {
				return fmt.Errorf("chunk %d holds logical chunk %d of thin volume %q, which has %d: %w", ph, e.Logical, r.ID, p.chunksOf(r.Size), ErrCorrupt)
			}
			release = append(release, uint32(ph)) // a thick resize cut short
			continue
		}
		if other := v.m.get(int64(e.Logical)); other != 0 {
			return fmt.Errorf("chunks %d and %d both hold logical chunk %d of volume %q: %w", other-1, ph, e.Logical, r.ID, ErrCorrupt)
		}
		v.m.set(int64(e.Logical), uint32(ph)+1)
		if r.State == stateActive {
			owned[i]++
		} else {
			release = append(release, uint32(ph)) // rolled back or finished below
		}
	}
	for i, s := range p.slots {
		if r := s.rec; r.State == stateActive && r.Thick && owned[i] != p.chunksOf(r.Size) {
			return fmt.Errorf("thick volume %q of %d chunks holds %d: %w", r.ID, p.chunksOf(r.Size), owned[i], ErrCorrupt)
		}
	}

	for ph := len(p.entries) - 1; ph >= 0; ph-- {
		if p.entries[ph].Serial == 0 {
			p.free = append(p.free, uint32(ph))
		}
	}

	// Recovery: free the chunks of interrupted creates, deletes and
	// resizes, then the records of interrupted creates and deletes.
	if len(release) > 0 {
		if err := p.release(release); err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
	}
	for i, s := range p.slots {
		if s.rec.State == stateCreating || s.rec.State == stateDeleting {
			p.slots[i].rec = volRecord{}
			if err := p.writeRecord(i); err != nil {
				return fmt.Errorf("recovery: %w", err)
			}
		}
	}

	slices.SortFunc(p.free, func(a, b uint32) int { return cmp.Compare(b, a) })
	for i, s := range p.slots {
		if s.rec.State == stateActive {
			vols[i].allocated.Store(owned[i])
			p.vols[s.rec.ID] = vols[i]
		}
	}
	return nil
}

func (p *Pool) chunksOf(size int64) int64 { return (size + p.sb.ChunkSize - 1) >> p.shift }

func (p *Pool) chunkOff(ph uint32) int64 { return p.sb.DataOff + int64(ph)<<p.shift }

// writeBlock writes a new version (sequence seq) of block i of the table
// at base into copy seq%2, leaving the other copy, the last durable
// version, alone. The block is durable when writeBlock returns, so the
// next version may overwrite the other copy.
func (p *Pool) writeBlock(base, i int64, seq uint64, b []byte) error {
	off := base + (2*i+int64(seq%2))*blockSize
	if err := p.d.WriteMeta(b, off); err != nil {
		return p.fail(fmt.Errorf("write metadata at %d: %w", off, err))
	}
	return nil
}

func (p *Pool) writeRecord(i int) error {
	s := &p.slots[i]
	seq := s.seq + 1
	if err := p.writeBlock(p.sb.VolTable, int64(i), seq, s.rec.marshal(seq, uint64(i))); err != nil {
		return err
	}
	s.seq = seq
	return nil
}

func (p *Pool) writeChunkBlock(blk int64) error {
	seq := p.blockSeq[blk] + 1
	es := p.entries[blk*perBlock : min(int64(len(p.entries)), (blk+1)*perBlock)]
	if err := p.writeBlock(p.sb.ChunkTable, blk, seq, marshalChunkBlock(es, seq, uint64(blk))); err != nil {
		return err
	}
	p.blockSeq[blk] = seq
	return nil
}

// setEntries changes the entries of chunks and writes each touched table
// block once.
func (p *Pool) setEntries(chunks []uint32, e func(i int) entry) error {
	for i, ph := range chunks {
		p.entries[ph] = e(i)
	}
	return p.writeChunkBlocks(chunks)
}

// writeChunkBlocks writes each table block holding an entry of chunks
// once.
func (p *Pool) writeChunkBlocks(chunks []uint32) error {
	blks := make([]int64, 0, len(chunks))
	for _, ph := range chunks {
		blks = append(blks, int64(ph)/perBlock)
	}
	slices.Sort(blks)
	for _, blk := range slices.Compact(blks) {
		if err := p.writeChunkBlock(blk); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pool) fail(err error) error {
	if p.broken == nil {
		p.broken = fmt.Errorf("pool %s: metadata write failed, no more changes until reopened: %w", p.path, err)
	}
	return err
}

// usable says why the pool takes no change now, if it does not.
func (p *Pool) usable() error {
	if p.closed.Load() {
		return fmt.Errorf("pool %s: %w", p.path, ErrClosed)
	}
	return p.broken
}

// runs calls fn for each run of consecutive chunks in sorted chunks.
func runs(chunks []uint32, fn func(first uint32, n int64) error) error {
	for i := 0; i < len(chunks); {
		j := i + 1
		for j < len(chunks) && chunks[j] == chunks[j-1]+1 {
			j++
		}
		if err := fn(chunks[i], int64(j-i)); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// release zeroes chunks, makes the zeros durable, then marks the chunks free
// and makes that durable: a chunk is free on disk only once it reads as
// zeros, so no data moves from one volume to another.
func (p *Pool) release(chunks []uint32) error {
	if len(chunks) == 0 {
		return nil
	}
	sorted := slices.Clone(chunks)
	slices.Sort(sorted)
	err := runs(sorted, func(first uint32, n int64) error {
		if err := p.d.Zero(p.chunkOff(first), n<<p.shift); err != nil {
			return p.fail(fmt.Errorf("zero chunks %d to %d: %w", first, int64(first)+n-1, err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := p.d.Flush(); err != nil {
		return p.fail(fmt.Errorf("sync zeroed chunks: %w", err))
	}
	if err := p.setEntries(sorted, func(int) entry { return entry{} }); err != nil {
		return err
	}
	for i := len(sorted) - 1; i >= 0; i-- {
		p.free = append(p.free, sorted[i])
	}
	return nil
}

// take pops n free chunks, lowest first.
func (p *Pool) take(n int) []uint32 {
	got := slices.Clone(p.free[len(p.free)-n:])
	slices.Reverse(got)
	p.free = p.free[:len(p.free)-n]
	return got
}

// reserve asks the file system for the space of chunks.
func (p *Pool) reserve(chunks []uint32) error {
	sorted := slices.Clone(chunks)
	slices.Sort(sorted)
	err := runs(sorted, func(first uint32, n int64) error {
		return p.d.Reserve(p.chunkOff(first), n<<p.shift)
	})
	if err != nil {
		return err
	}
	return p.d.Flush()
}

func noSpace(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), syscall.ENOSPC)
}

// Path is the drive the pool is on.
func (p *Pool) Path() string { return p.path }

// Create makes a volume of size bytes (a positive multiple of 512). A thin
// volume takes chunks as it is written; a thick one takes all of them now
// or fails with an error matching syscall.ENOSPC and takes none. A new
// volume has epoch 0 and is not in sync. ErrExists when the id is taken.
func (p *Pool) Create(id string, size int64, thick bool) (*Volume, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("pool %s: create: %w", p.path, err)
	}
	if err := p.checkSize(size); err != nil {
		return nil, fmt.Errorf("pool %s: create %q: %w", p.path, id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return nil, err
	}
	if _, ok := p.vols[id]; ok {
		return nil, fmt.Errorf("pool %s: create %q: %w", p.path, id, ErrExists)
	}
	i := slices.IndexFunc(p.slots, func(s slot) bool { return s.rec.State == stateFree })
	if i < 0 {
		return nil, fmt.Errorf("pool %s: create %q: all %d slots used: %w", p.path, id, len(p.slots), ErrTableFull)
	}
	n := p.chunksOf(size)
	if thick && n > int64(len(p.free)) {
		return nil, noSpace("pool %s: create thick %q of %d bytes: needs %d chunks, %d free", p.path, id, size, n, len(p.free))
	}
	rec := volRecord{State: stateActive, Thick: thick, Serial: p.nextSerial, Size: size, ID: id}
	p.nextSerial++
	if !thick {
		p.slots[i].rec = rec
		if err := p.writeRecord(i); err != nil {
			return nil, err
		}
		v := newVolume(p, i, rec)
		p.vols[id] = v
		return v, nil
	}

	// Thick: the record says "creating" until every chunk is taken, so a
	// crash in between rolls the volume back at Open.
	rec.State = stateCreating
	p.slots[i].rec = rec
	if err := p.writeRecord(i); err != nil {
		return nil, err
	}
	chunks := p.take(int(n))
	if err := p.setEntries(chunks, func(j int) entry { return entry{rec.Serial, uint64(j)} }); err != nil {
		return nil, err
	}
	if err := p.reserve(chunks); err != nil {
		rerr := fmt.Errorf("pool %s: create thick %q: reserve %d chunks: %w", p.path, id, n, err)
		if err := p.release(chunks); err != nil {
			return nil, errors.Join(rerr, err)
		}
		p.slots[i].rec = volRecord{}
		if err := p.writeRecord(i); err != nil {
			return nil, errors.Join(rerr, err)
		}
		return nil, rerr
	}
	p.slots[i].rec.State = stateActive
	if err := p.writeRecord(i); err != nil {
		return nil, err
	}
	v := newVolume(p, i, p.slots[i].rec)
	for j, ph := range chunks {
		v.m.set(int64(j), ph+1)
	}
	v.allocated.Store(n)
	p.vols[id] = v
	return v, nil
}

func (p *Pool) checkSize(size int64) error {
	switch {
	case size <= 0 || size%512 != 0:
		return fmt.Errorf("size %d: want a positive multiple of 512: %w", size, ErrInvalid)
	case p.chunksOf(size) > maxVolumeChunks || size > 1<<62:
		return fmt.Errorf("size %d: at most %d chunks of %d bytes: %w", size, int64(maxVolumeChunks), p.sb.ChunkSize, ErrInvalid)
	}
	return nil
}

// Volume returns the volume id (ErrNotFound). Every call returns the same
// *Volume until the volume is deleted.
func (p *Pool) Volume(id string) (*Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil, fmt.Errorf("pool %s: %w", p.path, ErrClosed)
	}
	v, ok := p.vols[id]
	if !ok {
		return nil, fmt.Errorf("pool %s: volume %q: %w", p.path, id, ErrNotFound)
	}
	return v, nil
}

// Volumes lists the volumes sorted by id.
func (p *Pool) Volumes() []VolumeInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]VolumeInfo, 0, len(p.vols))
	for _, v := range p.vols {
		out = append(out, v.infoLocked())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats says how full the pool is.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Size:       p.sb.Chunks * p.sb.ChunkSize,
		ChunkSize:  p.sb.ChunkSize,
		Chunks:     p.sb.Chunks,
		FreeChunks: int64(len(p.free)),
		Volumes:    len(p.vols),
		MaxVolumes: p.sb.MaxVolumes,
	}
}

// lockVolume finds volume id and locks it against I/O, then locks the
// pool. The caller unlocks both with the returned func.
func (p *Pool) lockVolume(id string) (*Volume, func(), error) {
	p.mu.Lock()
	v, ok := p.vols[id]
	p.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("pool %s: volume %q: %w", p.path, id, ErrNotFound)
	}
	v.io.Lock()
	p.mu.Lock()
	unlock := func() { p.mu.Unlock(); v.io.Unlock() }
	if p.vols[id] != v {
		unlock()
		return nil, nil, fmt.Errorf("pool %s: volume %q: %w", p.path, id, ErrNotFound)
	}
	if err := p.usable(); err != nil {
		unlock()
		return nil, nil, err
	}
	return v, unlock, nil
}

// Delete removes volume id after waiting for its I/O in flight, zeroes
// and frees its chunks. Its *Volume fails every later call. A crash in
// the middle leaves the delete to be finished by Open.
func (p *Pool) Delete(id string) error {
	v, unlock, err := p.lockVolume(id)
	if err != nil {
		return err
	}
	defer unlock()
	i := v.slot
	p.slots[i].rec.State = stateDeleting
	if err := p.writeRecord(i); err != nil {
		return err
	}
	var chunks []uint32
	for ph, e := range p.entries {
		if e.Serial == v.serial {
			chunks = append(chunks, uint32(ph))
		}
	}
	if err := p.release(chunks); err != nil {
		return err
	}
	p.slots[i].rec = volRecord{}
	if err := p.writeRecord(i); err != nil {
		return err
	}
	v.gone = fmt.Errorf("pool %s: volume %q deleted: %w", p.path, id, ErrNotFound)
	delete(p.vols, id)
	return nil
}

// Resize grows volume id to size bytes (a multiple of 512); a smaller
// size is refused, the same size does nothing. A thick volume takes the
// new chunks or fails with syscall.ENOSPC and changes nothing.
func (p *Pool) Resize(id string, size int64) error {
	if err := p.checkSize(size); err != nil {
		return fmt.Errorf("pool %s: resize %q: %w", p.path, id, err)
	}
	v, unlock, err := p.lockVolume(id)
	if err != nil {
		return err
	}
	defer unlock()
	old := v.Size()
	switch {
	case size < old:
		return fmt.Errorf("pool %s: resize %q to %d bytes: volumes only grow, it has %d: %w", p.path, id, size, old, ErrInvalid)
	case size == old:
		return nil
	}
	oldN, newN := p.chunksOf(old), p.chunksOf(size)
	var chunks []uint32
	if v.thick && newN > oldN {
		if newN-oldN > int64(len(p.free)) {
			return noSpace("pool %s: resize thick %q to %d bytes: needs %d more chunks, %d free", p.path, id, size, newN-oldN, len(p.free))
		}
		// New chunks first: a crash before the record grows leaves them
		// past the volume's end, where Open frees them.
		chunks = p.take(int(newN - oldN))
		if err := p.setEntries(chunks, func(j int) entry { return entry{v.serial, uint64(oldN) + uint64(j)} }); err != nil {
			return err
		}
		if err := p.reserve(chunks); err != nil {
			rerr := fmt.Errorf("pool %s: resize thick %q: reserve %d chunks: %w", p.path, id, len(chunks), err)
			return errors.Join(rerr, p.release(chunks))
		}
	}
	p.slots[v.slot].rec.Size = size
	if err := p.writeRecord(v.slot); err != nil {
		return err
	}
	v.size.Store(size)
	v.m.grow(newN)
	for j, ph := range chunks {
		v.m.set(oldN+int64(j), ph+1)
	}
	v.allocated.Add(int64(len(chunks)))
	return nil
}

// Close waits for I/O in flight, syncs and closes the drive. Volumes fail
// every later call with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed.Swap(true) {
		p.mu.Unlock()
		return fmt.Errorf("pool %s: %w", p.path, ErrClosed)
	}
	vols := make([]*Volume, 0, len(p.vols))
	for _, v := range p.vols {
		vols = append(vols, v)
	}
	p.mu.Unlock()
	for _, v := range vols {
		v.io.Lock()
		v.gone = fmt.Errorf("pool %s: volume %q: %w", p.path, v.id, ErrClosed)
		v.io.Unlock()
	}
	err := p.d.Sync()
	if cerr := p.d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pool %s: close: %w", p.path, err)
	}
	return nil
}

var _ io.Closer = (*Pool)(nil)
