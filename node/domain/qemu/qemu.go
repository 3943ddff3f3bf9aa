package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/qmp"
)

// Config configures a Driver.
type Config struct {
	// Ledger holds the node's resources (required).
	Ledger *domain.Ledger
	// Binary is the QEMU system emulator.
	Binary string
	// RunDir holds one directory per domain (dnN) with its QMP socket,
	// console log and QEMU's own log.
	RunDir string
	// Accel is "tcg", "kvm" or "auto" (see DetectAccel).
	Accel string
	// ProbeKernel and ProbeInitrd boot a guest that prints ProbeMarker, to
	// prove KVM works when Accel is "auto"; without them auto means TCG.
	ProbeKernel, ProbeInitrd, ProbeMarker string
	// Notify receives every state change, outside the driver's locks.
	Notify func(domain.Event)
	// ConsoleSize bounds what Console returns (the log's tail).
	ConsoleSize int
	// StartTimeout bounds how long QEMU may take to open its QMP socket.
	StartTimeout time.Duration
	// StopTimeout bounds how long Destroy waits after quit before SIGKILL.
	StopTimeout time.Duration
	// BindNUMA binds each vnode's memory to its host NUMA node. Leave it
	// off only when the ledger's inventory is not this machine's.
	BindNUMA bool
	// KillWithParent makes the kernel kill a guest when the process that
	// started it dies (PR_SET_PDEATHSIG): for tests and labs, whose
	// guests must not outlive them. A node's guests survive its daemon.
	KillWithParent bool
	Now            func() time.Time
	Logger         *slog.Logger
}

// DefaultConfig returns a TCG driver under /run/mvnode/qemu; Ledger must
// still be set.
func DefaultConfig() Config {
	return Config{Binary: "qemu-system-x86_64", RunDir: "/run/mvnode/qemu", Accel: AccelTCG,
		ConsoleSize: 64 << 10, StartTimeout: 30 * time.Second, StopTimeout: 5 * time.Second, BindNUMA: true}
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.Ledger == nil:
		return errors.New("qemu: Config.Ledger is nil")
	case c.Binary == "" || c.RunDir == "":
		return errors.New("qemu: Config.Binary and Config.RunDir must be set")
	case c.Accel != AccelTCG && c.Accel != AccelKVM && c.Accel != AccelAuto:
		return fmt.Errorf("qemu: Config.Accel %q: want tcg, kvm or auto", c.Accel)
	case c.ConsoleSize < 256:
		return fmt.Errorf("qemu: Config.ConsoleSize %d: want at least 256", c.ConsoleSize)
	case c.StartTimeout <= 0 || c.StopTimeout <= 0:
		return errors.New("qemu: Config.StartTimeout and StopTimeout must be positive")
	}
	return nil
}

// Driver runs domains as qemu-system-x86_64 processes.
type Driver struct {
	cfg   Config
	accel string
	now   func() time.Time
	log   *slog.Logger

	mu   sync.Mutex
	doms map[int]*dom
	wg   sync.WaitGroup // exit watchers
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
	op   sync.Mutex // serialises life-cycle operations on this domain
	info domain.Info
	p    paths
	run  *run // the live process, nil when none
}

// run is one QEMU process of a domain.
type run struct {
	pid     int
	qmp     *qmp.Client
	threads []int         // vCPU thread ids by vCPU index
	done    chan struct{} // closed once the process is gone and the state updated
	started bool          // the guest reached running
	// stopping: we asked QEMU to go (destroy); guestDown: the guest
	// powered off (SHUTDOWN event). Either makes an exit a shutoff.
	stopping, guestDown bool
	cmd                 *exec.Cmd // nil for an imported process
}

// New returns a driver, settling "auto" acceleration first (see
// DetectAccel).
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, accel: cfg.Accel, now: cfg.Now, log: cfg.Logger, doms: map[int]*dom{}}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.accel == AccelAuto {
		d.accel = DetectAccel(ctx, cfg.Binary, cfg.ProbeKernel, cfg.ProbeInitrd, cfg.ProbeMarker)
		d.log.Info("qemu acceleration", "accel", d.accel)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	return d, nil
}

// Hypervisor returns "qemu-tcg" or "qemu-kvm".
func (d *Driver) Hypervisor() string {
	if d.accel == AccelKVM {
		return inventory.HypervisorQEMUKVM
	}
	return inventory.HypervisorQEMUTCG
}

func (d *Driver) paths(id int) paths {
	dir := filepath.Join(d.cfg.RunDir, domain.Name(id))
	return paths{Dir: dir, QMP: filepath.Join(dir, "qmp.sock"), Console: filepath.Join(dir, "console.log"),
		Stderr: filepath.Join(dir, "qemu.log")}
}

// Create defines a domain and reserves its resources. No process starts.
func (d *Driver) Create(ctx context.Context, spec domain.Spec) (domain.Info, error) {
	d.mu.Lock()
	spec, err := d.cfg.Ledger.Admit(spec)
	if err != nil {
		d.mu.Unlock()
		return domain.Info{}, err
	}
	x := &dom{info: domain.Info{ID: spec.ID, Name: spec.Name(), State: domain.StateDefined, Spec: spec}, p: d.paths(spec.ID)}
	d.doms[spec.ID] = x
	info := x.info
	d.mu.Unlock()
	d.notify(domain.Event{ID: info.ID, State: info.State, At: d.now()})
	return info, nil
}

func (d *Driver) get(id int) (*dom, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	x, ok := d.doms[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", domain.ErrNotFound, domain.Name(id))
	}
	return x, nil
}

// Do applies a life-cycle operation. Shutdown waits for the guest to power
// off until ctx ends (the domain stays running if it does not).
func (d *Driver) Do(ctx context.Context, id int, op domain.Op) (domain.Info, error) {
	x, err := d.get(id)
	if err != nil {
		return domain.Info{}, err
	}
	x.op.Lock()
	defer x.op.Unlock()
	d.mu.Lock()
	state, r := x.info.State, x.run
	d.mu.Unlock()
	if _, ok := op.Allowed(state); !ok {
		return domain.Info{}, fmt.Errorf("%w: cannot %s %s while %s", domain.ErrState, op, domain.Name(id), state)
	}
	if r == nil && op != domain.OpStart && op != domain.OpUndefine {
		return domain.Info{}, fmt.Errorf("%w: %s has no running process", domain.ErrState, domain.Name(id))
	}
	switch op {
	case domain.OpStart:
		err = d.start(ctx, x)
	case domain.OpShutdown:
		err = d.shutdown(ctx, x, r)
	case domain.OpDestroy:
		err = d.destroy(ctx, r)
	case domain.OpReboot:
		if err = r.qmp.SystemReset(ctx); err == nil {
			d.setState(x, domain.StateRunning, "")
		}
	case domain.OpPause:
		if err = r.qmp.Stop(ctx); err == nil {
			d.setState(x, domain.StatePaused, "")
		}
	case domain.OpResume:
		if err = r.qmp.Cont(ctx); err == nil {
			d.setState(x, domain.StateRunning, "")
		}
	case domain.OpUndefine:
		d.mu.Lock()
		delete(d.doms, id)
		d.mu.Unlock()
		d.cfg.Ledger.Release(id)
		os.RemoveAll(x.p.Dir)
		return x.info, nil
	}
	if err != nil {
		return domain.Info{}, fmt.Errorf("qemu: %s %s: %w", op, domain.Name(id), err)
	}
	return d.Info(id)
}

// setState records a state and notifies.
func (d *Driver) setState(x *dom, s domain.State, reason string) {
	d.mu.Lock()
	x.info.State, x.info.Reason = s, reason
	e := domain.Event{ID: x.info.ID, State: s, Reason: reason, At: d.now()}
	d.mu.Unlock()
	d.notify(e)
}

// start launches QEMU paused, connects QMP, pins the vCPU threads as the
// ledger says and lets the guest run.
func (d *Driver) start(ctx context.Context, x *dom) error {
	spec := x.info.Spec
	if err := os.MkdirAll(x.p.Dir, 0o700); err != nil {
		return err
	}
	os.Remove(x.p.QMP)
	logf, err := os.Create(x.p.Stderr)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.cfg.Binary, commandLine(spec, d.accel, x.p, d.cfg.BindNUMA)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a signal to the node's group does not reach
	// the guest.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if d.cfg.KillWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	r := &run{pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	d.mu.Lock()
	x.run = r
	d.mu.Unlock()
	d.wg.Add(1)
	go d.watch(x, r, cmd.Wait)

	fail := func(err error) error {
		cmd.Process.Kill()
		<-r.done
		return fmt.Errorf("%w (%s)", err, tail(x.p.Stderr, 512))
	}
	client, err := d.dial(ctx, x, r)
	if err != nil {
		return fail(err)
	}
	cpus, err := client.QueryCPUs(ctx)
	if err != nil {
		return fail(err)
	}
	threads := make([]int, spec.VCPUs)
	for _, c := range cpus {
		if c.Index >= 0 && c.Index < len(threads) {
			threads[c.Index] = c.ThreadID
		}
	}
	d.mu.Lock()
	r.threads = threads
	d.mu.Unlock()
	if p, err := d.cfg.Ledger.Placement(spec.ID); err == nil {
		for v, aff := range p.Affinity {
			if err := setAffinity(threads[v], aff); err != nil {
				return fail(fmt.Errorf("pinning vCPU %d (thread %d) to %v: %w", v, threads[v], aff, err))
			}
		}
	}
	if err := client.Cont(ctx); err != nil {
		return fail(err)
	}
	d.mu.Lock()
	r.started = true
	x.info.PID, x.info.Started = r.pid, d.now()
	d.mu.Unlock()
	d.setState(x, domain.StateRunning, "")
	d.log.Info("domain started", "domain", spec.Name(), "pid", r.pid, "accel", d.accel)
	return nil
}

// dial waits for QEMU's QMP socket, bounded by StartTimeout and ctx.
func (d *Driver) dial(ctx context.Context, x *dom, r *run) (*qmp.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	onEvent := func(e qmp.Event) {
		if e.Name == "SHUTDOWN" {
			d.mu.Lock()
			r.guestDown = true
			d.mu.Unlock()
		}
	}
	for {
		c, err := qmp.Dial(ctx, x.p.QMP, onEvent)
		if err == nil {
			d.mu.Lock()
			r.qmp = c
			gone := r.done
			d.mu.Unlock()
			select {
			case <-gone: // exited while we connected; watch did not see c
				c.Close()
				return nil, errors.New("qemu exited during start")
			default:
			}
			return c, nil
		}
		select {
		case <-r.done:
			return nil, errors.New("qemu exited during start")
		case <-ctx.Done():
			return nil, fmt.Errorf("no QMP socket at %s: %w", x.p.QMP, ctx.Err())
		case <-time.After(20 * time.Millisecond): // polling a real process's socket
		}
	}
}

// watch waits for the process to end and records why: shutoff when the
// guest powered off or we stopped it, crashed otherwise. It reports at
// once, through Notify.
func (d *Driver) watch(x *dom, r *run, wait func() error) {
	defer d.wg.Done()
	err := wait()
	d.mu.Lock()
	if r.qmp != nil {
		go r.qmp.Close()
	}
	var ev *domain.Event
	if x.run == r {
		x.run = nil
		if r.started {
			state, reason := domain.StateShutoff, ""
			if !r.stopping && !r.guestDown {
				state = domain.StateCrashed
				reason = "qemu exited unasked"
				if err != nil {
					reason += ": " + err.Error()
				}
			}
			x.info.State, x.info.Reason, x.info.PID = state, reason, 0
			ev = &domain.Event{ID: x.info.ID, State: state, Reason: reason, At: d.now()}
		}
	}
	close(r.done)
	d.mu.Unlock()
	if ev != nil {
		d.log.Info("domain stopped", "domain", x.info.Name, "state", ev.State, "reason", ev.Reason)
		d.notify(*ev)
	}
}

// shutdown presses the power button and waits for the guest to power off,
// pressing again every 2 s: a guest that was not yet listening misses a
// press, and a second one does no harm.
func (d *Driver) shutdown(ctx context.Context, x *dom, r *run) error {
	if err := r.qmp.SystemPowerdown(ctx); err != nil {
		return err
	}
	again := time.NewTicker(2 * time.Second)
	defer again.Stop()
	for {
		select {
		case <-r.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("guest did not power off: %w", ctx.Err())
		case <-again.C:
			r.qmp.SystemPowerdown(ctx) // the process may be going away: errors mean nothing here
		}
	}
}

// destroy makes QEMU quit, and kills it if it does not within StopTimeout.
func (d *Driver) destroy(ctx context.Context, r *run) error {
	d.mu.Lock()
	r.stopping = true
	d.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, d.cfg.StopTimeout)
	defer cancel()
	if err := r.qmp.Quit(qctx); err != nil {
		d.log.Warn("qmp quit failed; killing", "pid", r.pid, "err", err)
	}
	select {
	case <-r.done:
		return nil
	case <-qctx.Done():
	}
	syscall.Kill(r.pid, syscall.SIGKILL)
	select {
	case <-r.done:
		return nil
	case <-time.After(d.cfg.StopTimeout):
		return fmt.Errorf("qemu pid %d survived SIGKILL", r.pid)
	}
}

// Info returns one domain.
func (d *Driver) Info(id int) (domain.Info, error) {
	x, err := d.get(id)
	if err != nil {
		return domain.Info{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
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

// live returns the domain's process, or ErrState when it has none.
func (d *Driver) live(id int) (*dom, *run, error) {
	x, err := d.get(id)
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if x.run == nil || !x.run.started {
		return x, nil, fmt.Errorf("%w: %s is %s", domain.ErrState, domain.Name(id), x.info.State)
	}
	return x, x.run, nil
}

// PinVCPU pins a vCPU's thread to a host CPU (and records it, so it holds
// across restarts).
func (d *Driver) PinVCPU(ctx context.Context, id, vcpu, pcpu int) error {
	if err := d.cfg.Ledger.Pin(id, vcpu, pcpu); err != nil {
		return err
	}
	_, r, err := d.live(id)
	if err != nil {
		return nil // not running: applied at the next start
	}
	return setAffinity(r.threads[vcpu], []int{pcpu})
}

// VCPUs reports each vCPU's thread, host CPU, CPU time and affinity.
func (d *Driver) VCPUs(ctx context.Context, id int) ([]domain.VCPUInfo, error) {
	p, err := d.cfg.Ledger.Placement(id)
	if err != nil {
		return nil, err
	}
	x, r, err := d.live(id)
	if x == nil {
		return nil, err
	}
	d.mu.Lock()
	st := x.info.State
	d.mu.Unlock()
	out := make([]domain.VCPUInfo, p.VCPUs)
	for v := range out {
		out[v] = domain.VCPUInfo{VCPU: v, CPU: -1, State: st, Affinity: p.Affinity[v]}
		if r == nil {
			continue
		}
		tid := r.threads[v]
		out[v].ThreadID = tid
		if ts, err := readThreadStat(r.pid, tid); err == nil {
			out[v].CPU, out[v].Time = ts.cpu, ts.time
		}
		if aff, err := getAffinity(tid); err == nil {
			out[v].Affinity = aff
		}
	}
	return out, nil
}

// NUMA reports the domain's memory per host node and its vnode layout, as
// given to QEMU with -numa.
func (d *Driver) NUMA(ctx context.Context, id int) (domain.NUMAInfo, error) {
	return d.cfg.Ledger.NUMA(id)
}

// Console returns the tail of the serial console (at most ConsoleSize).
func (d *Driver) Console(ctx context.Context, id int) ([]byte, error) {
	x, err := d.get(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(x.p.Console)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > int64(d.cfg.ConsoleSize) {
		f.Seek(st.Size()-int64(d.cfg.ConsoleSize), io.SeekStart)
	}
	return io.ReadAll(f)
}

// Close destroys every domain whose process this driver started and waits
// for them; imported processes are left running. Domains stay defined.
func (d *Driver) Close() error {
	d.mu.Lock()
	var runs []*run
	for _, x := range d.doms {
		if x.run != nil {
			x.run.stopping = true
			runs = append(runs, x.run)
		}
	}
	d.mu.Unlock()
	for _, r := range runs {
		if r.cmd != nil {
			syscall.Kill(r.pid, syscall.SIGKILL)
		} else if r.qmp != nil {
			r.qmp.Close()
		}
	}
	for _, r := range runs {
		if r.cmd != nil {
			<-r.done
		}
	}
	return nil
}

// Detach lets go of every guest without stopping it: QMP connections
// close (QEMU serves one client at a time, so a later driver can take
// over with Recover). A daemon that restarts detaches; it does not Close.
func (d *Driver) Detach() {
	d.mu.Lock()
	var clients []*qmp.Client
	for _, x := range d.doms {
		if x.run != nil && x.run.qmp != nil {
			clients = append(clients, x.run.qmp)
		}
	}
	d.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
}

func (d *Driver) notify(e domain.Event) {
	if d.cfg.Notify != nil {
		d.cfg.Notify(e)
	}
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "no qemu log"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	if len(b) == 0 {
		return "qemu log empty"
	}
	return "qemu: " + string(b)
}

// setAffinity restricts a thread to cpus.
func setAffinity(tid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return unix.SchedSetaffinity(tid, &set)
}

func getAffinity(tid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		return nil, err
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}
