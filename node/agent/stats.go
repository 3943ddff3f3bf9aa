package agent

import (
	"context"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/emitter"
)

// statsSource gives the stat emitter the node's running domains, from the
// driver's counters (seed 003 §2.6.1: per vCPU, memory, VIF, VBD).
type statsSource struct{ a *Agent }

var _ emitter.DomainSource = statsSource{}

func (s statsSource) Domains(ctx context.Context) ([]emitter.Domain, error) {
	st, ok := s.a.drv.(domain.Statser)
	if !ok {
		return nil, nil
	}
	var out []emitter.Domain
	for _, info := range s.a.drv.List() {
		if !info.State.Active() {
			continue
		}
		ds, err := st.Stats(ctx, info.ID)
		if err != nil {
			continue // gone between List and Stats
		}
		d := emitter.Domain{ID: info.ID, At: ds.At, Memory: emitter.Memory{Current: ds.Memory.Current, Max: ds.Memory.Max}}
		for _, v := range ds.VCPUs {
			d.VCPUs = append(d.VCPUs, emitter.VCPU{ID: v.VCPU, Time: v.Time})
		}
		for _, v := range ds.VIFs {
			d.VIFs = append(d.VIFs, emitter.VIF{ID: v.ID, RxBytes: v.RxBytes, RxPackets: v.RxPackets, RxErrors: v.RxErrors,
				RxDrops: v.RxDrops, TxBytes: v.TxBytes, TxPackets: v.TxPackets, TxErrors: v.TxErrors, TxDrops: v.TxDrops})
		}
		for _, v := range ds.VBDs {
			d.VBDs = append(d.VBDs, emitter.VBD{ID: v.ID, Backing: v.Backing, Device: v.Device, Outstanding: v.Outstanding,
				ReadReqs: v.ReadReqs, WriteReqs: v.WriteReqs, ReadSectors: v.ReadSectors, WriteSectors: v.WriteSectors})
		}
		out = append(out, d)
	}
	return out, nil
}

// startStats opens the stat-frame link and builds the emitter, unless the
// node sends no stat frames.
func (a *Agent) startStats(keys *proto.Keyring) error {
	if a.cfg.StatsInterval == 0 {
		return nil
	}
	link := a.cfg.StatsLink
	if link == nil {
		if a.cfg.Link != nil {
			return nil // a node on an injected link (tests) sends stats only on a given one
		}
		l, err := proto.OpenPacketLink(a.cfg.Iface, proto.EtherTypeStats, nil)
		if err != nil {
			return err
		}
		link, a.statsLink = l, l
	}
	ecfg := emitter.DefaultConfig()
	ecfg.Link, ecfg.Keys, ecfg.Source, ecfg.Logger = link, keys, statsSource{a}, a.log
	ecfg.Interval = time.Duration(a.cfg.StatsInterval)
	if a.cfg.StatsDest != "" {
		ecfg.Dest, _ = proto.ParseMAC(a.cfg.StatsDest)
	}
	e, err := emitter.New(ecfg)
	if err != nil {
		if a.statsLink != nil {
			a.statsLink.Close()
		}
		return err
	}
	a.stats = e
	return nil
}
