package agent

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// heartbeatValue builds a heartbeat. With take, the pending events and
// the crash flag are taken (a heartbeat that is sent); without, they are
// only read (a probe's answer).
func (a *Agent) heartbeatValue(take bool) nodeclient.Heartbeat {
	u := a.ledger.Usage()
	doms := a.drv.List()
	hb := nodeclient.Heartbeat{NodeID: a.inv.NodeID, MAC: a.inv.MAC, Epoch: a.ep.Epoch(), At: time.Now(),
		Term: a.terms.get(), MaxCPU: uint64(u.PCPUs) * 100, AllocCPU: uint64(u.VCPUs) * 100,
		MaxMemory: u.Memory, AllocMemory: u.Memory - u.MemoryFree, FreeMemory: u.MemoryFree,
		Domains: len(doms), Wild: wildNames(a.Wild()), Zombies: a.zombieNames()}
	for _, d := range a.inv.Disks {
		hb.MaxDisk += d.Size
	}
	for _, d := range doms {
		if d.State.Active() {
			hb.Running++
		}
	}
	hb.NetRX, hb.NetTX = netCounters(a.cfg.Iface)
	a.mu.Lock()
	hb.Crashed = a.crashed
	hb.Events = append(hb.Events, a.pending...)
	if take {
		a.seq++
		hb.Seq = a.seq
		a.crashed = false
		a.pending = nil
	} else {
		hb.Seq = a.seq
	}
	a.mu.Unlock()
	return hb
}

// heartbeat sends one heartbeat to the controller the node follows, if
// there is one. A heartbeat that is not acknowledged within the tolerance
// is counted and its events are kept for the next one.
func (a *Agent) heartbeat(ctx context.Context) {
	ctl := a.Controller()
	if ctl.IsZero() {
		return
	}
	hb := a.heartbeatValue(true)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.Tolerance))
	defer cancel()
	if err := nodeclient.SendHeartbeat(ctx, a.ep, ctl, hb); err != nil {
		a.m.heartbeatsFailed.Inc()
		a.log.Debug("heartbeat not acknowledged", "controller", ctl.String(), "err", err)
		a.mu.Lock()
		a.pending = append(hb.Events, a.pending...)
		if over := len(a.pending) - nodeclient.MaxHeartbeatEvents; over > 0 {
			a.pending = a.pending[over:]
		}
		a.crashed = a.crashed || hb.Crashed
		a.mu.Unlock()
		return
	}
	a.m.heartbeats.Inc()
}

// Controller is the MAC the node's heartbeats go to: the controller that
// most recently discovered or probed it with a current term, at first
// Config.Controller; zero when there is none.
func (a *Agent) Controller() proto.MAC {
	if c := a.terms.controller(); !c.IsZero() {
		return c
	}
	return a.controller
}

// following is called when heartbeats go to another controller from now
// on: the new one gets a heartbeat at once.
func (a *Agent) following(ctl proto.MAC, term uint64) {
	a.log.Info("heartbeats go to the controller that leads", "controller", ctl.String(), "term", term)
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Heartbeat returns what the next heartbeat would say, without taking its
// events.
func (a *Agent) Heartbeat() nodeclient.Heartbeat { return a.heartbeatValue(false) }

// netCounters reads the interface's byte counters from sysfs (0 for a
// link that is no interface, as in tests).
func netCounters(iface string) (rx, tx uint64) {
	if iface == "" {
		return 0, 0
	}
	read := func(name string) uint64 {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", iface, "statistics", name))
		if err != nil {
			return 0
		}
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return v
	}
	return read("rx_bytes"), read("tx_bytes")
}
