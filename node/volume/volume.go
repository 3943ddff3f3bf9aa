package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/nbd"
	"github.com/mvstack/mvstack/node/nodeclient"
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
	// ErrFenced means this client was fenced: a replica refused its I/O
	// for an older epoch than the volume's (or for an AoE reservation that
	// leaves it out), or the controller's view of the volume moved on
	// without it. Every later I/O fails; the volume must be opened again.
	ErrFenced = errors.New("volume: fenced: a newer epoch of the volume exists")
	// ErrController means a replica failed and the controller did not
	// confirm, within Config.IOTimeout, that it left the in-sync set: the
	// write is not acknowledged, since a later reader could otherwise
	// read the replica that missed it.
	ErrController = errors.New("volume: the controller did not confirm the in-sync set")
	// ErrBusy means a resync of the volume is already running.
	ErrBusy = errors.New("volume: a resync is already running")
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

// Epocher is a Device that takes part in epoch fencing: SetEpoch registers
// the client at epoch (raising the replica's epoch when it is newer) and
// fails matching initiator.ErrStaleEpoch when the replica already holds a
// newer one. A Device without it is never fenced.
type Epocher interface {
	SetEpoch(ctx context.Context, epoch uint64) error
}

// Controller is the part of the cluster's controller the volume talks to
// when its in-sync set changes (the node agent implements it over the
// control protocol). Both calls must be safe for concurrent use.
type Controller interface {
	// SetInSync asks to make req.InSync the volume's in-sync set, deciding
	// on req.Epoch; it answers the volume after the change, or an error
	// matching nodeclient.ErrStaleEpoch when req.Epoch is not current.
	SetInSync(ctx context.Context, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error)
	// Volume reads the volume as the controller has it.
	Volume(ctx context.Context, id string) (nodeclient.VolumeSpec, error)
}

var (
	_ Device     = (*initiator.Device)(nil)
	_ Epocher    = (*initiator.Device)(nil)
	_ nbd.Device = (*Volume)(nil)
)

// Replica says where one copy of the volume lives.
type Replica struct {
	// Node is the id of the replica's node: the name the controller's
	// in-sync set uses. Required with Config.Controller.
	Node string
	// Shelf and Slot are the AoE address the replica's node exports it at.
	Shelf uint16
	Slot  uint8
	// MAC, when not zero, is the only target that may answer for
	// Shelf.Slot: Open fails when the opened device has a path elsewhere.
	MAC proto.MAC
	// Local says the replica's disk is on this node; reads prefer it.
	Local bool
	// Stale says the replica is not in the in-sync set at Open: the volume
	// neither reads nor writes it until a Resync brings it back. It is
	// opened only then.
	Stale bool
	// Device, when set, is used as the replica instead of opening
	// Shelf.Slot through the initiator. The volume does not close it.
	Device Device
}

func (r Replica) String() string {
	if r.Node != "" {
		return fmt.Sprintf("%d.%d on %s", r.Shelf, r.Slot, r.Node)
	}
	return fmt.Sprintf("%d.%d", r.Shelf, r.Slot)
}

// Config configures a Volume.
type Config struct {
	// ID is the volume's id at the controller. Required with Controller.
	ID string
	// Initiator opens the replicas' AoE devices. When nil, Open makes one
	// on Links (with initiator.DefaultConfig) and closes it at Close.
	Initiator *initiator.Initiator
	// Links are used only when Initiator is nil. Neither is needed when
	// every replica brings its Device.
	Links []proto.Link
	// Replicas are the volume's copies. Required.
	Replicas []Replica
	// Size is the volume's size in bytes, a multiple of 512; every
	// replica must be at least this large. Required.
	Size int64
	// Epoch is the volume's epoch from the controller; Open registers it
	// on every in-sync replica. 0 keeps no epoch (nothing is fenced).
	Epoch uint64
	// Controller is told when a replica leaves or rejoins the in-sync set.
	// Nil keeps the set local to this client (tests, single-node tools):
	// a failing replica leaves at once and nobody else learns of it.
	Controller Controller
	// BlockSize is the granularity of the dirty bitmap and of a resync, a
	// power of two of at least 512 bytes.
	BlockSize int64
	// IOTimeout bounds each replica request, and the conversation with
	// the controller after a failure: a write or flush that takes longer
	// fails the replica; a controller that does not answer within it fails
	// the write.
	IOTimeout time.Duration
	// ResyncWorkers is how many blocks a resync copies at once.
	ResyncWorkers int
	// OnReplicaFailed is called once for each replica that leaves the
	// in-sync set, with its index in Replicas and the error, before the
	// I/O that saw the failure returns. It may block; nil ignores failures.
	OnReplicaFailed func(replica int, err error)
	// Now is the clock of the dirty bitmap and the resync reports; nil is
	// time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 64 KiB dirty blocks, a 30 s bound on
// every replica request, 32 resync workers.
func DefaultConfig() Config {
	return Config{BlockSize: 64 << 10, IOTimeout: 30 * time.Second, ResyncWorkers: 32}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.Initiator == nil && len(c.Links) == 0 && c.needsInitiator():
		return errors.New("volume: Initiator: nil and no Links to make one")
	case len(c.Replicas) == 0:
		return errors.New("volume: Replicas: none")
	case !slices.ContainsFunc(c.Replicas, func(r Replica) bool { return !r.Stale }):
		return errors.New("volume: Replicas: every one is Stale, none in sync")
	case c.Size <= 0 || c.Size%aoe.SectorSize != 0:
		return fmt.Errorf("volume: Size: %d is not a positive multiple of %d", c.Size, aoe.SectorSize)
	case c.BlockSize < aoe.SectorSize || c.BlockSize&(c.BlockSize-1) != 0:
		return fmt.Errorf("volume: BlockSize: %d is not a power of two of at least %d", c.BlockSize, aoe.SectorSize)
	case c.IOTimeout <= 0:
		return fmt.Errorf("volume: IOTimeout: %v is not positive", c.IOTimeout)
	case c.ResyncWorkers < 0 || c.ResyncWorkers > 256:
		return fmt.Errorf("volume: ResyncWorkers: %d is not 0 (for 1) to 256", c.ResyncWorkers)
	case c.Controller != nil && c.ID == "":
		return errors.New("volume: ID: empty, and a Controller needs the volume's id")
	}
	locals := 0
	for i, r := range c.Replicas {
		if r.Local {
			locals++
		}
		if c.Controller != nil {
			if r.Node == "" {
				return fmt.Errorf("volume: Replicas[%d]: Node is empty, and a Controller names replicas by node", i)
			}
			for j := range i {
				if c.Replicas[j].Node == r.Node {
					return fmt.Errorf("volume: Replicas[%d]: node %s also holds Replicas[%d]", i, r.Node, j)
				}
			}
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

// state is where a replica stands in this client.
type state uint8

const (
	// inSync: every write goes to it; the controller lists it.
	inSync state = iota
	// leaving: it failed and gets no more writes, but the controller may
	// still list it: no write is acknowledged until the controller agreed.
	leaving
	// stale: out of the set, and the controller knows.
	stale
	// catching: a resync runs: it takes every new write, but is not read
	// and its failures only end the resync.
	catching
)

func (s state) String() string {
	return [...]string{"in sync", "leaving", "stale", "catching up"}[s]
}

type replica struct {
	cfg   Replica
	dev   Device            // nil until opened
	owned *initiator.Device // opened by the volume, closed by it
	state state
	// tracked says the dirty bitmap holds every write the replica missed
	// (it left while this client kept the bitmap), so a resync may copy
	// only the dirty blocks.
	tracked bool
	// abort is why a write to the replica failed while it caught up.
	abort error
	// readsAfter, in unix nanoseconds, is when reads may try the replica
	// first again after one failed: a dead replica costs one IOTimeout,
	// not one per read, while writes decide whether it stays in sync.
	readsAfter atomic.Int64
}

// numStripes is the number of block locks a resync copies under.
const numStripes = 1024

// Volume is a replicated block device. It implements the aoe/nbd Device
// interface and is safe for concurrent use.
type Volume struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	in    *initiator.Initiator
	own   *initiator.Initiator // made by Open, closed by Close
	local int                  // index of the local replica, or -1
	rr    atomic.Uint64

	// ioMu: writes and flushes hold it shared for their whole run; a
	// resync holds it alone to switch a replica's state, so that no write
	// is half way through.
	ioMu sync.RWMutex
	// ctlMu serialises the conversations with the controller.
	ctlMu sync.Mutex
	// writing orders writes to overlapping bytes (see overlaps).
	writing overlaps
	// stripes are the per-block locks: writes hold theirs shared while a
	// resync copies, the copier holds one alone per block.
	stripes [numStripes]sync.RWMutex
	// resyncMu is held by the one resync that runs.
	resyncMu sync.Mutex

	mu      sync.Mutex
	reps    []*replica
	epoch   uint64
	fenced  error
	closed  bool
	copying bool // a resync copies: writes take the stripe locks
	// unconfirmed: a replica rejoined here but the controller's answer
	// did not come; the next agreement asks again.
	unconfirmed bool
	resyncOf    string // the node being resynced, for Status
	// dirty has a bit per block written while some replica was out of
	// sync, and updated the time of the block's last such write (unix ns).
	dirty   []uint64
	updated []int64
}

// Open opens every in-sync replica, registers the volume's epoch on each
// and returns the volume. With a Controller, an in-sync replica whose
// target does not answer within IOTimeout (or that fails otherwise) leaves
// the set through the controller, so the volume stays available with the
// others; without one, Open fails.
func Open(ctx context.Context, cfg Config) (*Volume, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ResyncWorkers == 0 {
		cfg.ResyncWorkers = 1
	}
	v := &Volume{cfg: cfg, log: cfg.Logger, now: cfg.Now, local: -1, epoch: cfg.Epoch}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.in = cfg.Initiator
	if v.in == nil && cfg.needsInitiator() {
		icfg := initiator.DefaultConfig()
		icfg.Links = cfg.Links
		icfg.Logger = cfg.Logger
		var err error
		if v.in, err = initiator.New(icfg); err != nil {
			return nil, fmt.Errorf("volume: %w", err)
		}
		v.own = v.in
	}
	for i, rc := range cfg.Replicas {
		r := &replica{cfg: rc, dev: rc.Device, state: inSync}
		if rc.Stale {
			r.state = stale
		}
		if rc.Local {
			v.local = i
		}
		v.reps = append(v.reps, r)
	}
	for i, r := range v.reps {
		if r.state != inSync {
			continue
		}
		err := v.openInSync(ctx, r)
		if err == nil {
			err = register(ctx, r.dev, v.epoch)
		}
		switch {
		case err == nil:
			continue
		case isFenced(err):
			v.Close()
			return nil, fmt.Errorf("volume %s: Replicas[%d] %v: %w (%w)", cfg.ID, i, r.cfg, ErrFenced, err)
		case cfg.Controller == nil:
			v.Close()
			return nil, fmt.Errorf("volume: Replicas[%d] %v: %w", i, r.cfg, err)
		}
		v.leave(i, "open", err)
	}
	if len(v.InSync()) == 0 {
		v.Close()
		return nil, fmt.Errorf("volume %s: open: %w", cfg.ID, ErrNoReplica)
	}
	if err := v.settle(ctx); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// openInSync opens an in-sync replica at Open. With a Controller, a
// replica whose target does not answer is tried again until IOTimeout
// (its node may be setting up the export just now) before it is dropped.
func (v *Volume) openInSync(ctx context.Context, r *replica) error {
	deadline := v.now().Add(v.cfg.IOTimeout)
	for {
		err := v.openReplica(ctx, r)
		if err == nil || v.cfg.Controller == nil || !errors.Is(err, initiator.ErrNoTarget) || !v.now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// openReplica opens r's device over AoE unless it has one, checking its
// paths and size.
func (v *Volume) openReplica(ctx context.Context, r *replica) error {
	if r.dev != nil {
		return v.checkSize(r.dev)
	}
	d, err := v.in.Open(ctx, r.cfg.Shelf, r.cfg.Slot)
	if err != nil {
		return err
	}
	if r.cfg.MAC != (proto.MAC{}) {
		for _, p := range d.Paths() {
			if p.MAC != r.cfg.MAC {
				err = fmt.Errorf("answered by %v, not only by %v", p.MAC, r.cfg.MAC)
				break
			}
		}
	}
	if err == nil {
		err = v.checkSize(d)
	}
	if err != nil {
		d.Close()
		return err
	}
	v.mu.Lock()
	r.dev, r.owned = d, d
	v.mu.Unlock()
	return nil
}

// checkSize refuses a replica smaller than the volume.
func (v *Volume) checkSize(d Device) error {
	if d.Size() < v.cfg.Size {
		return fmt.Errorf("size %d is below the volume's %d", d.Size(), v.cfg.Size)
	}
	return nil
}

// Close closes the devices the volume opened (and its own initiator); later
// I/O fails with ErrClosed.
func (v *Volume) Close() error {
	v.mu.Lock()
	v.closed = true
	var owned []*initiator.Device
	for _, r := range v.reps {
		if r.owned != nil {
			owned = append(owned, r.owned)
			r.owned = nil
		}
	}
	v.mu.Unlock()
	for _, d := range owned {
		d.Close()
	}
	if v.own != nil {
		return v.own.Close()
	}
	return nil
}

// Size is the volume's size in bytes.
func (v *Volume) Size() int64 { return v.cfg.Size }

// ID is the volume's id.
func (v *Volume) ID() string { return v.cfg.ID }

// Epoch is the volume's epoch as this client last agreed it with the
// controller.
func (v *Volume) Epoch() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.epoch
}

// InSync returns the indexes (in Config.Replicas) of the replicas in sync.
func (v *Volume) InSync() []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	var s []int
	for i, r := range v.reps {
		if r.state == inSync {
			s = append(s, i)
		}
	}
	return s
}

// Status is how a volume stands in this client.
type Status struct {
	Epoch uint64
	// InSync and Stale name the replicas (by Node, or address) in and out
	// of the in-sync set; a replica catching up in a resync is Stale.
	InSync, Stale []string
	// Dirty is how many blocks of BlockSize the bitmap holds.
	Dirty     int
	BlockSize int64
	// Fenced is why the volume was fenced, nil if it was not.
	Fenced error
	// Resyncing names the replica a running resync brings back.
	Resyncing string
}

// Status returns how the volume stands.
func (v *Volume) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := Status{Epoch: v.epoch, BlockSize: v.cfg.BlockSize, Fenced: v.fenced, Resyncing: v.resyncOf}
	for _, r := range v.reps {
		name := r.cfg.Node
		if name == "" {
			name = r.cfg.String()
		}
		if r.state == inSync {
			st.InSync = append(st.InSync, name)
		} else {
			st.Stale = append(st.Stale, name)
		}
	}
	for _, w := range v.dirty {
		st.Dirty += bits.OnesCount64(w)
	}
	return st
}

// leave takes replica i out of the in-sync set locally (the controller is
// told by settle), starting the dirty bitmap, and calls OnReplicaFailed
// when it was in.
func (v *Volume) leave(i int, op string, err error) {
	v.mu.Lock()
	r := v.reps[i]
	was := r.state == inSync
	if was {
		r.state = leaving
		r.tracked = true
		v.startBitmapLocked()
	}
	v.mu.Unlock()
	if !was {
		return
	}
	v.log.Warn("replica out of sync", "volume", v.cfg.ID, "replica", i, "addr", r.cfg.String(), "op", op, "err", err)
	if v.cfg.OnReplicaFailed != nil {
		v.cfg.OnReplicaFailed(i, err)
	}
}

func (v *Volume) startBitmapLocked() {
	if v.dirty == nil {
		n := (v.cfg.Size + v.cfg.BlockSize - 1) / v.cfg.BlockSize
		v.dirty = make([]uint64, (n+63)/64)
		v.updated = make([]int64, n)
	}
}

// setFenced records that a replica refused this client for its epoch.
func (v *Volume) setFenced(err error) error {
	v.mu.Lock()
	if v.fenced == nil {
		v.fenced = err
		v.log.Error("volume fenced: no more I/O", "volume", v.cfg.ID, "epoch", v.epoch, "err", err)
	}
	err = v.fenced
	v.mu.Unlock()
	return fmt.Errorf("volume %s: %w (%w)", v.cfg.ID, ErrFenced, err)
}

// markDirty records [off, off+n) in the bitmap when some replica is out of
// sync.
func (v *Volume) markDirty(off, n int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dirty == nil || n <= 0 {
		return
	}
	now := v.now().UnixNano()
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
	return v.dirtyLocked()
}

func (v *Volume) dirtyLocked() []Block {
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

// register registers the client at epoch on dev when dev keeps epochs.
func register(ctx context.Context, dev Device, epoch uint64) error {
	if e, ok := dev.(Epocher); ok && epoch != 0 {
		return e.SetEpoch(ctx, epoch)
	}
	return nil
}

// isFenced says a replica refused the client for its epoch or for a
// reservation: a newer owner of the volume exists.
func isFenced(err error) bool {
	return errors.Is(err, initiator.ErrStaleEpoch) || errors.Is(err, initiator.ErrReserved) || errors.Is(err, ErrFenced)
}

// isUnregistered says a replica forgot the client's registration (its
// target restarted): registering again may work.
func isUnregistered(err error) bool { return errors.Is(err, initiator.ErrEpochUnregistered) }
