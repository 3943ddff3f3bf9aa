package perfevent

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvstack/mvstack/perfc"
)

// logBuf collects the package's log lines so a test can assert that none
// is a warning or an error.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuf) checkQuiet(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("log:\n%s", l.buf.String())
	if bytes.Contains(l.buf.Bytes(), []byte("level=WARN")) || bytes.Contains(l.buf.Bytes(), []byte("level=ERROR")) {
		t.Error("perfevent logged warnings or errors; unsupported events must not")
	}
}

func openOrFail(t *testing.T, pid int, lb *logBuf) *Process {
	t.Helper()
	p, err := Open(pid, &Config{Logger: lb.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func values(p *Process) map[string]perfc.Metric {
	m := map[string]perfc.Metric{}
	for _, x := range p.Read(nil, nil) {
		m[x.Name] = x
	}
	return m
}

// kernelCounted says whether this process may count kernel-mode events,
// where context switches happen: root, or perf_event_paranoid below 2.
func kernelCounted(t *testing.T) bool {
	par, err := Paranoid()
	if err != nil {
		t.Fatal(err)
	}
	return os.Geteuid() == 0 || par < 2
}

// onKnownThread runs f locked to an OS thread that p counts: a thread the
// Go runtime made after p last re-scanned would not be (the limit the
// package documents), so it re-scans once the thread is locked.
func onKnownThread(p *Process, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if p != nil {
		p.Read(nil, nil)
	}
	f()
}

// burnThreadCPU spins and returns the CPU time the calling thread used, as
// the kernel counts it. Call it locked to a thread.
func burnThreadCPU(iterations int) time.Duration {
	var ts0, ts1 unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts0)
	x := uint64(1)
	for i := 0; i < iterations; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts1)
	if x == 42 {
		println() // keep x alive
	}
	return time.Duration(ts1.Nano() - ts0.Nano())
}

// touchFreshPages maps n anonymous pages without huge pages, writes one
// byte to each (a page fault apiece) and unmaps them.
func touchFreshPages(t *testing.T, n int) {
	t.Helper()
	size := n * os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	for i := 0; i < size; i += os.Getpagesize() {
		mem[i] = 1
	}
}

// pingPong bounces a byte n times between two threads p counts over a
// blocking pipe: every bounce puts a thread to sleep, a context switch.
func pingPong(t *testing.T, p *Process, n int) {
	t.Helper()
	var a, b [2]int
	if err := unix.Pipe2(a[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Pipe2(b[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, fd := range []int{a[0], a[1], b[0], b[1]} {
			unix.Close(fd)
		}
	}()
	done := make(chan struct{})
	go onKnownThread(p, func() {
		defer close(done)
		buf := []byte{0}
		for range n {
			if _, err := unix.Read(a[0], buf); err != nil {
				return
			}
			unix.Write(b[1], buf)
		}
	})
	onKnownThread(p, func() {
		buf := []byte{0}
		for range n {
			unix.Write(a[1], buf)
			if _, err := unix.Read(b[0], buf); err != nil {
				t.Error(err)
				return
			}
		}
	})
	<-done
}

func TestSoftwareEventsOfOwnProcessIncreaseAndHardwareOnesSayUnsupported(t *testing.T) {
	var lb logBuf
	p := openOrFail(t, os.Getpid(), &lb)
	before := values(p)

	var cpu time.Duration
	const pages = 2048
	onKnownThread(p, func() {
		cpu = burnThreadCPU(20_000_000)
		touchFreshPages(t, pages)
	})
	pingPong(t, p, 200)

	after := values(p)
	names := make([]string, 0, len(after))
	for _, ev := range DefaultEvents() {
		names = append(names, ev.Name)
		a, b := after[ev.Name], before[ev.Name]
		t.Logf("%-26s %-12s before %12d after %12d %s", ev.Name, a.State, b.Value, a.Value, a.Unit)
		if a.State != b.State {
			t.Errorf("%s: state changed from %s to %s", ev.Name, b.State, a.State)
		}
	}
	if got := p.Read(nil, nil); !slices.EqualFunc(got, names, func(m perfc.Metric, n string) bool { return m.Name == n }) {
		t.Errorf("Read names %v, want %v in that order", got, names)
	}

	sw := func(name string) (int64, int64) {
		t.Helper()
		if after[name].State != perfc.StateOK {
			t.Fatalf("%s: state %s, want ok (software events work everywhere)", name, after[name].State)
		}
		return before[name].Value, after[name].Value
	}
	if b, a := sw("perf.sw.task_clock"); a-b < int64(cpu) {
		t.Errorf("task clock rose by %v, less than the %v one thread spent spinning", time.Duration(a-b), cpu)
	}
	if b, a := sw("perf.sw.page_faults"); a-b < pages {
		t.Errorf("page faults rose by %d after touching %d fresh pages", a-b, pages)
	}
	if b, a := sw("perf.sw.context_switches"); kernelCounted(t) && a-b < 200 {
		t.Errorf("context switches rose by %d after 200 blocking pipe round trips", a-b)
	}
	sw("perf.sw.cpu_migrations")

	for _, ev := range DefaultEvents() {
		if ev.Type == unix.PERF_TYPE_SOFTWARE {
			continue
		}
		switch m := after[ev.Name]; m.State {
		case perfc.StateUnsupported:
			if m.Value != 0 {
				t.Errorf("%s unsupported but carries a value %d", ev.Name, m.Value)
			}
		case perfc.StateOK: // this host has a PMU
			if ev.Name == "perf.hw.cycles" || ev.Name == "perf.hw.instructions" {
				if m.Value <= before[ev.Name].Value {
					t.Errorf("%s did not rise: %d then %d", ev.Name, before[ev.Name].Value, m.Value)
				}
			}
		default:
			if kernelCounted(t) {
				t.Errorf("%s: state %s as root", ev.Name, m.State)
			}
		}
	}
	lb.checkQuiet(t)
}

func TestThreadsThatComeAndGoStayCounted(t *testing.T) {
	var lb logBuf
	p := openOrFail(t, os.Getpid(), &lb)

	tidc := make(chan int)
	start := make(chan struct{})
	spent := make(chan time.Duration)
	var tid int
	for tid == 0 {
		go func() {
			// Locked and never unlocked: the thread exits with the
			// goroutine, unless it is the main thread, which Go keeps.
			runtime.LockOSThread()
			if unix.Gettid() == os.Getpid() {
				runtime.UnlockOSThread()
				tidc <- 0
				return
			}
			tidc <- unix.Gettid()
			<-start
			spent <- burnThreadCPU(20_000_000)
		}()
		tid = <-tidc
	}
	before := values(p)["perf.sw.task_clock"].Value
	if !slices.Contains(p.Threads(), tid) {
		t.Fatalf("new thread %d not counted after a read: %v", tid, p.Threads())
	}
	close(start)
	cpu := <-spent

	// The thread exits once its goroutine has returned; wait for the kernel.
	task := "/proc/self/task/" + strconv.Itoa(tid)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still there after 10 s", tid)
		}
		time.Sleep(time.Millisecond)
	}
	after := values(p)["perf.sw.task_clock"].Value
	if slices.Contains(p.Threads(), tid) {
		t.Errorf("exited thread %d still counted", tid)
	}
	if after-before < int64(cpu) {
		t.Errorf("task clock rose by %v, less than the %v the exited thread spent", time.Duration(after-before), cpu)
	}
	lb.checkQuiet(t)
}

func TestChildProcessCountsSurviveItsExit(t *testing.T) {
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Skipf("needs cat (coreutils): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var lb logBuf
	p := openOrFail(t, cmd.Process.Pid, &lb)
	if len(p.Threads()) != 1 || p.Threads()[0] != cmd.Process.Pid {
		t.Errorf("cat's threads = %v, want [%d]", p.Threads(), cmd.Process.Pid)
	}
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 2000 {
		if _, err := in.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	got := values(p)
	if v := got["perf.sw.task_clock"]; v.State != perfc.StateOK || v.Value <= 0 {
		t.Errorf("cat's task clock after it copied 8 MB and exited: %+v", v)
	}
	if kernelCounted(t) && got["perf.sw.context_switches"].Value <= 0 {
		t.Errorf("cat blocked on its pipe but no context switch was counted: %+v", got["perf.sw.context_switches"])
	}
	if len(p.Threads()) != 0 {
		t.Errorf("threads of an exited process still counted: %v", p.Threads())
	}
	again := values(p)
	if again["perf.sw.task_clock"].Value != got["perf.sw.task_clock"].Value {
		t.Error("the exited process's task clock moved")
	}
	lb.checkQuiet(t)
}

func TestResetThroughASetRestartsFromZero(t *testing.T) {
	var lb logBuf
	p := openOrFail(t, os.Getpid(), &lb)
	set, err := perfc.NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	detach, err := set.Child("dn1").Attach(p)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	onKnownThread(p, func() { burnThreadCPU(5_000_000) })
	taken := set.Reset(perfc.Query{Prefix: "perf.sw.task_clock"})
	m, ok := taken.Find("dn1", "perf.sw.task_clock")
	if !ok || m.Value <= 0 || len(taken.Metrics) != 1 {
		t.Fatalf("Reset returned %+v", taken)
	}
	d := set.Dump(perfc.Query{})
	if after, _ := d.Find("dn1", "perf.sw.task_clock"); after.Value >= m.Value {
		t.Errorf("task clock %d after reset, %d before", after.Value, m.Value)
	}
	if len(d.Metrics) != len(DefaultEvents()) {
		t.Errorf("dump has %d metrics, want %d", len(d.Metrics), len(DefaultEvents()))
	}
	if c, _ := d.Find("dn1", "perf.hw.cycles"); c.Desc == "" || c.Unit != "cycles" {
		t.Errorf("cycles metric lacks its description or unit: %+v", c)
	}
	lb.checkQuiet(t)
}

func TestOpenMissingProcess(t *testing.T) {
	if _, err := Open(1<<30, nil); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Open(no such pid) = %v, want ErrNoProcess", err)
	}
}

func TestConfigValidateRejectsBadEvents(t *testing.T) {
	good := DefaultEvents()
	for _, tc := range []struct {
		desc   string
		events []Event
	}{
		{"bad name", []Event{{Name: "Perf.HW", Unit: "x", Desc: "d"}}},
		{"no unit", []Event{{Name: "perf.x", Desc: "d"}}},
		{"no description", []Event{{Name: "perf.x", Unit: "x"}}},
		{"repeated", []Event{good[0], good[0]}},
	} {
		if err := (Config{Events: tc.events}).Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", tc.desc, tc.events)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}
