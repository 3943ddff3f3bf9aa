package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/qmp"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc (100 on Linux).
const clockTicks = 100

type threadStat struct {
	cpu  int
	time time.Duration
}

// readThreadStat reads a thread's CPU time and last CPU from
// /proc/PID/task/TID/stat.
func readThreadStat(pid, tid int) (threadStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return threadStat{}, err
	}
	// Fields after the command (which may hold spaces) start after ") ".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return threadStat{}, fmt.Errorf("qemu: odd stat for thread %d", tid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, processor 39.
	if len(f) < 37 {
		return threadStat{}, fmt.Errorf("qemu: short stat for thread %d", tid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	cpu, _ := strconv.Atoi(f[36])
	return threadStat{cpu: cpu, time: time.Duration(ut+st) * time.Second / clockTicks}, nil
}

// Stats samples a running domain: vCPU times from its threads, memory
// from the process, block counters from QMP and NIC counters from its taps
// (the guest's receive is the tap's transmit).
func (d *Driver) Stats(ctx context.Context, id int) (domain.Stats, error) {
	x, r, err := d.live(id)
	if x == nil {
		return domain.Stats{}, err
	}
	d.mu.Lock()
	spec, state := x.info.Spec, x.info.State
	d.mu.Unlock()
	st := domain.Stats{ID: id, At: d.now(), State: state, Memory: domain.MemoryStat{Max: spec.Memory}}
	if r == nil {
		return st, nil
	}
	for v, tid := range r.threads {
		ts, _ := readThreadStat(r.pid, tid)
		st.VCPUs = append(st.VCPUs, domain.VCPUStat{VCPU: v, Time: ts.time})
	}
	st.Memory.Current = min(spec.Memory, rss(r.pid))
	if bs, err := r.qmp.QueryBlockStats(ctx); err == nil {
		for i, disk := range spec.Disks {
			v := domain.VBDStat{ID: i, Backing: disk.Backing(), Device: domain.DeviceName(i)}
			for _, b := range bs {
				if b.Device == fmt.Sprintf("disk%d", i) {
					v.ReadReqs, v.WriteReqs = b.Stats.RdOperations, b.Stats.WrOperations
					v.ReadSectors, v.WriteSectors = b.Stats.RdBytes/512, b.Stats.WrBytes/512
				}
			}
			st.VBDs = append(st.VBDs, v)
		}
	}
	for i, n := range spec.NICs {
		tap := n.Tap
		if tap == "" {
			tap = fmt.Sprintf("%st%d", spec.Name(), i)
		}
		c := func(name string) uint64 {
			b, _ := os.ReadFile(filepath.Join("/sys/class/net", tap, "statistics", name))
			v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return v
		}
		st.VIFs = append(st.VIFs, domain.VIFStat{ID: i,
			RxBytes: c("tx_bytes"), RxPackets: c("tx_packets"), RxErrors: c("tx_errors"), RxDrops: c("tx_dropped"),
			TxBytes: c("rx_bytes"), TxPackets: c("rx_packets"), TxErrors: c("rx_errors"), TxDrops: c("rx_dropped")})
	}
	return st, nil
}

// rss returns a process's resident memory in bytes.
func rss(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// Wild lists QEMU processes on the host that this driver did not start
// or import: guests started by hand, or (Launched) by an earlier run of
// this node.
func (d *Driver) Wild(ctx context.Context) ([]domain.Wild, error) {
	d.mu.Lock()
	ours := map[int]bool{}
	for _, x := range d.doms {
		if x.run != nil {
			ours[x.run.pid] = true
		}
	}
	d.mu.Unlock()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []domain.Wild
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ours[pid] {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !strings.HasPrefix(filepath.Base(exe), "qemu-system-") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		w := ParseCmdline(pid, strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
		w.Launched = w.QMP != "" && strings.HasPrefix(w.QMP, filepath.Clean(d.cfg.RunDir)+"/")
		out = append(out, w)
	}
	return out, nil
}

// Recover imports the guests this node launched before (their QMP socket
// is in RunDir/dnN/) under their own ids: what a restarted daemon does
// before anything else. It returns the recovered domains; the first error
// stops it.
func (d *Driver) Recover(ctx context.Context) ([]domain.Info, error) {
	found, err := d.Wild(ctx)
	if err != nil {
		return nil, err
	}
	var out []domain.Info
	for _, w := range found {
		if !w.Launched {
			continue
		}
		id, err := domain.ParseName(filepath.Base(filepath.Dir(w.QMP)))
		if err != nil {
			continue
		}
		info, err := d.Import(ctx, w, id)
		if err != nil {
			return out, err
		}
		out = append(out, info)
	}
	return out, nil
}

// ParseCmdline reads what a QEMU command line says about its guest: the
// name (-name), the vCPUs (-smp), the memory (-m) and a QMP unix socket.
func ParseCmdline(pid int, args []string) domain.Wild {
	w := domain.Wild{PID: pid, Cmdline: args}
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch strings.TrimPrefix(args[i], "-") {
		case "-name", "name":
			w.Name = optValue(v, "guest")
		case "-smp", "smp":
			w.VCPUs, _ = strconv.Atoi(optValue(v, "cpus"))
		case "-m", "m":
			w.Memory = parseSize(optValue(v, "size"))
		case "-qmp", "qmp":
			if rest, ok := strings.CutPrefix(v, "unix:"); ok {
				w.QMP, _, _ = strings.Cut(rest, ",")
			}
		}
	}
	return w
}

// optValue returns key's value in a QEMU option string "a,key=v,…", or
// the leading implied value ("2" in "2,sockets=2").
func optValue(s, key string) string {
	parts := strings.Split(s, ",")
	for _, p := range parts {
		if k, v, ok := strings.Cut(p, "="); ok && k == key {
			return v
		}
	}
	if !strings.Contains(parts[0], "=") {
		return parts[0]
	}
	return ""
}

// parseSize reads a -m size: a number of MiB, or with a suffix K, M, G, T.
func parseSize(s string) uint64 {
	mult := uint64(domain.MiB)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1<<10, s[:n-1]
		case 'm', 'M':
			s = s[:n-1]
		case 'g', 'G':
			mult, s = 1<<30, s[:n-1]
		case 't', 'T':
			mult, s = 1<<40, s[:n-1]
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return v * mult
}

// Import adopts a wild QEMU as domain id: it needs the process's QMP
// socket. The domain's spec comes from the command line and QMP (vCPUs,
// memory); its resources are booked in the ledger; its exit is watched
// through a pidfd.
func (d *Driver) Import(ctx context.Context, w domain.Wild, id int) (domain.Info, error) {
	if w.QMP == "" {
		return domain.Info{}, fmt.Errorf("%w: wild pid %d has no QMP unix socket on its command line", domain.ErrUnsupported, w.PID)
	}
	pidfd, err := unix.PidfdOpen(w.PID, 0)
	if err != nil {
		return domain.Info{}, fmt.Errorf("qemu: import pid %d: %w", w.PID, err)
	}
	r := &run{pid: w.PID, done: make(chan struct{})}
	x := &dom{p: d.paths(id)}
	onEvent := func(e qmp.Event) {
		if e.Name == "SHUTDOWN" {
			d.mu.Lock()
			r.guestDown = true
			d.mu.Unlock()
		}
	}
	// QEMU serves one QMP client at a time: while another holds the
	// socket the greeting never comes, so bound the wait.
	dctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	c, err := qmp.Dial(dctx, w.QMP, onEvent)
	if err != nil {
		unix.Close(pidfd)
		return domain.Info{}, fmt.Errorf("qemu: import pid %d: %w", w.PID, err)
	}
	r.qmp = c
	cpus, err := c.QueryCPUs(ctx)
	if err != nil {
		c.Close()
		unix.Close(pidfd)
		return domain.Info{}, fmt.Errorf("qemu: import pid %d: %w", w.PID, err)
	}
	status, _ := c.QueryStatus(ctx)
	r.threads = make([]int, len(cpus))
	for _, cpu := range cpus {
		if cpu.Index >= 0 && cpu.Index < len(cpus) {
			r.threads[cpu.Index] = cpu.ThreadID
		}
	}
	mem := w.Memory
	if mem == 0 {
		mem = 128 * domain.MiB // QEMU's default
	}
	d.mu.Lock()
	spec, err := d.cfg.Ledger.Admit(domain.Spec{ID: id, VCPUs: len(cpus), Memory: mem})
	if err != nil {
		d.mu.Unlock()
		c.Close()
		unix.Close(pidfd)
		return domain.Info{}, err
	}
	state := domain.StateRunning
	if !status.Running {
		state = domain.StatePaused
	}
	r.started = true
	x.info = domain.Info{ID: id, Name: spec.Name(), State: state, Spec: spec, PID: w.PID, Started: d.now(), Imported: true}
	x.run = r
	d.doms[id] = x
	d.mu.Unlock()
	d.wg.Add(1)
	go d.watch(x, r, func() error { return waitPidfd(pidfd) })
	d.notify(domain.Event{ID: id, State: state, Reason: fmt.Sprintf("imported wild pid %d", w.PID), At: d.now()})
	return d.Info(id)
}

// waitPidfd blocks until the process behind pidfd exits, then closes it.
func waitPidfd(pidfd int) error {
	defer unix.Close(pidfd)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}
