package target

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/proto"
)

// ErrEpochsOff is returned by [Export.RaiseEpoch] on an export configured
// with Epoch 0, which keeps no epoch.
var ErrEpochsOff = errors.New("target: export keeps no epoch (ExportConfig.Epoch is 0)")

// ErrEpochRefused wraps the error of ExportConfig.OnEpoch when it refused
// to raise the epoch.
var ErrEpochRefused = errors.New("target: new epoch refused")

// fence is an export's epoch state: its current epoch, the epoch each
// source registered at, and the ATA requests in flight that were admitted
// at the current epoch and at older ones, so a raise can wait for the old
// ones to finish before anyone is told of the new epoch.
type fence struct {
	on      bool                 // the export keeps an epoch (cfg.Epoch > 0)
	onEpoch func(e uint64) error // cfg.OnEpoch
	raiseMu sync.Mutex           // serialises raises and registrations
	now     atomic.Uint64        // the current epoch, for the execution-time check
	mu      sync.Mutex           // guards the fields below
	epoch   uint64               // the current epoch
	regs    map[proto.MAC]uint64 // registered sources and their epochs
	cur     int                  // requests in flight admitted at epoch
	old     int                  // requests in flight admitted before it
	drained *sync.Cond           // signalled when old reaches 0
}

func (f *fence) init(epoch uint64, onEpoch func(uint64) error) {
	f.on, f.onEpoch, f.epoch = epoch > 0, onEpoch, epoch
	f.now.Store(epoch)
	f.regs = map[proto.MAC]uint64{}
	f.drained = sync.NewCond(&f.mu)
}

// gated reports whether an ATA command passes the epoch check at all:
// IDENTIFY and CHECK POWER MODE touch no backend, so anyone may send them
// (an initiator identifies a device before it registers).
func gated(cmd uint8) bool {
	return cmd != ata.CmdIdentify && cmd != ata.CmdCheckPowerMode
}

// admit checks src for an ATA request on an export with an epoch and
// counts the request in flight. It returns the epoch it was admitted at,
// or the vendor error that refuses it.
func (f *fence) admit(src proto.MAC) (uint64, aoe.ErrorCode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reg, ok := f.regs[src]
	switch {
	case !ok:
		return 0, aoe.ErrEpochUnregistered
	case reg < f.epoch:
		return 0, aoe.ErrEpochStale
	}
	f.cur++
	return f.epoch, 0
}

// still reports whether a request admitted at epoch may still run: the
// epoch has not moved since, or src has registered at the new one.
func (f *fence) still(src proto.MAC, epoch uint64) bool {
	if f.now.Load() == epoch {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.regs[src] == f.epoch
}

// leave retires a request admitted at epoch.
func (f *fence) leave(epoch uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if epoch == f.epoch {
		f.cur--
		return
	}
	f.old--
	if f.old == 0 {
		f.drained.Broadcast()
	}
}

// registered reports whether src registered with the vendor command at
// any epoch, so it understands mvstack's vendor errors.
func (f *fence) registered(src proto.MAC) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.regs[src]
	return ok
}

// raise makes e the current epoch when it is newer: OnEpoch first (an
// error refuses the raise), then the switch, then a wait for every request
// admitted at an older epoch. It returns the current epoch. The caller
// holds raiseMu.
//
// registrant, when not nil, is the source registering at e: it is recorded
// at e in the same step as the switch, so its own requests admitted at the
// old epoch still run (a writer moving to the epoch it was given must not
// fence itself).
func (f *fence) raise(e uint64, registrant *proto.MAC) (uint64, error) {
	f.mu.Lock()
	cur := f.epoch
	f.mu.Unlock()
	if e <= cur {
		return cur, nil
	}
	if f.onEpoch != nil {
		if err := f.onEpoch(e); err != nil {
			return cur, fmt.Errorf("%w: epoch %d (current %d): %w", ErrEpochRefused, e, cur, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch = e
	f.now.Store(e)
	if registrant != nil {
		f.regs[*registrant] = e
	}
	f.old += f.cur
	f.cur = 0
	for f.old > 0 {
		f.drained.Wait()
	}
	return e, nil
}

// register handles the vendor epoch command from src.
func (f *fence) register(src proto.MAC, req aoe.EpochArg) aoe.EpochArg {
	rep := aoe.EpochArg{Op: req.Op}
	if !f.on {
		if req.Op == aoe.EpochRegister {
			f.mu.Lock()
			f.regs[src] = 0
			f.mu.Unlock()
		}
		rep.Status = aoe.EpochOff
		return rep
	}
	if req.Op == aoe.EpochRead {
		f.mu.Lock()
		rep.Epoch = f.epoch
		f.mu.Unlock()
		return rep
	}
	f.raiseMu.Lock()
	defer f.raiseMu.Unlock()
	cur, err := f.raise(req.Epoch, &src)
	rep.Epoch = cur
	switch {
	case err != nil:
		rep.Status = aoe.EpochRefused
	case req.Epoch < cur:
		rep.Status = aoe.EpochStale
	default:
		f.mu.Lock()
		f.regs[src] = req.Epoch
		f.mu.Unlock()
	}
	return rep
}

// Epoch returns the export's current epoch; 0 when it keeps none.
func (e *Export) Epoch() uint64 { return e.fence.now.Load() }

// RaiseEpoch makes ep the export's current epoch when it is newer than
// the current one, calling ExportConfig.OnEpoch first (an error there
// refuses the raise and wraps [ErrEpochRefused]); a lower or equal ep
// changes nothing. It returns once every ATA request admitted at an older
// epoch has finished, so no source registered only at an older epoch
// reaches the backend after it returns. It returns the current epoch. On
// an export that keeps no epoch it fails with [ErrEpochsOff].
func (e *Export) RaiseEpoch(ep uint64) (uint64, error) {
	if !e.fence.on {
		return 0, fmt.Errorf("target: raise epoch of %d.%d to %d: %w", e.cfg.Shelf, e.cfg.Slot, ep, ErrEpochsOff)
	}
	e.fence.raiseMu.Lock()
	defer e.fence.raiseMu.Unlock()
	return e.fence.raise(ep, nil)
}

// Registered returns the sources registered with the vendor epoch command
// and the epoch each registered at (0 on an export that keeps no epoch).
func (e *Export) Registered() map[proto.MAC]uint64 {
	e.fence.mu.Lock()
	defer e.fence.mu.Unlock()
	out := make(map[proto.MAC]uint64, len(e.fence.regs))
	for m, ep := range e.fence.regs {
		out[m] = ep
	}
	return out
}
