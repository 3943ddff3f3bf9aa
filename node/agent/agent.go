package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/domain/sim"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/emitter"
)

// Agent is a running node daemon. Its handlers answer from New on; Run
// adds heartbeats, wild scans and /metrics. Safe for concurrent use.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	ep         *proto.Endpoint
	inv        *inventory.Inventory
	ledger     *domain.Ledger
	drv        domain.Driver
	set        *perfc.Set
	m          counters
	terms      *terms
	store      *store
	controller proto.MAC
	started    time.Time
	// guestDir holds the QEMU guests' sockets: only guests whose QMP
	// socket is below it can be this node's own.
	guestDir string

	// opMu serialises the operations that change which domains the node
	// should run, so the want set and the driver agree.
	opMu sync.Mutex

	mu      sync.Mutex
	want    map[int]domain.Spec // domains the node should run
	events  []domain.Event      // the last cfg.Events, oldest first
	pending []domain.Event      // since the last heartbeat
	crashed bool                // a crash since the last heartbeat
	wild    []domain.Wild
	seq     uint64

	kick chan struct{}

	httpMu  sync.Mutex
	httpSrv *http.Server
	httpLn  net.Listener

	// performance counters of the domains (perfc.go) and stat frames (stats.go)
	perfMu      sync.Mutex
	perfDetach  map[int]func()
	detachStats func()
	stats       *emitter.Emitter
	statsLink   proto.Link
	storage     *storage // the storage role (storage.go, volumes.go)
}

// New builds the node: endpoint, inventory, ledger, driver, handlers and
// the /metrics server. The node answers when New returns.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, started: time.Now(), want: map[int]domain.Spec{}, kick: make(chan struct{}, 1),
		perfDetach: map[int]func(){}}
	if cfg.Controller != "" {
		a.controller, _ = proto.ParseMAC(cfg.Controller)
	}
	var err error
	if a.store, err = openStore(cfg.StateDir); err != nil {
		return nil, err
	}
	saved, term, err := a.store.load()
	if err != nil {
		return nil, err
	}
	a.terms = newTerms(term, a.store)
	if saved != nil {
		a.want = saved
	}

	link := cfg.Link
	if link == nil {
		if link, err = proto.OpenPacketLink(cfg.Iface, proto.EtherTypeControl, nil); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	keys := cfg.Keys
	if keys == nil {
		if keys, err = proto.LoadKeyring(cfg.KeyFile); err != nil {
			link.Close()
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	icfg := inventory.DefaultConfig()
	icfg.MAC, icfg.Location, icfg.Sim, icfg.DriveFiles = link.Addr(), cfg.Location, cfg.SimHardware, cfg.DriveFiles
	if icfg.Sim == nil && cfg.Driver == DriverSim {
		hw := inventory.DefaultSimHardware()
		icfg.Sim = &hw
	}
	if a.inv, err = inventory.Probe(icfg); err != nil {
		link.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if len(a.inv.NICs) > 0 && a.inv.Simulated {
		// The management NIC is real even on simulated hardware.
		if cfg.Iface != "" {
			a.inv.NICs[0].Name = cfg.Iface
		}
		a.inv.NICs[0].MTU = link.MTU()
	}
	lcfg := domain.DefaultLedgerConfig()
	lcfg.CPUOvercommit, lcfg.ReservedMemory = cfg.CPUOvercommit, cfg.ReservedMemoryMiB*domain.MiB
	if a.ledger, err = domain.NewLedger(a.inv, lcfg); err != nil {
		link.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.set, err = perfc.NewSet(nil); err != nil {
		link.Close()
		return nil, err
	}
	a.m = newCounters(a.set)
	deps := DriverDeps{Config: cfg, Inventory: a.inv, Ledger: a.ledger, Notify: a.onEvent, Logger: log}
	if a.drv, err = newDriver(deps); err != nil {
		link.Close()
		return nil, fmt.Errorf("agent: %s driver: %w", cfg.Driver, err)
	}
	a.inv.Hypervisor = a.drv.Hypervisor()
	if cfg.Driver == DriverQEMU {
		a.guestDir = guestDir(cfg, a.inv.NodeID)
	}

	pcfg := proto.DefaultConfig()
	pcfg.Keys = keys
	pcfg.Tolerance = time.Duration(cfg.Tolerance)
	pcfg.ProbeInterval = pcfg.Tolerance / 8
	pcfg.Logger = log
	if a.ep, err = proto.NewEndpoint(link, pcfg); err != nil {
		link.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.registerHandlers()
	if err := a.servePerfc(); err != nil {
		a.ep.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := a.startStats(keys); err != nil {
		a.closePerfc()
		a.ep.Close()
		return nil, fmt.Errorf("agent: stat frames: %w", err)
	}
	if err := a.startStorage(); err != nil {
		a.closePerfc()
		a.ep.Close()
		return nil, fmt.Errorf("agent: storage: %w", err)
	}
	a.registerStorage()
	if err := a.serveMetrics(); err != nil {
		a.storage.close()
		a.closePerfc()
		a.ep.Close()
		return nil, err
	}
	log.Info("node up", "node", a.inv.NodeID, "mac", link.Addr().String(), "driver", a.drv.Hypervisor(),
		"pcpus", a.inv.PCPUs(), "memory_mib", a.inv.Memory/domain.MiB)
	return a, nil
}

func newDriver(d DriverDeps) (domain.Driver, error) {
	if d.Config.NewDriver != nil {
		return d.Config.NewDriver(d)
	}
	switch d.Config.Driver {
	case DriverSim:
		scfg := sim.DefaultConfig()
		scfg.Ledger, scfg.Notify, scfg.Logger, scfg.ConsoleSize = d.Ledger, d.Notify, d.Logger, d.Config.ConsoleSize
		return sim.New(scfg)
	case DriverQEMU:
		return newQEMU(d)
	}
	return nil, errors.New("not built into this program: set Config.NewDriver")
}

// NodeID is the node's id (low 32 bits of its MAC, in hex).
func (a *Agent) NodeID() string { return a.inv.NodeID }

// Addr is the node's management MAC.
func (a *Agent) Addr() proto.MAC { return a.ep.Addr() }

// Endpoint is the node's control-protocol endpoint.
func (a *Agent) Endpoint() *proto.Endpoint { return a.ep }

// Driver is the node's domain driver (tests inject faults through it).
func (a *Agent) Driver() domain.Driver { return a.drv }

// Inventory returns the node's inventory.
func (a *Agent) Inventory() *inventory.Inventory { return a.inv }

// Perfc returns the node's counter set (the PERFC commands read it).
func (a *Agent) Perfc() *perfc.Set { return a.set }

// Run adopts the node's own guests left running by an earlier mvnode, then
// sends heartbeats and looks for wild guests until ctx ends, then closes
// the node (see Close).
func (a *Agent) Run(ctx context.Context) error {
	defer a.Close()
	if a.stats != nil {
		go a.stats.Run(ctx)
	}
	go a.storage.serve(ctx)
	a.adopt(ctx)
	a.scanWild(ctx)
	a.heartbeat(ctx)
	t := time.NewTicker(time.Duration(a.cfg.HeartbeatInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.shutdown()
			return nil
		case <-t.C:
			a.scanWild(ctx)
			a.pruneDomainCounters()
			a.heartbeat(ctx)
		case <-a.kick:
			a.heartbeat(ctx)
		}
	}
}

// shutdown decides what the domains become when the daemon stops:
// simulated ones end with the process, so the node should run none of
// them at its next start; QEMU guests keep running and are adopted again.
func (a *Agent) shutdown() {
	if a.cfg.Driver == DriverSim {
		a.mu.Lock()
		a.want = map[int]domain.Spec{}
		a.mu.Unlock()
		a.saveWant()
	}
	a.log.Info("node stopping", "node", a.inv.NodeID, "domains", len(a.drv.List()))
}

// Close stops answering: the endpoint and the metrics server close.
// QEMU guests keep running unless Config.StopGuestsOnExit.
func (a *Agent) Close() error {
	a.httpMu.Lock()
	if a.httpSrv != nil {
		a.httpSrv.Close()
		a.httpSrv = nil
	}
	a.httpMu.Unlock()
	if c, ok := a.drv.(interface{ Close() error }); ok && (a.cfg.StopGuestsOnExit || a.cfg.Driver == DriverSim) {
		c.Close()
	} else if d, ok := a.drv.(interface{ Detach() }); ok {
		// Let go of the guests' QMP sockets (QEMU serves one client at
		// a time) so the next run can take them back.
		d.Detach()
	}
	a.closePerfc()
	if a.statsLink != nil {
		a.statsLink.Close()
	}
	if a.storage != nil {
		a.storage.close()
	}
	return a.ep.Close()
}

// onEvent receives every state change from the driver.
func (a *Agent) onEvent(e domain.Event) {
	a.m.events.With(eventKey(e.State)).Inc()
	a.mu.Lock()
	a.events = append(a.events, e)
	if over := len(a.events) - a.cfg.Events; over > 0 {
		a.events = slices.Delete(a.events, 0, over)
	}
	a.pending = append(a.pending, e)
	if over := len(a.pending) - nodeclient.MaxHeartbeatEvents; over > 0 {
		a.pending = slices.Delete(a.pending, 0, over)
	}
	crash := e.State == domain.StateCrashed
	if crash {
		a.crashed = true
	}
	a.mu.Unlock()
	a.domainCounters(e)
	if crash {
		a.m.crashes.Inc()
		a.log.Warn("domain crashed", "domain", domain.Name(e.ID), "reason", e.Reason)
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

func eventKey(s domain.State) string {
	switch s {
	case domain.StateDefined, domain.StateRunning, domain.StatePaused, domain.StateShutoff, domain.StateCrashed:
		return s.String()
	}
	return "other"
}

// Events returns the node's recent domain events, oldest first.
func (a *Agent) Events() []domain.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// setWant records whether the node should run domain id.
func (a *Agent) setWant(spec domain.Spec, run bool) {
	a.mu.Lock()
	if run {
		a.want[spec.ID] = spec
	} else {
		delete(a.want, spec.ID)
	}
	a.mu.Unlock()
	a.saveWant()
}

func (a *Agent) saveWant() {
	if a.store.dir == "" {
		return
	}
	a.mu.Lock()
	want := make(map[int]domain.Spec, len(a.want))
	for k, v := range a.want {
		want[k] = v
	}
	a.mu.Unlock()
	if err := a.store.saveWant(want); err != nil {
		a.log.Error("saving the domains the node should run", "err", err)
	}
}

// Zombies returns the domains the node should run that are not running.
func (a *Agent) Zombies() []int {
	a.mu.Lock()
	want := make([]int, 0, len(a.want))
	for id := range a.want {
		want = append(want, id)
	}
	a.mu.Unlock()
	slices.Sort(want)
	return domain.Zombies(want, a.drv.List())
}

// Wild returns the guests found at the last scan that the node did not
// start (guests an earlier run launched are zombies, not wild).
func (a *Agent) Wild() []domain.Wild {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(a.wild), func(w domain.Wild) bool { return w.Launched })
}

// zombieNames lists seed 000's zombies: the domains the node should run
// that are not running, and guests an earlier run launched that no driver
// controls now.
func (a *Agent) zombieNames() []string {
	names := make([]string, 0)
	for _, id := range a.Zombies() {
		names = append(names, domain.Name(id))
	}
	a.mu.Lock()
	for _, w := range a.wild {
		if !w.Launched {
			continue
		}
		name := filepath.Base(filepath.Dir(w.QMP))
		if _, err := domain.ParseName(name); err != nil {
			name = strconv.Itoa(w.PID) + ":" + w.Name
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	a.mu.Unlock()
	return names
}

func (a *Agent) scanWild(ctx context.Context) {
	wf, ok := a.drv.(domain.WildFinder)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.HeartbeatInterval))
	defer cancel()
	w, err := wf.Wild(ctx)
	if err != nil {
		a.log.Warn("looking for wild guests", "err", err)
		return
	}
	a.mu.Lock()
	a.wild = w
	a.mu.Unlock()
}

// recoverer is a driver that finds the guests an earlier run of the node
// launched and takes them back under their own ids (qemu.Driver.Recover).
type recoverer interface {
	Recover(ctx context.Context) ([]domain.Info, error)
}

// adopt takes back the node's own guests left running across a daemon
// restart: the driver's Recover when it has one, then any wild guest named
// dnN, with its QMP socket under the node's run directory, that the state
// directory says the node should run.
func (a *Agent) adopt(ctx context.Context) {
	wf, ok := a.drv.(domain.WildFinder)
	if !ok {
		return
	}
	if r, ok := a.drv.(recoverer); ok {
		infos, err := r.Recover(ctx)
		if err != nil {
			a.log.Warn("recovering our guests", "err", err)
		}
		for _, info := range infos {
			a.mu.Lock()
			if _, known := a.want[info.ID]; !known && info.State.Active() {
				a.want[info.ID] = info.Spec
			}
			a.mu.Unlock()
			a.log.Info("recovered our guest", "domain", info.Name, "pid", info.PID)
		}
		a.saveWant()
	}
	wild, err := wf.Wild(ctx)
	if err != nil {
		a.log.Warn("looking for our guests", "err", err)
		return
	}
	for _, w := range wild {
		id, err := domain.ParseName(w.Name)
		if err != nil {
			continue
		}
		a.mu.Lock()
		_, mine := a.want[id]
		a.mu.Unlock()
		if !mine || a.guestDir != "" && !strings.HasPrefix(w.QMP, a.guestDir+string(filepath.Separator)) {
			continue
		}
		if _, err := a.drv.Info(id); err == nil {
			continue
		}
		if _, err := wf.Import(ctx, w, id); err != nil {
			a.log.Warn("adopting our guest", "domain", domain.Name(id), "pid", w.PID, "err", err)
			continue
		}
		a.log.Info("adopted our guest again", "domain", domain.Name(id), "pid", w.PID)
	}
}

func wildNames(ws []domain.Wild) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, strconv.Itoa(w.PID)+":"+w.Name)
	}
	return out
}
