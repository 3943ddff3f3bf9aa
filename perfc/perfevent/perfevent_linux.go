package perfevent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mvstack/mvstack/perfc"
)

// DefaultEvents returns the events a domain is counted with: six PMU
// hardware events and four kernel software events.
func DefaultEvents() []Event {
	hw := func(name, unit, desc string, cfg uint64) Event {
		return Event{Name: "perf.hw." + name, Unit: unit, Desc: desc, Type: unix.PERF_TYPE_HARDWARE, Config: cfg}
	}
	sw := func(name, unit, desc string, cfg uint64) Event {
		return Event{Name: "perf.sw." + name, Unit: unit, Desc: desc, Type: unix.PERF_TYPE_SOFTWARE, Config: cfg}
	}
	return []Event{
		hw("cycles", "cycles", "CPU cycles (PMU)", unix.PERF_COUNT_HW_CPU_CYCLES),
		hw("instructions", "instructions", "Instructions retired (PMU)", unix.PERF_COUNT_HW_INSTRUCTIONS),
		hw("cache_references", "references", "Cache references, usually last-level (PMU)", unix.PERF_COUNT_HW_CACHE_REFERENCES),
		hw("cache_misses", "misses", "Cache misses, usually last-level (PMU)", unix.PERF_COUNT_HW_CACHE_MISSES),
		{Name: "perf.hw.llc_misses", Unit: "misses", Desc: "Last-level cache read misses (PMU)", Type: unix.PERF_TYPE_HW_CACHE,
			Config: unix.PERF_COUNT_HW_CACHE_LL | unix.PERF_COUNT_HW_CACHE_OP_READ<<8 | unix.PERF_COUNT_HW_CACHE_RESULT_MISS<<16},
		hw("branch_misses", "misses", "Mispredicted branches (PMU)", unix.PERF_COUNT_HW_BRANCH_MISSES),
		sw("context_switches", "switches", "Context switches of the domain's threads", unix.PERF_COUNT_SW_CONTEXT_SWITCHES),
		sw("page_faults", "faults", "Page faults of the domain's threads", unix.PERF_COUNT_SW_PAGE_FAULTS),
		sw("cpu_migrations", "migrations", "Moves of the domain's threads between CPUs", unix.PERF_COUNT_SW_CPU_MIGRATIONS),
		sw("task_clock", "ns", "CPU time of the domain's threads", unix.PERF_COUNT_SW_TASK_CLOCK),
	}
}

// Paranoid returns /proc/sys/kernel/perf_event_paranoid: -1 allows
// everything, 2 (and above) lets an unprivileged process count only its own
// processes in user space; root (CAP_PERFMON) is not limited.
func Paranoid() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	if err != nil {
		return 0, fmt.Errorf("perfevent: %w", err)
	}
	v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0, fmt.Errorf("perfevent: perf_event_paranoid %q: %w", b, err)
	}
	return v, nil
}

// Process counts events on all threads of one process. Its methods are
// safe for concurrent use.
type Process struct {
	pid    int
	start  string // the process's start time, to notice a reused pid
	events []Event
	log    *slog.Logger

	mu sync.Mutex
	// state per event, decided on the first thread: ok, unsupported, denied.
	state []perfc.State
	// excludeKernel per event: the kernel refused counting kernel mode.
	excludeKernel []bool
	threads       map[int][]int // tid → fd per event (-1: none)
	retired       []uint64      // final counts of threads that exited
	base          []uint64      // totals at the last reset
	gone          bool          // the process exited; nothing more to scan
	closed        bool
}

// Open starts counting cfg's events (nil: DefaultConfig()) on every thread
// of process pid. Events the host cannot count are not an error: they
// report StateUnsupported. It returns an error wrapping ErrNoProcess when
// there is no such process. Close releases the descriptors.
func Open(pid int, cfg *Config) (*Process, error) {
	c := DefaultConfig()
	if cfg != nil {
		c = *cfg
		if c.Events == nil {
			c.Events = DefaultEvents()
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start, err := startTime(pid)
	if err != nil {
		return nil, err
	}
	n := len(c.Events)
	p := &Process{
		pid: pid, start: start, events: slices.Clone(c.Events), log: log.With("pid", pid),
		state: make([]perfc.State, n), excludeKernel: make([]bool, n),
		threads: map[int][]int{}, retired: make([]uint64, n), base: make([]uint64, n),
	}
	for i := range p.state {
		p.state[i] = stateUndecided
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.scan(); err != nil {
		p.closeAll()
		return nil, err
	}
	return p, nil
}

// stateUndecided marks an event not yet tried on any thread.
const stateUndecided perfc.State = 255

// startTime returns field 22 of /proc/PID/stat, the process's start time
// in clock ticks since boot.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return "", fmt.Errorf("perfevent: pid %d: %w", pid, ErrNoProcess)
		}
		return "", fmt.Errorf("perfevent: pid %d: %w", pid, err)
	}
	// The command name in parentheses may hold spaces; fields start after
	// the last ')'. Field 3 (state) is the first one there, so field 22 is
	// the 20th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("perfevent: pid %d: odd /proc stat %q", pid, b)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("perfevent: pid %d: odd /proc stat %q", pid, b)
	}
	return string(f[19]), nil
}

// scan opens the events on threads not seen yet and retires the threads
// that are gone. p.mu is held.
func (p *Process) scan() error {
	if p.gone {
		return nil
	}
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(p.pid) + "/task")
	if err == nil {
		var st string
		st, err = startTime(p.pid)
		if err == nil && st != p.start {
			err = ErrNoProcess // the pid now names another process
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoProcess) || errors.Is(err, unix.ESRCH) {
			p.gone = true
			for tid := range p.threads {
				p.retire(tid)
			}
			if len(p.state) > 0 && p.state[0] == stateUndecided {
				return fmt.Errorf("perfevent: pid %d: %w", p.pid, ErrNoProcess)
			}
			return nil
		}
		return fmt.Errorf("perfevent: pid %d: listing threads: %w", p.pid, err)
	}
	alive := make(map[int]bool, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		alive[tid] = true
		if _, ok := p.threads[tid]; !ok {
			p.openThread(tid)
		}
	}
	for tid := range p.threads {
		if !alive[tid] {
			p.retire(tid)
		}
	}
	return nil
}

const readFormat = unix.PERF_FORMAT_TOTAL_TIME_ENABLED | unix.PERF_FORMAT_TOTAL_TIME_RUNNING

// openThread opens every countable event on thread tid. p.mu is held.
func (p *Process) openThread(tid int) {
	fds := make([]int, len(p.events))
	for i, ev := range p.events {
		fds[i] = -1
		switch p.state[i] {
		case perfc.StateUnsupported, perfc.StateDenied:
			continue
		}
		fd, err := p.open(i, tid, ev)
		switch {
		case err == nil:
			fds[i] = fd
			if p.state[i] == stateUndecided {
				p.state[i] = perfc.StateOK
			}
		case errors.Is(err, unix.ESRCH):
			// The thread exited between listing and opening.
		case p.state[i] != stateUndecided:
			p.log.Warn("perfevent: cannot open event on thread", "event", ev.Name, "tid", tid, "err", err)
		case unsupported(err):
			p.state[i] = perfc.StateUnsupported
			p.log.Debug("perfevent: event not supported by this host", "event", ev.Name, "err", err)
		case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
			p.state[i] = perfc.StateDenied
			p.log.Debug("perfevent: event denied (perf_event_paranoid, CAP_PERFMON)", "event", ev.Name, "err", err)
		default:
			p.log.Warn("perfevent: cannot open event", "event", ev.Name, "tid", tid, "err", err)
		}
	}
	p.threads[tid] = fds
}

func unsupported(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// open opens event i on tid, falling back to user space only when the
// kernel refuses counting kernel mode.
func (p *Process) open(i, tid int, ev Event) (int, error) {
	attr := unix.PerfEventAttr{
		Type:        ev.Type,
		Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Config:      ev.Config,
		Read_format: readFormat,
		Bits:        unix.PerfBitExcludeHv,
	}
	if p.excludeKernel[i] {
		attr.Bits |= unix.PerfBitExcludeKernel
	}
	fd, err := unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) && !p.excludeKernel[i] {
		attr.Bits |= unix.PerfBitExcludeKernel
		if fd, err = unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC); err == nil {
			p.excludeKernel[i] = true
			p.log.Debug("perfevent: counting user space only (perf_event_paranoid)", "event", ev.Name)
		}
	}
	return fd, err
}

// readFD returns an event's count scaled for multiplexing.
func readFD(fd int) (uint64, error) {
	var b [24]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return 0, err
	}
	if n != len(b) {
		return 0, io.ErrUnexpectedEOF
	}
	v := binary.NativeEndian.Uint64(b[0:])
	enabled := binary.NativeEndian.Uint64(b[8:])
	running := binary.NativeEndian.Uint64(b[16:])
	if running != 0 && running < enabled {
		v = uint64(float64(v) * float64(enabled) / float64(running))
	}
	return v, nil
}

// retire keeps the final counts of thread tid and closes its descriptors.
// p.mu is held.
func (p *Process) retire(tid int) {
	for i, fd := range p.threads[tid] {
		if fd < 0 {
			continue
		}
		if v, err := readFD(fd); err == nil {
			p.retired[i] += v
		}
		unix.Close(fd)
	}
	delete(p.threads, tid)
}

// totals re-scans the threads and sums every event over them. p.mu is held.
func (p *Process) totals() []uint64 {
	if err := p.scan(); err != nil {
		p.log.Warn("perfevent: re-scanning threads", "err", err)
	}
	t := slices.Clone(p.retired)
	for tid, fds := range p.threads {
		for i, fd := range fds {
			if fd < 0 {
				continue
			}
			v, err := readFD(fd)
			if err != nil {
				p.log.Warn("perfevent: reading event", "event", p.events[i].Name, "tid", tid, "err", err)
				continue
			}
			t[i] += v
		}
	}
	return t
}

// Read appends one metric per event, in the order of the configuration,
// as perfc.Source asks: the count since Open or the last reset, or the
// event's state when the host cannot count it. It re-scans the threads
// first.
func (p *Process) Read(dst []perfc.Metric, reset func(name string) bool) []perfc.Metric {
	p.mu.Lock()
	defer p.mu.Unlock()
	var t []uint64
	if !p.closed {
		t = p.totals()
	}
	for i, ev := range p.events {
		m := perfc.Metric{Name: ev.Name, Kind: perfc.KindCounter, Unit: ev.Unit, Desc: ev.Desc}
		switch st := p.state[i]; {
		case st == perfc.StateUnsupported || st == perfc.StateDenied:
			m.State = st
		case t != nil:
			m.Value = int64(t[i] - p.base[i])
			if reset != nil && reset(ev.Name) {
				p.base[i] = t[i]
			}
		}
		dst = append(dst, m)
	}
	return dst
}

// Threads returns the ids of the threads being counted, sorted.
func (p *Process) Threads() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.threads))
}

// Close releases every descriptor. Read after Close reports zeros.
func (p *Process) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeAll()
	return nil
}

func (p *Process) closeAll() {
	for tid, fds := range p.threads {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		delete(p.threads, tid)
	}
	p.closed = true
}
