package initiator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mvstack/mvstack/aoe"
)

// SetEpoch registers the initiator at epoch e with every path of the
// device (every target answering its shelf.slot), using mvstack's vendor
// command aoe.CmdEpoch. A target whose epoch is older raises it to e; one
// that holds a newer epoch refuses, and the error wraps [ErrStaleEpoch];
// one that could not make e durable gives [ErrEpochRefused]; a target
// that does not know the command (vblade, the Linux target) gives
// [ErrUnrecognized]. A target that keeps no epoch accepts the
// registration (it then sends [ErrNoSpace] for ENOSPC) and never fences.
// The errors of several paths are joined.
//
// From then on the device re-registers by itself on a path whose target
// no longer knows it (a restarted target, a new path) and retries the
// refused request once.
func (d *Device) SetEpoch(ctx context.Context, e uint64) error {
	d.epoch.Store(e)
	d.in.mu.Lock()
	paths := slices.Clone(d.paths)
	d.in.mu.Unlock()
	if len(paths) == 0 {
		return fmt.Errorf("initiator: set epoch of %d.%d: %w", d.shelf, d.slot, ErrNoTarget)
	}
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			p.regMu.Lock()
			defer p.regMu.Unlock()
			errs[i] = d.registerOn(ctx, p, e)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Epoch returns the epoch set with SetEpoch, 0 when none was.
func (d *Device) Epoch() uint64 { return d.epoch.Load() }

// TargetEpoch asks the device's first live path for its current epoch
// without registering; a target that keeps no epoch answers 0.
func (d *Device) TargetEpoch(ctx context.Context) (uint64, error) {
	rep, err := d.exchange(ctx, aoe.Frame{Header: aoe.Header{Command: aoe.CmdEpoch}, Epoch: aoe.EpochArg{Op: aoe.EpochRead}})
	if err != nil {
		return 0, err
	}
	return rep.Epoch.Epoch, nil
}

// registerOn registers at epoch e on path p. The caller holds p.regMu.
func (d *Device) registerOn(ctx context.Context, p *path, e uint64) error {
	rep, err := d.exchangeOn(ctx, p, aoe.Frame{Header: aoe.Header{Command: aoe.CmdEpoch}, Epoch: aoe.EpochArg{Op: aoe.EpochRegister, Epoch: e}})
	if err != nil {
		return fmt.Errorf("initiator: register %d.%d at epoch %d with %s: %w", d.shelf, d.slot, e, p.mac, err)
	}
	switch rep.Epoch.Status {
	case aoe.EpochOK, aoe.EpochOff:
		d.in.mu.Lock()
		p.regGen++
		p.epoch = rep.Epoch.Epoch
		d.in.mu.Unlock()
		return nil
	case aoe.EpochStale:
		return fmt.Errorf("initiator: register %d.%d at epoch %d with %s: it holds epoch %d: %w", d.shelf, d.slot, e, p.mac, rep.Epoch.Epoch, ErrStaleEpoch)
	case aoe.EpochRefused:
		return fmt.Errorf("initiator: register %d.%d at epoch %d with %s (at %d): %w", d.shelf, d.slot, e, p.mac, rep.Epoch.Epoch, ErrEpochRefused)
	}
	return fmt.Errorf("initiator: register %d.%d at epoch %d with %s: unknown status %v: %w", d.shelf, d.slot, e, p.mac, rep.Epoch.Status, ErrBadArgument)
}

// reregister registers the device's epoch on p again after p's target
// refused a request sent at registration generation gen, unless a
// registration on p succeeded since.
func (d *Device) reregister(ctx context.Context, p *path, gen uint64) error {
	p.regMu.Lock()
	defer p.regMu.Unlock()
	d.in.mu.Lock()
	now := p.regGen
	d.in.mu.Unlock()
	if now != gen {
		return nil
	}
	return d.registerOn(ctx, p, d.epoch.Load())
}
