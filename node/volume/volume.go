package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/nbd"
	"github.com/mvstack/mvstack/proto"
)

// Sentinels for errors.Is.
var (
	// ErrNoReplica means no replica is in sync any more: every one failed.
	ErrNoReplica = errors.New("volume: no replica in sync")
	// ErrClosed means the volume was closed.
	ErrClosed = errors.New("volume: closed")
	// ErrOutOfRange means a write reaches past the volume's size.
	ErrOutOfRange = errors.New("volume: range past the end of the volume")
)

// Device is one replica's block device as the volume uses it.
// *initiator.Device implements it; tests and other transports may supply
// their own. Implementations must be safe for concurrent use.
type Device interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
	WriteAtContext(ctx context.Context, p []byte, off int64) (int, error)
	FlushContext(ctx context.Context) error
	Size() int64
}

var (
	_ Device     = (*initiator.Device)(nil)
	_ nbd.Device = (*Volume)(nil)
)

// Replica says where one copy of the volume lives.
type Replica struct {
	// Shelf and Slot are the AoE address the replica's node exports it at.
	Shelf uint16
	Slot  uint8
	// MAC, when not zero, is the only target that may answer for
	// Shelf.Slot: Open fails when the opened device has a path elsewhere.
	MAC proto.MAC
	// Local says the replica's disk is on this node; reads prefer it.
	Local bool
	// Device, when set, is used as the replica instead of opening
	// Shelf.Slot through the initiator. The volume does not close it.
	Device Device
}

func (r Replica) String() string { return fmt.Sprintf("%d.%d", r.Shelf, r.Slot) }

// Config configures a Volume.
type Config struct {
	// Initiator opens the replicas' AoE devices. When nil, Open makes one
	// on Links (with initiator.DefaultConfig) and closes it at Close.
	Initiator *initiator.Initiator
	// Links are used only when Initiator is nil. Neither is needed when
	// every replica brings its Device.
	Links []proto.Link
	// Replicas are the volume's copies, all in sync at Open. Required.
	Replicas []Replica
	// Size is the volume's size in bytes, a multiple of 512; every
	// replica must be at least this large. Required.
	Size int64
	// Epoch is the volume's epoch from the controller (informational for
	// now: it is not yet carried on the wire).
	Epoch uint64
	// BlockSize is the granularity of the dirty bitmap, a power of two of
	// at least 512 bytes.
	BlockSize int64
	// IOTimeout bounds each replica request; a write or flush that takes
	// longer fails the replica.
	IOTimeout time.Duration
	// OnReplicaFailed is called once for each replica that leaves the
	// in-sync set, with its index in Replicas and the error, before the
	// I/O that saw the failure returns. It may block (to tell the
	// controller); nil ignores failures.
	OnReplicaFailed func(replica int, err error)
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 64 KiB dirty blocks and a 30 s bound on
// every replica request.
func DefaultConfig() Config {
	return Config{BlockSize: 64 << 10, IOTimeout: 30 * time.Second}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.Initiator == nil && len(c.Links) == 0 && c.needsInitiator():
		return errors.New("volume: Initiator: nil and no Links to make one")
	case len(c.Replicas) == 0:
		return errors.New("volume: Replicas: none")
	case c.Size <= 0 || c.Size%aoe.SectorSize != 0:
		return fmt.Errorf("volume: Size: %d is not a positive multiple of %d", c.Size, aoe.SectorSize)
	case c.BlockSize < aoe.SectorSize || c.BlockSize&(c.BlockSize-1) != 0:
		return fmt.Errorf("volume: BlockSize: %d is not a power of two of at least %d", c.BlockSize, aoe.SectorSize)
	case c.IOTimeout <= 0:
		return fmt.Errorf("volume: IOTimeout: %v is not positive", c.IOTimeout)
	}
	locals := 0
	for i, r := range c.Replicas {
		if r.Local {
			locals++
		}
		if r.Device != nil {
			continue
		}
		if r.Shelf == aoe.BroadcastShelf || r.Slot == aoe.BroadcastSlot {
			return fmt.Errorf("volume: Replicas[%d]: %v is a broadcast address", i, r)
		}
		// One initiator merges every target answering one shelf.slot into
		// paths of one device, so two replicas cannot share an address.
		for j := range i {
			if o := c.Replicas[j]; o.Device == nil && o.Shelf == r.Shelf && o.Slot == r.Slot {
				return fmt.Errorf("volume: Replicas[%d]: %v is also Replicas[%d]", i, r, j)
			}
		}
	}
	if locals > 1 {
		return fmt.Errorf("volume: Replicas: %d are Local, at most one may be", locals)
	}
	return nil
}

// needsInitiator reports whether some replica has to be opened over AoE.
func (c Config) needsInitiator() bool {
	return slices.ContainsFunc(c.Replicas, func(r Replica) bool { return r.Device == nil })
}

// Block is a range of the volume written while a replica was out of sync.
type Block struct {
	Off, Len int64
	// Updated is when the range was last written.
	Updated time.Time
}

// Volume is a replicated block device. It implements the aoe/nbd Device
// interface and is safe for concurrent use.
type Volume struct {
	cfg    Config
	log    *slog.Logger
	devs   []Device
	opened []*initiator.Device // closed at Close
	own    *initiator.Initiator
	local  int // index of the local replica, or -1
	rr     atomic.Uint64

	mu     sync.Mutex
	inSync []bool
	closed bool
	// dirty has a bit per block written while some replica was out of
	// sync, and updated the time of the block's last such write (unix ns).
	dirty   []uint64
	updated []int64
}

// Open opens every replica and returns the volume with all of them in sync.
func Open(ctx context.Context, cfg Config) (*Volume, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Volume{cfg: cfg, log: cfg.Logger, local: -1, inSync: make([]bool, len(cfg.Replicas))}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	in := cfg.Initiator
	if in == nil && cfg.needsInitiator() {
		icfg := initiator.DefaultConfig()
		icfg.Links = cfg.Links
		icfg.Logger = cfg.Logger
		var err error
		if in, err = initiator.New(icfg); err != nil {
			return nil, fmt.Errorf("volume: %w", err)
		}
		v.own = in
	}
	for i, r := range cfg.Replicas {
		d, err := v.open(ctx, in, r)
		if err != nil {
			v.Close()
			return nil, fmt.Errorf("volume: Replicas[%d] %v: %w", i, r, err)
		}
		if d.Size() < cfg.Size {
			v.Close()
			return nil, fmt.Errorf("volume: Replicas[%d] %v: size %d is below the volume's %d", i, r, d.Size(), cfg.Size)
		}
		v.devs = append(v.devs, d)
		v.inSync[i] = true
		if r.Local {
			v.local = i
		}
	}
	return v, nil
}

func (v *Volume) open(ctx context.Context, in *initiator.Initiator, r Replica) (Device, error) {
	if r.Device != nil {
		return r.Device, nil
	}
	d, err := in.Open(ctx, r.Shelf, r.Slot)
	if err != nil {
		return nil, err
	}
	v.opened = append(v.opened, d)
	if r.MAC != (proto.MAC{}) {
		for _, p := range d.Paths() {
			if p.MAC != r.MAC {
				return nil, fmt.Errorf("answered by %v, not only by %v", p.MAC, r.MAC)
			}
		}
	}
	return d, nil
}

// Close closes the devices the volume opened (and its own initiator); later
// I/O fails with ErrClosed.
func (v *Volume) Close() error {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	for _, d := range v.opened {
		d.Close()
	}
	if v.own != nil {
		return v.own.Close()
	}
	return nil
}

// Size is the volume's size in bytes.
func (v *Volume) Size() int64 { return v.cfg.Size }

// Epoch is the epoch the volume was opened at.
func (v *Volume) Epoch() uint64 { return v.cfg.Epoch }

// InSync returns the indexes (in Config.Replicas) of the replicas in sync.
func (v *Volume) InSync() []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.inSyncLocked()
}

func (v *Volume) inSyncLocked() []int {
	var s []int
	for i, ok := range v.inSync {
		if ok {
			s = append(s, i)
		}
	}
	return s
}

// snapshot returns the replicas in sync, or an error when there is none.
func (v *Volume) snapshot(op string, off int64) ([]int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, fmt.Errorf("volume: %s at %d: %w", op, off, ErrClosed)
	}
	s := v.inSyncLocked()
	if len(s) == 0 {
		return nil, fmt.Errorf("volume: %s at %d: %w", op, off, ErrNoReplica)
	}
	return s, nil
}

// fail takes replica i out of the in-sync set, calling OnReplicaFailed when
// it was in.
func (v *Volume) fail(i int, op string, err error) {
	v.mu.Lock()
	was := v.inSync[i]
	v.inSync[i] = false
	if was && v.dirty == nil {
		n := (v.cfg.Size + v.cfg.BlockSize - 1) / v.cfg.BlockSize
		v.dirty = make([]uint64, (n+63)/64)
		v.updated = make([]int64, n)
	}
	v.mu.Unlock()
	if !was {
		return
	}
	v.log.Warn("replica out of sync", "replica", i, "addr", v.cfg.Replicas[i].String(), "op", op, "err", err)
	if v.cfg.OnReplicaFailed != nil {
		v.cfg.OnReplicaFailed(i, err)
	}
}

// markDirty records [off, off+n) in the bitmap when some replica is out of
// sync.
func (v *Volume) markDirty(off, n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dirty == nil || n <= 0 {
		return
	}
	now := time.Now().UnixNano()
	for b := off / v.cfg.BlockSize; b <= (off+n-1)/v.cfg.BlockSize; b++ {
		v.dirty[b/64] |= 1 << (b % 64)
		v.updated[b] = now
	}
}

// Dirty returns the blocks written since the first replica left the in-sync
// set, in offset order, each with the time of its last write: what a resync
// of a stale replica has to copy.
func (v *Volume) Dirty() []Block {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Block
	for w, word := range v.dirty {
		for word != 0 {
			k := int64(w*64) + int64(bits.TrailingZeros64(word))
			word &= word - 1
			off := k * v.cfg.BlockSize
			out = append(out, Block{Off: off, Len: min(v.cfg.BlockSize, v.cfg.Size-off), Updated: time.Unix(0, v.updated[k])})
		}
	}
	return out
}

// WriteAt implements io.WriterAt.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	return v.WriteAtContext(context.Background(), p, off)
}

// WriteAtContext writes p at off on every in-sync replica in parallel and
// returns after all of them answered. A replica that fails leaves the set;
// the write succeeds when at least one replica took it. The replicas' writes
// are not cancelled with ctx (that would leave them different): each is
// bounded by Config.IOTimeout instead.
func (v *Volume) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > v.cfg.Size {
		return 0, fmt.Errorf("volume: write %d bytes at %d: %w", len(p), off, ErrOutOfRange)
	}
	set, err := v.snapshot("write", off)
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
	defer cancel()
	errs := make([]error, len(set))
	var wg sync.WaitGroup
	for k, i := range set {
		wg.Go(func() {
			n, err := v.devs[i].WriteAtContext(wctx, p, off)
			if err == nil && n != len(p) {
				err = io.ErrShortWrite
			}
			errs[k] = err
		})
	}
	wg.Wait()
	ok := 0
	var last error
	for k, i := range set {
		if errs[k] != nil {
			last = errs[k]
			v.fail(i, "write", errs[k])
			continue
		}
		ok++
	}
	if ok == 0 {
		return 0, fmt.Errorf("volume: write at %d: %w (last: %w)", off, ErrNoReplica, last)
	}
	v.markDirty(off, int64(len(p)))
	return len(p), nil
}

// ReadAt implements io.ReaderAt.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	return v.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext reads from the local replica when it is in sync, otherwise
// from the in-sync replicas in turn; a replica that fails a read is left
// for the next one (a failed read does not take it out of the set). Reads
// past the end stop there and return io.EOF.
func (v *Volume) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("volume: read at %d: negative offset", off)
	}
	if off >= v.cfg.Size {
		return 0, io.EOF
	}
	var eof error
	if rest := v.cfg.Size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	set, err := v.snapshot("read", off)
	if err != nil {
		return 0, err
	}
	start := int(v.rr.Add(1) % uint64(len(set)))
	if k := slices.Index(set, v.local); k >= 0 {
		start = k
	}
	var last error
	for j := range set {
		i := set[(start+j)%len(set)]
		rctx, cancel := context.WithTimeout(ctx, v.cfg.IOTimeout)
		n, err := v.devs[i].ReadAtContext(rctx, p, off)
		cancel()
		if err == nil && n == len(p) {
			return n, eof
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("volume: read at %d: %w", off, ctx.Err())
		}
		v.log.Warn("replica read failed", "replica", i, "addr", v.cfg.Replicas[i].String(), "off", off, "err", err)
		last = err
	}
	return 0, fmt.Errorf("volume: read at %d: every in-sync replica failed: %w", off, last)
}

// Flush implements the device's cache flush.
func (v *Volume) Flush() error { return v.FlushContext(context.Background()) }

// FlushContext flushes every in-sync replica in parallel. A replica whose
// flush fails leaves the set (its cache may have lost writes); the flush
// fails only when none is left.
func (v *Volume) FlushContext(ctx context.Context) error {
	set, err := v.snapshot("flush", 0)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
	defer cancel()
	errs := make([]error, len(set))
	var wg sync.WaitGroup
	for k, i := range set {
		wg.Go(func() { errs[k] = v.devs[i].FlushContext(fctx) })
	}
	wg.Wait()
	ok := 0
	var last error
	for k, i := range set {
		if errs[k] != nil {
			last = errs[k]
			v.fail(i, "flush", errs[k])
			continue
		}
		ok++
	}
	if ok == 0 {
		return fmt.Errorf("volume: flush: %w (last: %w)", ErrNoReplica, last)
	}
	return nil
}
