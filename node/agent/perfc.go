package agent

import (
	"strconv"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/perfc/perfcrpc"
	"github.com/mvstack/mvstack/perfc/perfevent"
	"github.com/mvstack/mvstack/proto"
)

// servePerfc answers PERFC_DUMP, PERFC_GET and PERFC_RESET (mvctl-perfc)
// and exports the control endpoint's counters into the node's set.
func (a *Agent) servePerfc() error {
	perfcrpc.Register(a.ep, a.set)
	a.ep.Handle(proto.MethodPing, perfcrpc.Instrument(a.set, proto.MethodPing, perfcrpc.Ping))
	detach, err := perfcrpc.AttachStats(a.set, a.ep)
	if err != nil {
		return err
	}
	a.detachStats = detach
	return nil
}

// domainName is the name of a domain's child set: dnN, as mvctl-perfc -d N reads it.
func domainName(id int) string { return "dn" + strconv.Itoa(id) }

// domainCounters keeps each domain's child set and, for a domain with a
// process of its own (a QEMU guest), its PMU and software events through
// perf_event_open on all of its threads.
func (a *Agent) domainCounters(e domain.Event) {
	name := domainName(e.ID)
	a.perfMu.Lock()
	defer a.perfMu.Unlock()
	switch e.State {
	case domain.StateRunning:
		child := a.set.Child(name)
		if a.perfDetach[e.ID] != nil {
			return
		}
		info, err := a.drv.Info(e.ID)
		if err != nil || info.PID == 0 {
			return
		}
		p, err := perfevent.Open(info.PID, nil)
		if err != nil {
			a.log.Debug("no perf events for domain", "domain", name, "err", err)
			return
		}
		detach, err := child.Attach(p)
		if err != nil {
			p.Close()
			return
		}
		a.perfDetach[e.ID] = func() { detach(); p.Close() }
	case domain.StateShutoff, domain.StateCrashed, domain.StateDefined:
		if d := a.perfDetach[e.ID]; d != nil {
			d()
			delete(a.perfDetach, e.ID)
		}
		a.set.Child(name)
	}
}

// pruneDomainCounters removes the child sets of domains that are gone
// (undefined): a domain's counters live as long as the domain.
func (a *Agent) pruneDomainCounters() {
	have := map[string]bool{}
	for _, d := range a.drv.List() {
		have[domainName(d.ID)] = true
	}
	a.perfMu.Lock()
	defer a.perfMu.Unlock()
	for _, name := range a.set.Children() {
		if !have[name] {
			if id, err := strconv.Atoi(name[2:]); err == nil {
				if d := a.perfDetach[id]; d != nil {
					d()
					delete(a.perfDetach, id)
				}
			}
			a.set.RemoveChild(name)
		}
	}
}

// closePerfc stops the per-domain event counters.
func (a *Agent) closePerfc() {
	a.perfMu.Lock()
	for id, d := range a.perfDetach {
		d()
		delete(a.perfDetach, id)
	}
	a.perfMu.Unlock()
	if a.detachStats != nil {
		a.detachStats()
	}
}
