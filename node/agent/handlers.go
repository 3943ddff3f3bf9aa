package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// handle registers fn for method with the per-method counters.
func handle[Req, Resp any](a *Agent, method string, fn func(ctx context.Context, from proto.MAC, req Req) (Resp, error)) {
	key := strings.ReplaceAll(method, ".", "_")
	calls, errs, lat := a.m.calls.With(key), a.m.errors.With(key), a.m.latency.With(key)
	nodeclient.Handle(a.ep, method, func(ctx context.Context, from proto.MAC, req Req) (Resp, error) {
		start := time.Now()
		calls.Inc()
		resp, err := fn(ctx, from, req)
		lat.ObserveSince(start)
		if err != nil {
			errs.Inc()
			a.log.Debug("request refused", "method", method, "from", from.String(), "err", err)
		}
		return resp, err
	})
}

func (a *Agent) registerHandlers() {
	identify := a.m.calls.With("node_identify")
	a.ep.Handle(nodeclient.MethodIdentify, func(ctx context.Context, r *proto.Request) ([]byte, error) {
		identify.Inc()
		return []byte(a.inv.NodeID), nil
	})
	handle(a, nodeclient.MethodDiscover, a.discover)
	handle(a, nodeclient.MethodInfo, a.info)
	handle(a, nodeclient.MethodProbe, a.probe)
	handle(a, nodeclient.MethodList, func(ctx context.Context, _ proto.MAC, _ nodeclient.ListRequest) (nodeclient.DomainList, error) {
		return nodeclient.DomainList{Domains: a.drv.List()}, nil
	})
	handle(a, nodeclient.MethodCreate, a.create)
	handle(a, nodeclient.MethodOp, a.op)
	handle(a, nodeclient.MethodConsole, a.console)
	handle(a, nodeclient.MethodWild, func(ctx context.Context, _ proto.MAC, _ nodeclient.ListRequest) (nodeclient.WildList, error) {
		a.scanWild(ctx)
		return nodeclient.WildList{Wild: a.Wild()}, nil
	})
	handle(a, nodeclient.MethodImport, a.importWild)
	handle(a, nodeclient.MethodPin, a.pin)
	handle(a, nodeclient.MethodVCPUs, func(ctx context.Context, _ proto.MAC, req nodeclient.DomainRequest) (nodeclient.VCPUList, error) {
		v, err := a.vcpus(ctx, req.ID)
		return nodeclient.VCPUList{ID: req.ID, VCPUs: v}, err
	})
	handle(a, nodeclient.MethodNUMA, a.numa)
}

func (a *Agent) summary() nodeclient.Summary {
	doms := a.drv.List()
	s := nodeclient.Summary{NodeID: a.inv.NodeID, MAC: a.inv.MAC, Hostname: a.inv.Hostname, Hypervisor: a.inv.Hypervisor,
		Location: a.inv.Location, PCPUs: a.inv.PCPUs(), Memory: a.inv.Memory, Domains: len(doms),
		Term: a.terms.get(), Epoch: a.ep.Epoch()}
	for _, d := range doms {
		if d.State.Active() {
			s.Running++
		}
	}
	return s
}

// discover answers a broadcast, refusing no term; a controller whose term
// is current is followed (heartbeats go to it).
func (a *Agent) discover(ctx context.Context, from proto.MAC, req nodeclient.DiscoverRequest) (nodeclient.Summary, error) {
	if changed, _ := a.terms.follow(from, req.Term); changed {
		a.following(from, req.Term)
	}
	return a.summary(), nil
}

func (a *Agent) info(ctx context.Context, _ proto.MAC, _ nodeclient.InfoRequest) (nodeclient.NodeInfo, error) {
	a.scanWild(ctx)
	return nodeclient.NodeInfo{Inventory: *a.inv, Usage: a.ledger.Usage(), Driver: a.drv.Hypervisor(), Term: a.terms.get(),
		Started: a.started, Wild: wildNames(a.Wild()), Zombies: a.zombieNames(), Events: a.Events(), Epoch: a.ep.Epoch()}, nil
}

// probe answers the controller's liveness probe, refusing an old term; a
// controller whose term is current is followed (heartbeats go to it).
func (a *Agent) probe(ctx context.Context, from proto.MAC, req nodeclient.ProbeRequest) (nodeclient.Heartbeat, error) {
	changed, err := a.terms.follow(from, req.Term)
	if changed {
		a.following(from, req.Term)
	}
	if err != nil {
		a.m.termsRefused.Inc()
		return nodeclient.Heartbeat{}, err
	}
	return a.heartbeatValue(false), nil
}

func (a *Agent) admit(term uint64) error {
	if err := a.terms.admit(term); err != nil {
		a.m.termsRefused.Inc()
		return err
	}
	return nil
}

func (a *Agent) create(ctx context.Context, _ proto.MAC, req nodeclient.CreateRequest) (domain.Info, error) {
	if err := a.admit(req.Term); err != nil {
		return domain.Info{}, err
	}
	spec := req.Spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return domain.Info{}, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if _, err := a.drv.Info(spec.ID); err == nil {
		return domain.Info{}, fmt.Errorf("%w: %s is already defined on node %s: destroy and undefine it first", domain.ErrExists, spec.Name(), a.inv.NodeID)
	}
	info, err := a.drv.Create(ctx, spec)
	a.m.ops.With("create").Inc()
	if err != nil {
		return info, err
	}
	if !req.Start {
		return info, nil
	}
	return a.doLocked(ctx, spec.ID, domain.OpStart)
}

func (a *Agent) op(ctx context.Context, _ proto.MAC, req nodeclient.OpRequest) (domain.Info, error) {
	if err := a.admit(req.Term); err != nil {
		return domain.Info{}, err
	}
	if req.Op < domain.OpStart || req.Op > domain.OpUndefine {
		return domain.Info{}, nodeclient.BadRequest(fmt.Errorf("unknown operation %d: want 1 (start) to 7 (undefine)", req.Op))
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	return a.doLocked(ctx, req.ID, req.Op)
}

// doLocked applies op and keeps the want set: start, reboot and resume
// mean the node should run the domain; shutdown, destroy and undefine
// mean it should not.
func (a *Agent) doLocked(ctx context.Context, id int, op domain.Op) (domain.Info, error) {
	info, err := a.drv.Do(ctx, id, op)
	a.m.ops.With(op.String()).Inc()
	if err != nil {
		a.m.opErrors.Inc()
		return info, err
	}
	switch op {
	case domain.OpStart, domain.OpReboot, domain.OpResume:
		a.setWant(info.Spec, true)
	case domain.OpShutdown, domain.OpDestroy, domain.OpUndefine:
		a.setWant(domain.Spec{ID: id}, false)
	}
	a.log.Info("domain operation", "domain", domain.Name(id), "op", op.String(), "state", info.State.String())
	return info, nil
}

func (a *Agent) console(ctx context.Context, _ proto.MAC, req nodeclient.DomainRequest) (nodeclient.Console, error) {
	c, ok := a.drv.(domain.Consoler)
	if !ok {
		return nodeclient.Console{}, fmt.Errorf("%w: console on the %s driver", domain.ErrUnsupported, a.drv.Hypervisor())
	}
	b, err := c.Console(ctx, req.ID)
	return nodeclient.Console{ID: req.ID, Data: b}, err
}

func (a *Agent) importWild(ctx context.Context, _ proto.MAC, req nodeclient.ImportRequest) (domain.Info, error) {
	if err := a.admit(req.Term); err != nil {
		return domain.Info{}, err
	}
	wf, ok := a.drv.(domain.WildFinder)
	if !ok {
		return domain.Info{}, fmt.Errorf("%w: wild guests on the %s driver", domain.ErrUnsupported, a.drv.Hypervisor())
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.scanWild(ctx)
	for _, w := range a.Wild() {
		if w.PID != req.PID {
			continue
		}
		info, err := wf.Import(ctx, w, req.ID)
		a.m.ops.With("import").Inc()
		if err != nil {
			return info, err
		}
		a.setWant(info.Spec, true)
		a.scanWild(ctx)
		return info, nil
	}
	return domain.Info{}, fmt.Errorf("%w: no wild guest with pid %d on node %s", domain.ErrNotFound, req.PID, a.inv.NodeID)
}

func (a *Agent) pin(ctx context.Context, _ proto.MAC, req nodeclient.PinRequest) (nodeclient.VCPUList, error) {
	if err := a.admit(req.Term); err != nil {
		return nodeclient.VCPUList{}, err
	}
	p, ok := a.drv.(domain.Pinner)
	if !ok {
		return nodeclient.VCPUList{}, fmt.Errorf("%w: pinning on the %s driver", domain.ErrUnsupported, a.drv.Hypervisor())
	}
	if err := p.PinVCPU(ctx, req.ID, req.VCPU, req.PCPU); err != nil {
		return nodeclient.VCPUList{}, err
	}
	a.m.ops.With("pin").Inc()
	v, err := p.VCPUs(ctx, req.ID)
	return nodeclient.VCPUList{ID: req.ID, VCPUs: v}, err
}

func (a *Agent) vcpus(ctx context.Context, id int) ([]domain.VCPUInfo, error) {
	if p, ok := a.drv.(domain.Pinner); ok {
		return p.VCPUs(ctx, id)
	}
	pl, err := a.ledger.Placement(id)
	if err != nil {
		return nil, err
	}
	out := make([]domain.VCPUInfo, pl.VCPUs)
	for v := range out {
		out[v] = domain.VCPUInfo{VCPU: v, CPU: -1, Affinity: pl.Affinity[v]}
	}
	return out, nil
}

func (a *Agent) numa(ctx context.Context, _ proto.MAC, req nodeclient.DomainRequest) (nodeclient.NUMAReport, error) {
	ids := []int{req.ID}
	if req.ID == 0 {
		ids = ids[:0]
		for _, d := range a.drv.List() {
			ids = append(ids, d.ID)
		}
	}
	rep := nodeclient.NUMAReport{At: time.Now()}
	for _, id := range ids {
		n, err := a.numaOf(ctx, id)
		if err != nil {
			return rep, err
		}
		rep.Domains = append(rep.Domains, n)
	}
	return rep, nil
}

func (a *Agent) numaOf(ctx context.Context, id int) (domain.NUMAInfo, error) {
	if r, ok := a.drv.(domain.NUMAReporter); ok {
		return r.NUMA(ctx, id)
	}
	p, err := a.ledger.Placement(id)
	if err != nil {
		return domain.NUMAInfo{}, err
	}
	return p.NUMA(), nil
}
