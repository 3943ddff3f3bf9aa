package initiator

import (
	"context"
	"slices"
	"sync"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/proto"
)

// exchange sends one non-ATA request to the device's first live path and
// returns the reply, with its slices copied. It is retransmitted like any
// request, but takes no window slot.
func (d *Device) exchange(ctx context.Context, f aoe.Frame) (aoe.Frame, error) {
	d.in.mu.Lock()
	var p *path
	for _, q := range d.paths {
		if p == nil || (q.alive() && !p.alive()) {
			p = q
		}
	}
	d.in.mu.Unlock()
	if p == nil {
		return aoe.Frame{}, ErrNoTarget
	}
	return d.exchangeOn(ctx, p, f)
}

// exchangeOn is exchange on path p.
func (d *Device) exchangeOn(ctx context.Context, p *path, f aoe.Frame) (aoe.Frame, error) {
	f.Version = aoe.Version
	var (
		wg  sync.WaitGroup
		rep aoe.Frame
		err error
	)
	wg.Add(1)
	r := &request{dev: d, frame: f}
	r.cb = func(g *aoe.Frame, e error) {
		if e == nil {
			e = replyError(opName(&r.frame), g, 0)
		}
		if g != nil {
			rep = *g
			rep.Config.Config = slices.Clone(g.Config.Config)
			rep.Data = slices.Clone(g.Data)
		}
		err = e
		wg.Done()
	}
	d.in.start(r, p)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return aoe.Frame{}, ctx.Err()
	}
	return rep, err
}

// Reserve sets the target's reserve list to macs (an empty list releases
// it); force overrides a reservation held by others. It returns the list
// the target now holds. A refused reservation is ErrReserved.
func (d *Device) Reserve(ctx context.Context, macs []proto.MAC, force bool) ([]proto.MAC, error) {
	cmd := aoe.ReserveSet
	if force {
		cmd = aoe.ReserveForceSet
	}
	rep, err := d.exchange(ctx, aoe.Frame{Header: aoe.Header{Command: aoe.CmdReserve}, Reserve: aoe.ReserveArg{Cmd: cmd, MACs: macs}})
	return rep.Reserve.MACs, err
}

// Reservations returns the target's reserve list.
func (d *Device) Reservations(ctx context.Context) ([]proto.MAC, error) {
	rep, err := d.exchange(ctx, aoe.Frame{Header: aoe.Header{Command: aoe.CmdReserve}, Reserve: aoe.ReserveArg{Cmd: aoe.ReserveRead}})
	return rep.Reserve.MACs, err
}

// SetConfig sets the target's config string; force overwrites a string
// already present (otherwise that is ErrConfigPresent).
func (d *Device) SetConfig(ctx context.Context, s string, force bool) error {
	cmd := aoe.ConfigSet
	if force {
		cmd = aoe.ConfigForceSet
	}
	_, err := d.exchange(ctx, aoe.Frame{Header: aoe.Header{Command: aoe.CmdConfig}, Config: aoe.ConfigArg{Cmd: cmd, Config: []byte(s)}})
	return err
}

// EditMACMask applies directives to the target's MAC mask list and returns
// the list.
func (d *Device) EditMACMask(ctx context.Context, dirs []aoe.Directive) ([]proto.MAC, error) {
	cmd := aoe.MaskEdit
	if len(dirs) == 0 {
		cmd = aoe.MaskRead
	}
	rep, err := d.exchange(ctx, aoe.Frame{Header: aoe.Header{Command: aoe.CmdMACMask}, MACMask: aoe.MACMaskArg{Cmd: cmd, Directives: dirs}})
	var out []proto.MAC
	for _, dir := range rep.MACMask.Directives {
		out = append(out, dir.MAC)
	}
	return out, err
}
