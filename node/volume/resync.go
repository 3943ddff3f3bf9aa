package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/node/nodeclient"
)

// Report is what one resync did.
type Report struct {
	// Node is the replica's node (or its address without one).
	Node string
	// Full is true when the replica had no bitmap (it left before this
	// client kept one): every block was compared and copied.
	Full bool
	// Dirty is how many blocks the bitmap held when the resync began.
	Dirty int
	// Blocks and Bytes are what was copied. A full resync skips blocks
	// that are zero on both sides, so a thin replica allocates nothing
	// for them: Skipped counts those.
	Blocks  int
	Bytes   int64
	Skipped int
	// Duration is how long the resync took; At when it ended.
	Duration time.Duration
	At       time.Time
	// Epoch is the volume's epoch once the replica rejoined.
	Epoch uint64
}

// Resync brings the stale replica on node back into the in-sync set:
//
//  1. from the moment it begins, the replica takes every new write (so it
//     cannot fall behind while the copy runs);
//  2. the blocks the bitmap holds are copied to it from an in-sync
//     replica, or every block when the replica left before this client
//     kept a bitmap (Report.Full), each under a lock against concurrent
//     writes to that block;
//  3. the controller is asked to add it back at the epoch the client saw,
//     the new epoch is registered on every replica, and the bitmap is
//     cleared once no replica is out of sync.
//
// A write the replica fails meanwhile ends the resync with an error (the
// replica stays stale, the write is unaffected). Only one resync runs at a
// time (ErrBusy).
func (v *Volume) Resync(ctx context.Context, node string) (Report, error) {
	if !v.resyncMu.TryLock() {
		return Report{}, fmt.Errorf("volume %s: resync of %s: %w", v.cfg.ID, node, ErrBusy)
	}
	defer v.resyncMu.Unlock()
	start := v.now()
	i := slices.IndexFunc(v.reps, func(r *replica) bool { return r.cfg.Node == node || r.cfg.Node == "" && r.cfg.String() == node })
	if i < 0 {
		return Report{}, fmt.Errorf("volume %s: resync: no replica on node %q", v.cfg.ID, node)
	}
	r := v.reps[i]
	rep := Report{Node: node}
	// A replica that failed but the controller has not dropped yet must be
	// out of the set before it can come back.
	if err := v.settle(ctx); err != nil {
		return rep, err
	}
	v.mu.Lock()
	switch {
	case v.closed:
		v.mu.Unlock()
		return rep, fmt.Errorf("volume %s: resync: %w", v.cfg.ID, ErrClosed)
	case v.fenced != nil:
		v.mu.Unlock()
		return rep, fmt.Errorf("volume %s: resync: %w (%w)", v.cfg.ID, ErrFenced, v.fenced)
	case r.state == inSync && v.unconfirmed:
		// An earlier resync copied everything but could not hear the
		// controller agree: ask again.
		v.mu.Unlock()
		if err := v.confirm(ctx); err != nil {
			return rep, err
		}
		rep.Epoch, rep.At = v.Epoch(), v.now()
		rep.Duration = rep.At.Sub(start)
		return rep, nil
	case r.state != stale:
		v.mu.Unlock()
		return rep, fmt.Errorf("volume %s: resync: the replica on %s is %v, not stale", v.cfg.ID, node, r.state)
	}
	v.resyncOf = node
	old := r.owned // nil for a given Device: the volume never owns one
	if r.cfg.Device == nil {
		// The old device's paths may be dead (the node restarted): open
		// the replica afresh.
		r.dev, r.owned = nil, nil
	}
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.resyncOf = ""
		v.copying = false
		if r.state == catching {
			r.state = stale
		}
		v.mu.Unlock()
	}()
	if old != nil {
		old.Close()
	}
	if err := v.openReplica(ctx, r); err != nil {
		return rep, fmt.Errorf("volume %s: resync: opening the replica on %s (%v): %w", v.cfg.ID, node, r.cfg, err)
	}
	if err := register(ctx, r.dev, v.Epoch()); err != nil {
		if isFenced(err) {
			return rep, fmt.Errorf("resync: %w", v.setFenced(err))
		}
		return rep, fmt.Errorf("volume %s: resync: registering epoch %d on the replica on %s: %w", v.cfg.ID, v.Epoch(), node, err)
	}

	// From here on the replica takes every write. No write is half way
	// through while the state changes and the dirty list is taken.
	v.ioMu.Lock()
	v.mu.Lock()
	dirty := v.dirtyLocked()
	rep.Dirty = len(dirty)
	rep.Full = !r.tracked || v.dirty == nil
	r.state, r.abort = catching, nil
	v.copying = true
	v.mu.Unlock()
	v.ioMu.Unlock()

	if rep.Full {
		dirty = nil
		for off := int64(0); off < v.cfg.Size; off += v.cfg.BlockSize {
			dirty = append(dirty, Block{Off: off, Len: min(v.cfg.BlockSize, v.cfg.Size-off)})
		}
	}
	v.log.Info("resync begins", "volume", v.cfg.ID, "node", node, "full", rep.Full, "dirty", rep.Dirty, "blocks", len(dirty))
	if err := v.copyBlocks(ctx, r, dirty, rep.Full, &rep); err != nil {
		return rep, fmt.Errorf("volume %s: resync of %s: %w", v.cfg.ID, node, err)
	}
	fctx, cancel := context.WithTimeout(ctx, v.cfg.IOTimeout)
	err := r.dev.FlushContext(fctx)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("volume %s: resync of %s: flush: %w", v.cfg.ID, node, err)
	}
	if err := v.rejoin(ctx, r); err != nil {
		return rep, err
	}
	rep.Epoch, rep.At = v.Epoch(), v.now()
	rep.Duration = rep.At.Sub(start)
	v.log.Info("resync done", "volume", v.cfg.ID, "node", node, "full", rep.Full, "dirty", rep.Dirty,
		"blocks", rep.Blocks, "bytes", rep.Bytes, "skipped", rep.Skipped, "epoch", rep.Epoch, "took", rep.Duration)
	return rep, nil
}

// copyBlocks copies blocks to r from the in-sync replicas with
// Config.ResyncWorkers workers.
func (v *Volume) copyBlocks(ctx context.Context, r *replica, blocks []Block, full bool, rep *Report) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var copied, skipped atomic.Int64
	var bytes atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(v.cfg.ResyncWorkers, len(blocks)) {
		wg.Go(func() {
			src, dst := make([]byte, v.cfg.BlockSize), make([]byte, v.cfg.BlockSize)
			for {
				k := next.Add(1) - 1
				if k >= int64(len(blocks)) || ctx.Err() != nil {
					return
				}
				b := blocks[k]
				did, err := v.copyBlock(ctx, r, b, full, src[:b.Len], dst[:b.Len])
				if err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				if did {
					copied.Add(1)
					bytes.Add(b.Len)
				} else {
					skipped.Add(1)
				}
			}
		})
	}
	wg.Wait()
	rep.Blocks, rep.Bytes, rep.Skipped = int(copied.Load()), bytes.Load(), int(skipped.Load())
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// copyBlock copies one block under its stripe lock, so that no write to it
// runs between the read from an in-sync replica and the write to r. In a
// full resync a block that is zero on both sides is not written.
func (v *Volume) copyBlock(ctx context.Context, r *replica, b Block, full bool, src, dst []byte) (bool, error) {
	k := (b.Off / v.cfg.BlockSize) % numStripes
	v.stripes[k].Lock()
	defer v.stripes[k].Unlock()
	v.mu.Lock()
	st, abort := r.state, r.abort
	v.mu.Unlock()
	if st != catching {
		return false, abort
	}
	if _, err := v.readInSync(ctx, src, b.Off); err != nil {
		return false, fmt.Errorf("reading block at %d: %w", b.Off, err)
	}
	ioctx, cancel := context.WithTimeout(ctx, v.cfg.IOTimeout)
	defer cancel()
	if full && allZero(src) {
		if err := v.readFull(ioctx, r.dev, dst, b.Off); err == nil && allZero(dst) {
			return false, nil
		}
	}
	err := v.writeFull(ioctx, r.dev, src, b.Off)
	if isFenced(err) {
		return false, v.setFenced(err)
	}
	if err != nil {
		return false, fmt.Errorf("writing block at %d to the replica: %w", b.Off, err)
	}
	return true, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// rejoin puts r, which caught up, back in the set: no write runs while the
// controller is asked, so none can miss it or fail on it half way.
func (v *Volume) rejoin(ctx context.Context, r *replica) error {
	v.ioMu.Lock()
	defer v.ioMu.Unlock()
	v.ctlMu.Lock()
	defer v.ctlMu.Unlock()
	v.mu.Lock()
	if r.state != catching {
		err := r.abort
		v.mu.Unlock()
		return fmt.Errorf("volume %s: resync of %s: %w", v.cfg.ID, r.cfg.Node, err)
	}
	want := append(v.nodesLocked(inSync), r.cfg.Node)
	slices.Sort(want)
	seen := v.epoch
	v.mu.Unlock()
	var spec nodeclient.VolumeSpec
	var err error
	if v.cfg.Controller != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
		spec, err = v.askRejoin(cctx, want, seen)
		cancel()
	}
	v.mu.Lock()
	switch {
	case errors.Is(err, ErrController):
		// The controller may or may not have put the replica back. It
		// holds every write, so writing to it stays safe either way;
		// the next settle (or repair) asks again.
		r.state = inSync
		v.unconfirmed = true
		v.copying = false
		v.mu.Unlock()
		return err
	case err != nil:
		r.state = stale
		v.mu.Unlock()
		return err
	}
	r.state = inSync
	v.epoch = max(v.epoch, spec.Epoch)
	v.copying = false
	if !slices.ContainsFunc(v.reps, func(o *replica) bool { return o.state != inSync }) {
		v.dirty, v.updated = nil, nil
		for _, o := range v.reps {
			o.tracked = false
		}
	}
	v.mu.Unlock()
	return v.registerAll(ctx)
}

// askRejoin asks the controller to make want (the in-sync replicas and
// the one that caught up) the set at epoch seen, retrying until ctx ends.
// A stale epoch is fine only when the controller already has want (its
// answer was lost); anything else means the volume changed meanwhile.
func (v *Volume) askRejoin(ctx context.Context, want []string, seen uint64) (nodeclient.VolumeSpec, error) {
	backoff := 20 * time.Millisecond
	for {
		spec, err := v.cfg.Controller.SetInSync(ctx, nodeclient.SetInSyncRequest{Volume: v.cfg.ID, Epoch: seen, InSync: want})
		if err == nil {
			return spec, nil
		}
		if errors.Is(err, nodeclient.ErrStaleEpoch) {
			spec, rerr := v.cfg.Controller.Volume(ctx, v.cfg.ID)
			if rerr == nil {
				if slices.Equal(specInSync(spec), want) {
					return spec, nil
				}
				return spec, fmt.Errorf("volume %s: rejoin: the volume moved to epoch %d (in sync: %v) while this client was at %d: %w",
					v.cfg.ID, spec.Epoch, specInSync(spec), seen, err)
			}
			err = rerr
		}
		select {
		case <-ctx.Done():
			return spec, fmt.Errorf("volume %s: rejoin: %w: %w", v.cfg.ID, ErrController, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// confirm asks the controller to take this client's in-sync set (after a
// rejoin whose answer did not come).
func (v *Volume) confirm(ctx context.Context) error {
	v.ctlMu.Lock()
	defer v.ctlMu.Unlock()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
	defer cancel()
	if err := v.agree(cctx); err != nil {
		return err
	}
	return v.registerAll(cctx)
}
