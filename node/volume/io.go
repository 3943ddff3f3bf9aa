package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"time"
)

// target is one replica an I/O goes to.
type target struct {
	i        int
	dev      Device
	catching bool
}

// targets returns the replicas an I/O goes to: the in-sync ones, and with
// catching those a resync brings back; and whether a resync copies.
func (v *Volume) targets(op string, off int64, withCatching bool) ([]target, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return nil, false, fmt.Errorf("volume: %s at %d: %w", op, off, ErrClosed)
	case v.fenced != nil:
		return nil, false, fmt.Errorf("volume %s: %s at %d: %w (%w)", v.cfg.ID, op, off, ErrFenced, v.fenced)
	}
	var tg []target
	n := 0
	for i, r := range v.reps {
		switch {
		case r.state == inSync:
			tg = append(tg, target{i: i, dev: r.dev})
			n++
		case r.state == catching && withCatching:
			tg = append(tg, target{i: i, dev: r.dev, catching: true})
		}
	}
	if n == 0 {
		return nil, false, fmt.Errorf("volume: %s at %d: %w", op, off, ErrNoReplica)
	}
	return tg, v.copying, nil
}

// lockBlocks holds the stripe locks of the blocks [off, off+n) touches,
// shared, and returns their release.
func (v *Volume) lockBlocks(off, n int64) func() {
	first, last := off/v.cfg.BlockSize, (off+max(n, 1)-1)/v.cfg.BlockSize
	var s []int
	if last-first+1 >= numStripes {
		s = make([]int, numStripes)
		for k := range s {
			s[k] = k
		}
	} else {
		for b := first; b <= last; b++ {
			s = append(s, int(b%numStripes))
		}
		slices.Sort(s)
		s = slices.Compact(s)
	}
	for _, k := range s {
		v.stripes[k].RLock()
	}
	return func() {
		for _, k := range s {
			v.stripes[k].RUnlock()
		}
	}
}

// each runs fn for every target in parallel (the last one on the calling
// goroutine) and returns their errors.
func each(tg []target, fn func(t target) error) []error {
	errs := make([]error, len(tg))
	var wg sync.WaitGroup
	for k, t := range tg[:len(tg)-1] {
		wg.Go(func() { errs[k] = fn(t) })
	}
	errs[len(tg)-1] = fn(tg[len(tg)-1])
	wg.Wait()
	return errs
}

// again retries op once after registering the client's epoch again when
// the replica forgot it (its target restarted).
func (v *Volume) again(ctx context.Context, dev Device, op func() error) error {
	err := op()
	if isUnregistered(err) {
		if rerr := register(ctx, dev, v.Epoch()); rerr != nil {
			return rerr
		}
		err = op()
	}
	return err
}

// readFull reads all of p at off from dev, registering again if needed.
func (v *Volume) readFull(ctx context.Context, dev Device, p []byte, off int64) error {
	return v.again(ctx, dev, func() error {
		n, err := dev.ReadAtContext(ctx, p, off)
		if err == nil && n != len(p) {
			err = io.ErrUnexpectedEOF
		}
		return err
	})
}

// writeFull writes all of p at off to dev, registering again if needed.
func (v *Volume) writeFull(ctx context.Context, dev Device, p []byte, off int64) error {
	return v.again(ctx, dev, func() error {
		n, err := dev.WriteAtContext(ctx, p, off)
		if err == nil && n != len(p) {
			err = io.ErrShortWrite
		}
		return err
	})
}

// WriteAt implements io.WriterAt.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	return v.WriteAtContext(context.Background(), p, off)
}

// WriteAtContext writes p at off on every in-sync replica (and one a
// resync is bringing back) in parallel and returns after all of them
// answered. A replica that fails leaves the set, and the write returns only
// once the controller agreed (see the package documentation); the write
// succeeds when at least one replica took it. A replica out of space fails
// the write with an error matching syscall.ENOSPC and stays in the set; a
// replica refusing the client's epoch fences the volume (ErrFenced). The
// replicas' writes are not cancelled with ctx (that would leave them
// different): each is bounded by Config.IOTimeout instead.
func (v *Volume) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > v.cfg.Size {
		return 0, fmt.Errorf("volume: write %d bytes at %d: %w", len(p), off, ErrOutOfRange)
	}
	v.ioMu.RLock()
	defer v.ioMu.RUnlock()
	release := v.writing.lock(off, int64(len(p)))
	tg, copying, err := v.targets("write", off, true)
	if err != nil {
		release()
		return 0, err
	}
	unlock := func() {}
	if copying {
		unlock = v.lockBlocks(off, int64(len(p)))
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
	errs := each(tg, func(t target) error { return v.writeFull(wctx, t.dev, p, off) })
	v.undoPartial(wctx, tg, errs, off, len(p))
	cancel()
	unlock()
	release()
	if err := v.conclude(ctx, "write", off, int64(len(p)), tg, errs); err != nil {
		return 0, err
	}
	return len(p), nil
}

// undoPartial puts back the old data where a write went to some replicas
// but another was out of space: a pool that runs out of chunks writes
// nothing, so that replica still holds the range as it was. Copying it to
// the replicas that took the write leaves every replica as before the
// failed write, instead of different ones a reader could see in turn.
func (v *Volume) undoPartial(ctx context.Context, tg []target, errs []error, off int64, n int) {
	full, took := -1, 0
	for k, t := range tg {
		switch {
		case errs[k] == nil:
			took++
		case !t.catching && errors.Is(errs[k], syscall.ENOSPC):
			full = k
		}
	}
	if full < 0 || took == 0 {
		return
	}
	old := make([]byte, n)
	if _, err := tg[full].dev.ReadAtContext(ctx, old, off); err != nil {
		v.log.Warn("replicas differ after a write one of them had no space for", "volume", v.cfg.ID, "off", off, "len", n, "err", err)
		return
	}
	for k, t := range tg {
		if errs[k] != nil {
			continue
		}
		if _, err := t.dev.WriteAtContext(ctx, old, off); err != nil {
			errs[k] = err // a replica that cannot take the old data back failed
		}
	}
}

// conclude sorts the replicas' answers to a write or flush: failures leave
// the set (and the controller must agree before the I/O returns), a fence
// fails it, ENOSPC is the writer's.
func (v *Volume) conclude(ctx context.Context, op string, off, n int64, tg []target, errs []error) error {
	var fenced, nospc, last error
	ok := 0
	var failed []int // indexes in tg
	for k, t := range tg {
		err := errs[k]
		switch {
		case err == nil:
			if !t.catching {
				ok++
			}
		case t.catching:
			v.abortCatchUp(t.i, op, err)
		case isFenced(err):
			fenced = err
		case errors.Is(err, syscall.ENOSPC):
			nospc = err
		default:
			failed = append(failed, k)
			last = err
		}
	}
	if fenced != nil {
		return fmt.Errorf("%s at %d: %w", op, off, v.setFenced(fenced))
	}
	for _, k := range failed {
		v.leave(tg[k].i, op, errs[k])
	}
	if n > 0 {
		v.markDirty(off, n)
	}
	if ok == 0 {
		if nospc != nil {
			return fmt.Errorf("volume %s: %s at %d: %w", v.cfg.ID, op, off, nospc)
		}
		return fmt.Errorf("volume %s: %s at %d: %w (last: %w)", v.cfg.ID, op, off, ErrNoReplica, last)
	}
	if err := v.settle(ctx); err != nil {
		return fmt.Errorf("%s at %d: %w", op, off, err)
	}
	if nospc != nil {
		return fmt.Errorf("volume %s: %s at %d: %w", v.cfg.ID, op, off, nospc)
	}
	return nil
}

// abortCatchUp ends the catch-up of replica i after a write it failed; the
// resync that runs fails.
func (v *Volume) abortCatchUp(i int, op string, err error) {
	v.mu.Lock()
	r := v.reps[i]
	was := r.state == catching
	if was {
		r.state = stale
		r.abort = fmt.Errorf("%s failed on the replica while it caught up: %w", op, err)
	}
	v.mu.Unlock()
	if was {
		v.log.Warn("replica failed while catching up", "volume", v.cfg.ID, "replica", i, "addr", r.cfg.String(), "op", op, "err", err)
	}
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
	n, err := v.readInSync(ctx, p, off)
	if err != nil {
		return 0, err
	}
	return n, eof
}

func (v *Volume) readInSync(ctx context.Context, p []byte, off int64) (int, error) {
	tg, _, err := v.targets("read", off, false)
	if err != nil {
		return 0, err
	}
	start := int(v.rr.Add(1) % uint64(len(tg)))
	if k := slices.IndexFunc(tg, func(t target) bool { return t.i == v.local }); k >= 0 {
		start = k
	}
	// Two passes from start: a replica whose last read failed recently
	// (before this read began) is tried only in the second.
	now := v.now().UnixNano()
	var last error
	for k := range 2 * len(tg) {
		t := tg[(start+k)%len(tg)]
		after := v.reps[t.i].readsAfter.Load()
		first, backingOff := k < len(tg), after > now
		failedNow := after-int64(readBackoff) >= now // during this read: tried already
		if first == backingOff || (!first && failedNow) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, v.cfg.IOTimeout)
		err := v.readFull(rctx, t.dev, p, off)
		cancel()
		if err == nil {
			return len(p), nil
		}
		if isFenced(err) {
			return 0, fmt.Errorf("read at %d: %w", off, v.setFenced(err))
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("volume: read at %d: %w", off, ctx.Err())
		}
		v.log.Warn("replica read failed", "volume", v.cfg.ID, "replica", t.i, "addr", v.reps[t.i].cfg.String(), "off", off, "err", err)
		v.reps[t.i].readsAfter.Store(v.now().Add(readBackoff).UnixNano())
		last = err
	}
	return 0, fmt.Errorf("volume: read at %d: every in-sync replica failed: %w", off, last)
}

// Flush implements the device's cache flush.
func (v *Volume) Flush() error { return v.FlushContext(context.Background()) }

// FlushContext flushes every in-sync replica in parallel. A replica whose
// flush fails leaves the set (its cache may have lost writes), as a write
// failure does; the flush fails only when none is left.
func (v *Volume) FlushContext(ctx context.Context) error {
	v.ioMu.RLock()
	defer v.ioMu.RUnlock()
	tg, _, err := v.targets("flush", 0, true)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
	errs := each(tg, func(t target) error {
		return v.again(fctx, t.dev, func() error { return t.dev.FlushContext(fctx) })
	})
	cancel()
	return v.conclude(ctx, "flush", 0, 0, tg, errs)
}

// readBackoff is how long a replica that failed a read is tried last.
const readBackoff = 10 * time.Second
