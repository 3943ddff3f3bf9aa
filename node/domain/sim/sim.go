package sim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
)

// Config configures a Driver.
type Config struct {
	// Ledger holds the node's resources (required).
	Ledger *domain.Ledger
	// Now is the clock (nil = time.Now).
	Now func() time.Time
	// Notify receives every state change, outside the driver's lock.
	Notify func(domain.Event)
	// ConsoleSize bounds each domain's console buffer (bytes).
	ConsoleSize int
	Logger      *slog.Logger
}

// DefaultConfig returns a config with a 16 KiB console per domain; Ledger
// must still be set.
func DefaultConfig() Config { return Config{ConsoleSize: 16 << 10} }

// Validate checks the config.
func (c Config) Validate() error {
	if c.Ledger == nil {
		return errors.New("sim: Config.Ledger is nil")
	}
	if c.ConsoleSize < 256 {
		return fmt.Errorf("sim: Config.ConsoleSize %d: want at least 256", c.ConsoleSize)
	}
	return nil
}

// Driver runs simulated domains.
type Driver struct {
	cfg Config
	now func() time.Time
	log *slog.Logger

	mu   sync.Mutex
	doms map[int]*dom
	wild []domain.Wild
}

var (
	_ domain.Driver       = (*Driver)(nil)
	_ domain.Pinner       = (*Driver)(nil)
	_ domain.NUMAReporter = (*Driver)(nil)
	_ domain.Consoler     = (*Driver)(nil)
	_ domain.Statser      = (*Driver)(nil)
	_ domain.WildFinder   = (*Driver)(nil)
)

type dom struct {
	info domain.Info
	// ran is the running time accumulated before runningSince.
	ran          time.Duration
	runningSince time.Time // zero unless running
	profile      profile
	console      []byte
}

// profile is a domain's deterministic load: per-vCPU utilisation and I/O
// rates, drawn from its id.
type profile struct {
	util     []float64 // 0..1 per vCPU
	memUsed  float64   // fraction of memory in use
	rxBps    float64   // bytes per second of running time
	txBps    float64
	readIOPS float64
	writeIOP float64
}

// New returns a driver.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, now: cfg.Now, log: cfg.Logger, doms: map[int]*dom{}}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// Hypervisor returns "sim".
func (d *Driver) Hypervisor() string { return inventory.HypervisorSim }

// Create defines a domain and holds its resources.
func (d *Driver) Create(ctx context.Context, spec domain.Spec) (domain.Info, error) {
	d.mu.Lock()
	spec, err := d.cfg.Ledger.Admit(spec)
	if err != nil {
		d.mu.Unlock()
		return domain.Info{}, err
	}
	x := &dom{info: domain.Info{ID: spec.ID, Name: spec.Name(), State: domain.StateDefined, Spec: spec},
		profile: newProfile(spec)}
	d.doms[spec.ID] = x
	info := x.info
	d.mu.Unlock()
	d.log.Info("domain created", "domain", info.Name, "vcpus", spec.VCPUs, "memory_mib", spec.Memory/domain.MiB)
	d.notify(domain.Event{ID: info.ID, State: info.State, At: d.now()})
	return info, nil
}

// Do applies a life-cycle operation.
func (d *Driver) Do(ctx context.Context, id int, op domain.Op) (domain.Info, error) {
	d.mu.Lock()
	x, ok := d.doms[id]
	if !ok {
		d.mu.Unlock()
		return domain.Info{}, fmt.Errorf("%w: %s", domain.ErrNotFound, domain.Name(id))
	}
	next, ok := op.Allowed(x.info.State)
	if !ok {
		st := x.info.State
		d.mu.Unlock()
		return domain.Info{}, fmt.Errorf("%w: cannot %s %s while %s", domain.ErrState, op, domain.Name(id), st)
	}
	now := d.now()
	if op == domain.OpUndefine {
		delete(d.doms, id)
		d.mu.Unlock()
		d.cfg.Ledger.Release(id)
		d.log.Info("domain undefined", "domain", domain.Name(id))
		return x.info, nil
	}
	d.setState(x, next, now, "")
	switch op {
	case domain.OpStart:
		x.info.Started = now
		d.writeConsole(x, fmt.Sprintf("[    0.000000] sim guest %s: %d vCPUs, %d MiB\n%s: up\n",
			x.info.Name, x.info.Spec.VCPUs, x.info.Spec.Memory/domain.MiB, x.info.Name))
	case domain.OpReboot:
		x.info.Started = now
		d.writeConsole(x, fmt.Sprintf("%s: rebooting\n%s: up\n", x.info.Name, x.info.Name))
	case domain.OpShutdown:
		d.writeConsole(x, fmt.Sprintf("%s: power down\n", x.info.Name))
	}
	info := x.info
	d.mu.Unlock()
	d.notify(domain.Event{ID: id, State: info.State, At: now})
	return info, nil
}

// setState moves x to state s at now, keeping the running-time account.
func (d *Driver) setState(x *dom, s domain.State, now time.Time, reason string) {
	if !x.runningSince.IsZero() {
		x.ran += now.Sub(x.runningSince)
		x.runningSince = time.Time{}
	}
	if s == domain.StateRunning {
		x.runningSince = now
	}
	x.info.State = s
	x.info.Reason = reason
}

// Crash marks a running or paused domain crashed, as if its guest died:
// fault injection for labs and tests.
func (d *Driver) Crash(id int, reason string) error {
	d.mu.Lock()
	x, ok := d.doms[id]
	if !ok || !x.info.State.Active() {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s is not running", domain.ErrState, domain.Name(id))
	}
	now := d.now()
	d.setState(x, domain.StateCrashed, now, reason)
	d.mu.Unlock()
	d.notify(domain.Event{ID: id, State: domain.StateCrashed, Reason: reason, At: now})
	return nil
}

// Info returns one domain.
func (d *Driver) Info(id int) (domain.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x, ok := d.doms[id]
	if !ok {
		return domain.Info{}, fmt.Errorf("%w: %s", domain.ErrNotFound, domain.Name(id))
	}
	return x.info, nil
}

// List returns every domain by id.
func (d *Driver) List() []domain.Info {
	d.mu.Lock()
	out := make([]domain.Info, 0, len(d.doms))
	for _, x := range d.doms {
		out = append(out, x.info)
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// PinVCPU pins a vCPU to a host CPU.
func (d *Driver) PinVCPU(ctx context.Context, id, vcpu, pcpu int) error {
	return d.cfg.Ledger.Pin(id, vcpu, pcpu)
}

// VCPUs reports each vCPU: where it runs (the first CPU of its affinity,
// rotated by vCPU so unpinned vCPUs spread), its state and its CPU time.
func (d *Driver) VCPUs(ctx context.Context, id int) ([]domain.VCPUInfo, error) {
	p, err := d.cfg.Ledger.Placement(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	x, ok := d.doms[id]
	if !ok {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", domain.ErrNotFound, domain.Name(id))
	}
	run := x.runTime(d.now())
	st := x.info.State
	prof := x.profile
	d.mu.Unlock()
	out := make([]domain.VCPUInfo, p.VCPUs)
	for v := range out {
		aff := p.Affinity[v]
		cpu := -1
		if st.Active() && len(aff) > 0 {
			cpu = aff[(v+id)%len(aff)]
		}
		out[v] = domain.VCPUInfo{VCPU: v, CPU: cpu, State: st, Affinity: aff,
			Time: time.Duration(float64(run) * prof.util[v])}
	}
	return out, nil
}

// NUMA reports the domain's memory per host node and vnode layout.
func (d *Driver) NUMA(ctx context.Context, id int) (domain.NUMAInfo, error) {
	return d.cfg.Ledger.NUMA(id)
}

// Console returns the domain's console output.
func (d *Driver) Console(ctx context.Context, id int) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x, ok := d.doms[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", domain.ErrNotFound, domain.Name(id))
	}
	return slices.Clone(x.console), nil
}

func (d *Driver) writeConsole(x *dom, s string) {
	x.console = append(x.console, s...)
	if over := len(x.console) - d.cfg.ConsoleSize; over > 0 {
		x.console = append(x.console[:0], x.console[over:]...)
	}
}

// Stats samples the domain's counters at the clock's now. Every counter is
// a function of the domain's accumulated running time, so samples are
// consistent with each other and never go backwards.
func (d *Driver) Stats(ctx context.Context, id int) (domain.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x, ok := d.doms[id]
	if !ok {
		return domain.Stats{}, fmt.Errorf("%w: %s", domain.ErrNotFound, domain.Name(id))
	}
	now := d.now()
	run := x.runTime(now)
	secs := run.Seconds()
	s := x.info.Spec
	st := domain.Stats{ID: id, At: now, State: x.info.State, Memory: domain.MemoryStat{Max: s.Memory}}
	if x.info.State.Active() {
		st.Memory.Current = uint64(float64(s.Memory)*x.profile.memUsed) / domain.MiB * domain.MiB
	}
	for v := range s.VCPUs {
		st.VCPUs = append(st.VCPUs, domain.VCPUStat{VCPU: v, Time: time.Duration(float64(run) * x.profile.util[v])})
	}
	for i := range s.NICs {
		rxB, txB := uint64(secs*x.profile.rxBps), uint64(secs*x.profile.txBps)
		st.VIFs = append(st.VIFs, domain.VIFStat{ID: i,
			RxBytes: rxB, RxPackets: rxB / 800, RxDrops: rxB / 800 / 100000,
			TxBytes: txB, TxPackets: txB / 600, TxDrops: txB / 600 / 200000})
	}
	for i, disk := range s.Disks {
		r, w := uint64(secs*x.profile.readIOPS), uint64(secs*x.profile.writeIOP)
		if disk.ReadOnly {
			w = 0
		}
		var outstanding uint64
		if x.info.State == domain.StateRunning {
			outstanding = uint64(x.profile.writeIOP/50) + 1
		}
		st.VBDs = append(st.VBDs, domain.VBDStat{ID: i, Backing: disk.Backing(), Device: domain.DeviceName(i),
			Outstanding: outstanding, ReadReqs: r, WriteReqs: w, ReadSectors: r * 16, WriteSectors: w * 8})
	}
	return st, nil
}

func (x *dom) runTime(now time.Time) time.Duration {
	r := x.ran
	if !x.runningSince.IsZero() && now.After(x.runningSince) {
		r += now.Sub(x.runningSince)
	}
	return r
}

// newProfile draws a domain's load from its id (FNV-1a as a small PRNG
// seed), so a lab shows the same picture every run.
func newProfile(s domain.Spec) profile {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d", s.ID)
	seed := h.Sum64()
	next := func() float64 { // xorshift64*, in [0,1)
		seed ^= seed >> 12
		seed ^= seed << 25
		seed ^= seed >> 27
		return float64((seed*2685821657736338717)>>11) / (1 << 53)
	}
	p := profile{util: make([]float64, s.VCPUs)}
	base := 0.05 + 0.5*next()
	for i := range p.util {
		p.util[i] = min(1, base*(0.7+0.6*next()))
	}
	p.memUsed = 0.4 + 0.5*next()
	p.rxBps = 1e3 + 2e6*next()
	p.txBps = 1e3 + 1e6*next()
	p.readIOPS = 1 + 200*next()
	p.writeIOP = 1 + 100*next()
	return p
}

// AddWild makes a guest appear that the node did not start (for labs: the
// seed's wild VMs).
func (d *Driver) AddWild(w domain.Wild) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.wild = append(d.wild, w)
}

// Wild lists the guests added with AddWild and not imported.
func (d *Driver) Wild(ctx context.Context) ([]domain.Wild, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.wild), nil
}

// Import adopts a wild guest as domain id, running, with the vCPUs and
// memory it was found with (1 vCPU and 256 MiB when unknown).
func (d *Driver) Import(ctx context.Context, w domain.Wild, id int) (domain.Info, error) {
	d.mu.Lock()
	k := slices.IndexFunc(d.wild, func(x domain.Wild) bool { return x.PID == w.PID })
	d.mu.Unlock()
	if k < 0 {
		return domain.Info{}, fmt.Errorf("%w: no wild guest with pid %d", domain.ErrNotFound, w.PID)
	}
	spec := domain.Spec{ID: id, VCPUs: max(1, w.VCPUs), Memory: max(256*domain.MiB, w.Memory)}
	if _, err := d.Create(ctx, spec); err != nil {
		return domain.Info{}, err
	}
	d.mu.Lock()
	d.wild = slices.DeleteFunc(d.wild, func(x domain.Wild) bool { return x.PID == w.PID })
	x := d.doms[id]
	x.info.Imported = true
	x.info.PID = w.PID
	d.mu.Unlock()
	return d.Do(ctx, id, domain.OpStart)
}

func (d *Driver) notify(e domain.Event) {
	if d.cfg.Notify != nil {
		d.cfg.Notify(e)
	}
}
