package initiator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/proto"
)

// Device is an AoE device at shelf.slot reached over one or more paths. It
// is safe for concurrent use; concurrent calls share the paths' windows.
type Device struct {
	in    *Initiator
	shelf uint16
	slot  uint8
	id    ata.Identity
	size  int64

	paths []*path // guarded by in.mu
	wake  chan struct{}
	epoch atomic.Uint64 // set by SetEpoch; 0: none
}

var (
	_ io.ReaderAt = (*Device)(nil)
	_ io.WriterAt = (*Device)(nil)
)

// Open discovers shelf.slot on every link, makes a path of each answer and
// identifies the device. It fails with ErrNoTarget when nobody answers.
func (in *Initiator) Open(ctx context.Context, shelf uint16, slot uint8) (*Device, error) {
	if shelf == aoe.BroadcastShelf || slot == aoe.BroadcastSlot {
		return nil, fmt.Errorf("initiator: open %d.%d: a device needs an exact shelf and slot", shelf, slot)
	}
	found, err := in.Discover(ctx, shelf, slot)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("initiator: open %d.%d: %w", shelf, slot, ErrNoTarget)
	}
	d := &Device{in: in, shelf: shelf, slot: slot, wake: make(chan struct{}, 1)}
	in.mu.Lock()
	for _, t := range found {
		d.addPath(t)
	}
	in.devices = append(in.devices, d)
	in.mu.Unlock()
	page := make([]byte, ata.IdentityLen)
	if err := d.ata(ctx, ata.CmdIdentify, 0, 1, page, false); err != nil {
		d.Close()
		return nil, fmt.Errorf("initiator: identify %d.%d: %w", shelf, slot, err)
	}
	if err := d.id.UnmarshalBinary(page); err != nil {
		d.Close()
		return nil, fmt.Errorf("initiator: identify %d.%d: %w", shelf, slot, err)
	}
	d.size = int64(d.id.Sectors) * aoe.SectorSize
	return d, nil
}

// Close forgets the device; requests in flight still complete.
func (d *Device) Close() error {
	d.in.mu.Lock()
	defer d.in.mu.Unlock()
	d.in.devices = slices.DeleteFunc(d.in.devices, func(x *Device) bool { return x == d })
	return nil
}

// addPath adds or refreshes the path of t. It runs under in.mu.
func (d *Device) addPath(t TargetInfo) {
	for _, p := range d.paths {
		if p.info.Link == t.Link && p.info.MAC == t.MAC {
			p.info = t
			p.max = max(1, min(t.BufferCount, d.in.cfg.MaxWindow))
			p.timeouts = 0
			return
		}
	}
	d.paths = append(d.paths, newPath(t, d.in.links[t.Link], &d.in.cfg))
	d.signal()
}

// Shelf is the device's major address.
func (d *Device) Shelf() uint16 { return d.shelf }

// Slot is the device's minor address.
func (d *Device) Slot() uint8 { return d.slot }

// Size is the device's capacity in bytes.
func (d *Device) Size() int64 { return d.size }

// Identity is what IDENTIFY DEVICE returned at Open.
func (d *Device) Identity() ata.Identity { return d.id }

// PathInfo describes one path and its transport state.
type PathInfo struct {
	TargetInfo
	Window   int
	InFlight int
	SRTT     time.Duration
	RTO      time.Duration
	// Sent counts frames sent on the path, Retransmits the share of them
	// that were retransmissions, Replies the replies matched.
	Sent, Retransmits, Replies uint64
	// Epoch is the target's epoch as its last successful registration
	// answered (0: not registered, or the target keeps no epoch).
	Epoch uint64
}

// Paths returns the device's paths.
func (d *Device) Paths() []PathInfo {
	d.in.mu.Lock()
	defer d.in.mu.Unlock()
	out := make([]PathInfo, len(d.paths))
	for i, p := range d.paths {
		out[i] = PathInfo{TargetInfo: p.info, Window: int(p.cwnd), InFlight: p.inflight, SRTT: p.srtt, RTO: p.rto,
			Sent: p.sent, Retransmits: p.retransmits, Replies: p.replies, Epoch: p.epoch}
	}
	return out
}

func (d *Device) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// spf is the sectors per request that every path carries.
func (d *Device) spf() int {
	d.in.mu.Lock()
	defer d.in.mu.Unlock()
	n := 255
	for _, p := range d.paths {
		n = min(n, p.info.SectorsPerFrame)
	}
	return max(n, 1)
}

// acquire takes a window slot on the path with the most room, waiting for
// one if every window is full.
func (d *Device) acquire(ctx context.Context) (*path, error) {
	p, _, err := d.acquireN(ctx, 1)
	return p, err
}

// acquireN is acquire for up to want slots, all on one path: it waits for
// one and takes as many more as that path's window has room for.
func (d *Device) acquireN(ctx context.Context, want int) (*path, int, error) {
	for {
		d.in.mu.Lock()
		if d.in.closed {
			d.in.mu.Unlock()
			return nil, 0, ErrClosed
		}
		var best *path
		for _, p := range d.paths {
			if p.room() <= 0 {
				continue
			}
			if best == nil || (p.alive() && !best.alive()) || (p.alive() == best.alive() && p.room() > best.room()) {
				best = p
			}
		}
		if best != nil {
			n := min(want, best.room())
			best.inflight += n
			more := best.room() > 0
			d.in.mu.Unlock()
			if more {
				d.signal()
			}
			return best, n, nil
		}
		d.in.mu.Unlock()
		select {
		case <-d.wake:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// retryPath picks the path for a retransmission: another live path that
// carries count sectors when p has stopped answering, else p. It runs under
// in.mu.
func (d *Device) retryPath(p *path, count int) *path {
	if p.alive() || len(d.paths) == 1 {
		return p
	}
	var best *path
	for _, q := range d.paths {
		if q == p || q.info.SectorsPerFrame < count {
			continue
		}
		if best == nil || q.timeouts < best.timeouts {
			best = q
		}
	}
	if best == nil || best.timeouts >= p.timeouts {
		return p
	}
	return best
}

// ata runs one windowed ATA request and waits for it. buf holds the data
// written, or receives the data read.
func (d *Device) ata(ctx context.Context, cmd uint8, lba uint64, count int, buf []byte, write bool) error {
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	if e := d.send(ctx, cmd, lba, count, buf, write, func(e error) { err = e; wg.Done() }); e != nil {
		return e
	}
	wg.Wait()
	return err
}

// send issues one ATA request; done is called with its outcome.
func (d *Device) send(ctx context.Context, cmd uint8, lba uint64, count int, buf []byte, write bool, done func(error)) error {
	p, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	d.in.start(d.request(ctx, p, cmd, lba, count, buf, write, done), p)
	return nil
}

// request builds an ATA request holding a window slot of p. When the
// target refuses it because it does not know this initiator at its epoch
// (it restarted, or p is new) and the device's epoch is set, the device
// registers on p again and sends the request once more.
func (d *Device) request(ctx context.Context, p *path, cmd uint8, lba uint64, count int, buf []byte, write bool, done func(error)) *request {
	return d.requestOnce(ctx, p, cmd, lba, count, buf, write, false, done)
}

func (d *Device) requestOnce(ctx context.Context, p *path, cmd uint8, lba uint64, count int, buf []byte, write, retried bool, done func(error)) *request {
	fl := aoe.ATAFlagExtended
	var data []byte
	if write {
		fl |= aoe.ATAFlagWrite
		data = buf
	}
	r := &request{
		dev: d,
		frame: aoe.Frame{
			Header: aoe.Header{Version: aoe.Version, Command: aoe.CmdATA},
			ATA:    aoe.ATAArg{Flags: fl, SectorCount: uint8(count), CmdStatus: cmd, LBA: lba},
			Data:   data,
		},
		slot: p,
	}
	r.cb = func(f *aoe.Frame, err error) {
		if err == nil {
			err = replyError(opName(&r.frame), f, lba)
		}
		if !retried && errors.Is(err, ErrEpochUnregistered) && d.epoch.Load() != 0 {
			// The request is done, so r.cur and r.regGen no longer
			// change. Registering takes a round trip: not on the
			// reader goroutine that runs this callback.
			q, gen := r.cur, r.regGen
			go func() {
				if err := d.reregister(ctx, q, gen); err != nil {
					done(err)
					return
				}
				again := d.requestOnce(ctx, q, cmd, lba, count, buf, write, true, done)
				d.in.mu.Lock()
				q.inflight++
				d.in.mu.Unlock()
				d.in.start(again, q)
			}()
			return
		}
		if err == nil && !write && len(buf) > 0 {
			if len(f.Data) < len(buf) {
				err = &Error{Op: opName(&r.frame), Shelf: d.shelf, Slot: d.slot, LBA: lba, Err: fmt.Errorf("reply carries %d bytes, want %d: %w", len(f.Data), len(buf), ErrBadArgument)}
			} else {
				copy(buf, f.Data)
			}
		}
		done(err)
	}
	return r
}

// rw moves whole sectors: buf starts at sector lba.
func (d *Device) rw(ctx context.Context, buf []byte, lba uint64, write bool) error {
	spf := d.spf()
	cmd := uint8(ata.CmdReadSectorsExt)
	if write {
		cmd = ata.CmdWriteSectorsExt
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	record := func(e error) {
		if e != nil {
			mu.Lock()
			if first == nil {
				first = e
			}
			mu.Unlock()
		}
	}
	step := spf * aoe.SectorSize
	done := func(e error) {
		record(e)
		wg.Done()
	}
	var reqs []*request
	for off := 0; off < len(buf); {
		// Take as many window slots as are free (at least one), and send
		// that many requests in one batch.
		left := (len(buf) - off + step - 1) / step
		p, n, err := d.acquireN(ctx, left)
		if err != nil {
			record(err)
			break
		}
		reqs = reqs[:0]
		for range n {
			chunk := buf[off:min(off+step, len(buf))]
			wg.Add(1)
			reqs = append(reqs, d.request(ctx, p, cmd, lba+uint64(off/aoe.SectorSize), len(chunk)/aoe.SectorSize, chunk, write, done))
			off += len(chunk)
		}
		d.in.startAll(reqs, p)
	}
	wg.Wait()
	return first
}

// ReadAtContext reads len(p) bytes at off. Reads past the end stop there and
// return io.EOF, as io.ReaderAt says.
func (d *Device) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("initiator: read at negative offset %d", off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > d.size-off {
		p, eof = p[:d.size-off], io.EOF
	}
	lo := off &^ (aoe.SectorSize - 1)
	hi := (off + int64(len(p)) + aoe.SectorSize - 1) &^ (aoe.SectorSize - 1)
	if lo == off && hi == off+int64(len(p)) {
		if err := d.rw(ctx, p, uint64(off/aoe.SectorSize), false); err != nil {
			return 0, err
		}
		return len(p), eof
	}
	tmp := make([]byte, hi-lo)
	if err := d.rw(ctx, tmp, uint64(lo/aoe.SectorSize), false); err != nil {
		return 0, err
	}
	return copy(p, tmp[off-lo:]), eof
}

// WriteAtContext writes p at off. Writes that do not cover whole sectors
// read the partial sectors first (not atomic against concurrent writers of
// the same sector). Writes past the end fail with ErrOutOfRange.
func (d *Device) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, &Error{Op: "write", Shelf: d.shelf, Slot: d.slot, LBA: uint64(max(off, 0)) / aoe.SectorSize, Err: ErrOutOfRange}
	}
	lo := off &^ (aoe.SectorSize - 1)
	hi := (off + int64(len(p)) + aoe.SectorSize - 1) &^ (aoe.SectorSize - 1)
	if lo == off && hi == off+int64(len(p)) {
		if err := d.rw(ctx, p, uint64(off/aoe.SectorSize), true); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	tmp := make([]byte, hi-lo)
	// Read the first and last sectors, which p covers only in part.
	if err := d.rw(ctx, tmp[:aoe.SectorSize], uint64(lo/aoe.SectorSize), false); err != nil {
		return 0, err
	}
	if hi-lo > aoe.SectorSize {
		if err := d.rw(ctx, tmp[len(tmp)-aoe.SectorSize:], uint64((hi-aoe.SectorSize)/aoe.SectorSize), false); err != nil {
			return 0, err
		}
	}
	copy(tmp[off-lo:], p)
	if err := d.rw(ctx, tmp, uint64(lo/aoe.SectorSize), true); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadAt implements io.ReaderAt.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	return d.ReadAtContext(context.Background(), p, off)
}

// WriteAt implements io.WriterAt.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	return d.WriteAtContext(context.Background(), p, off)
}

// FlushContext sends FLUSH CACHE EXT to every target behind the device.
func (d *Device) FlushContext(ctx context.Context) error {
	d.in.mu.Lock()
	var macs []proto.MAC
	for _, p := range d.paths {
		if !slices.Contains(macs, p.info.MAC) {
			macs = append(macs, p.info.MAC)
		}
	}
	d.in.mu.Unlock()
	// One flush per target: requests go to the path with most room, so
	// send as many flushes as there are targets, which covers a single
	// target in the common case. With several targets, flush each by
	// pinning it to that target's path.
	if len(macs) <= 1 {
		return d.flushFallback(func(cmd uint8) error { return d.ata(ctx, cmd, 0, 0, nil, false) })
	}
	var first error
	for _, m := range macs {
		if err := d.flushFallback(func(cmd uint8) error { return d.flushOn(ctx, m, cmd) }); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// flushFallback sends FLUSH CACHE EXT, then FLUSH CACHE if that was
// aborted. A target that aborts both (vblade) is taken to have no volatile
// cache of its own, so the flush succeeds.
func (d *Device) flushFallback(send func(cmd uint8) error) error {
	err := send(ata.CmdFlushCacheExt)
	if !errors.Is(err, ErrAborted) {
		return err
	}
	err = send(ata.CmdFlushCache)
	if errors.Is(err, ErrAborted) {
		return nil
	}
	return err
}

// flushOn sends a flush command to the target with MAC m.
func (d *Device) flushOn(ctx context.Context, m proto.MAC, cmd uint8) error {
	d.in.mu.Lock()
	var p *path
	for _, q := range d.paths {
		if q.info.MAC == m {
			p = q
			break
		}
	}
	if p == nil {
		d.in.mu.Unlock()
		return nil
	}
	p.inflight++
	d.in.mu.Unlock()
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	d.in.start(d.request(ctx, p, cmd, 0, 0, nil, false, func(e error) { err = e; wg.Done() }), p)
	wg.Wait()
	return err
}

// Flush implements the device's cache flush.
func (d *Device) Flush() error { return d.FlushContext(context.Background()) }
