package qemu_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/domain/qemu"
	"github.com/mvstack/mvstack/node/guest"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/proto"
)

const binary = "qemu-system-x86_64"

func requireQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(binary); err != nil {
		t.Skip("needs qemu-system-x86_64 (apt qemu-system-x86)")
	}
}

// testGuest builds (as root) or reuses the cached test guest.
func testGuest(t *testing.T) guest.Guest {
	t.Helper()
	requireQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := guest.Build(ctx, guest.DefaultConfig())
	if errors.Is(err, guest.ErrNeedRoot) {
		t.Skip("needs root to build the test guest (apt-get download): run as root")
	}
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type events struct {
	ch chan domain.Event
}

func newDriver(t *testing.T, ev *events) (*qemu.Driver, *domain.Ledger) {
	t.Helper()
	d, l, _ := newDriverIn(t, ev, t.TempDir())
	return d, l
}

func newDriverIn(t *testing.T, ev *events, runDir string) (*qemu.Driver, *domain.Ledger, string) {
	t.Helper()
	cfg := inventory.DefaultConfig()
	cfg.MAC, _ = proto.ParseMAC("02:00:00:00:00:01")
	inv, err := inventory.Probe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := domain.NewLedger(inv, domain.DefaultLedgerConfig())
	if err != nil {
		t.Fatal(err)
	}
	qc := qemu.DefaultConfig()
	qc.Ledger = ledger
	qc.RunDir = runDir
	qc.KillWithParent = true // a test that dies leaves no guest behind
	if ev != nil {
		qc.Notify = func(e domain.Event) { ev.ch <- e }
	}
	d, err := qemu.New(context.Background(), qc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, ledger, runDir
}

// waitConsole polls the console until it holds want, bounded by limit:
// the guest is a real process.
func waitConsole(t *testing.T, d *qemu.Driver, id int, want string, limit time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		con, err := d.Console(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(con, []byte(want)) {
			return con
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the console within %v; console:\n%s", want, limit, con)
		}
		time.Sleep(100 * time.Millisecond) // polling a real guest's console
	}
}

// threadAffinity maps QEMU's vCPU thread names ("CPU 0/TCG") to their
// Cpus_allowed_list, read from /proc/PID/task/*/status.
func threadAffinity(t *testing.T, pid int) map[string]string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		var name, allowed string
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "Name:"); ok {
				name = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				allowed = strings.TrimSpace(v)
			}
		}
		if strings.HasPrefix(name, "CPU ") {
			out[name] = allowed
		}
	}
	return out
}

// TestGuestBootsPinnedWithTwoVNodes boots the test guest with 2 vCPUs
// pinned crosswise, 2 vnodes and a file disk; the guest sees two NUMA
// nodes, writes its disk and powers off cleanly through QMP.
func TestGuestBootsPinnedWithTwoVNodes(t *testing.T) {
	g := testGuest(t)
	ev := &events{ch: make(chan domain.Event, 32)}
	d, _ := newDriver(t, ev)
	ctx := context.Background()
	// vda: an NBD export on a unix socket (qemu-nbd serving a file), the
	// way the node's volume client hands disks to QEMU; vdb: a local file.
	dir := t.TempDir()
	disk, seed := filepath.Join(dir, "disk.img"), filepath.Join(dir, "seed.img")
	for _, f := range []string{disk, seed} {
		if err := os.WriteFile(f, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nbd := serveNBD(t, disk, filepath.Join(dir, "nbd.sock"))
	spec := domain.Spec{ID: 1, VCPUs: 2, Topology: domain.Topology{Sockets: 2, Cores: 1, Threads: 1}, Memory: 256 << 20,
		VNodes: domain.SplitVNodes(2, 256<<20, 2, []int{0}),
		Pin:    []int{1, 0},
		Disks:  []domain.Disk{{NBD: nbd}, {File: seed, ReadOnly: true}},
		Boot:   domain.Boot{Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: guest.Cmdline(guest.ArgDisk + "hello")}}
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	info, err := d.Do(ctx, 1, domain.OpStart)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != domain.StateRunning || info.PID == 0 {
		t.Fatalf("after start: %+v", info)
	}
	// Pinned before the guest ran: vCPU 0 on CPU 1, vCPU 1 on CPU 0.
	aff := threadAffinity(t, info.PID)
	if aff["CPU 0/TCG"] != "1" || aff["CPU 1/TCG"] != "0" {
		t.Errorf("vCPU thread affinity from /proc = %v, want CPU 0/TCG on 1, CPU 1/TCG on 0", aff)
	}
	vc, err := d.VCPUs(ctx, 1)
	if err != nil || len(vc) != 2 || vc[0].ThreadID == 0 || fmt.Sprint(vc[0].Affinity) != "[1]" {
		t.Errorf("VCPUs = %+v, %v", vc, err)
	}

	con := waitConsole(t, d, 1, guest.ReadyMarker, 90*time.Second)
	if !bytes.Contains(con, []byte(guest.NodesPrefix+" node0 node1")) {
		t.Errorf("guest does not see two NUMA nodes; console:\n%s", con)
	}
	if !bytes.Contains(con, []byte("mvguest: disk marker written")) {
		t.Errorf("guest did not write its disk; console:\n%s", con)
	}
	n, _ := d.NUMA(ctx, 1)
	var show bytes.Buffer
	domain.FormatNUMA(&show, "", n)
	if !strings.Contains(show.String(), "2 vnodes, 2 vcpus, guest physical layout:") ||
		!strings.Contains(show.String(), "0000000000000000 - 0000000007ffffff") ||
		!strings.Contains(show.String(), "0000000008000000 - 000000000fffffff") {
		t.Errorf("show numa does not match the -numa layout:\n%s", show.String())
	}
	st, err := d.Stats(ctx, 1)
	if err != nil || len(st.VBDs) != 2 || st.VBDs[0].WriteReqs == 0 || st.VBDs[0].Backing != "nbd" || len(st.VCPUs) != 2 {
		t.Errorf("Stats = %+v, %v", st, err)
	}

	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	info, err = d.Do(sctx, 1, domain.OpShutdown)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != domain.StateShutoff {
		t.Errorf("after shutdown: %s (%s), want shutoff", info.State, info.Reason)
	}
	b, _ := os.ReadFile(disk)
	if !bytes.HasPrefix(b, []byte(guest.DiskMarkerPrefix+"hello\n")) {
		t.Errorf("disk starts with %q", b[:32])
	}
	for e := range len(ev.ch) {
		_ = e
		if x := <-ev.ch; x.State == domain.StateCrashed {
			t.Errorf("a clean shutdown was reported crashed: %+v", x)
		}
	}
}

// serveNBD exports file on a unix socket with qemu-nbd until the test ends.
func serveNBD(t *testing.T, file, sock string) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-nbd"); err != nil {
		t.Skip("needs qemu-nbd (apt qemu-utils)")
	}
	cmd := exec.Command("qemu-nbd", "--socket="+sock, "--format=raw", "--persistent", "--cache=none", "--aio=threads", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatal("qemu-nbd exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("qemu-nbd opened no socket within 30 s")
		}
		time.Sleep(20 * time.Millisecond) // polling a real process's socket
	}
}

// TestNICOnTap gives a domain a NIC: QEMU attaches it to a tap that lives
// as long as the domain runs.
func TestNICOnTap(t *testing.T) {
	requireQEMU(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) to create a tap: run as root")
	}
	t.Parallel()
	d, _ := newDriver(t, nil)
	ctx := context.Background()
	tap := fmt.Sprintf("mvt%d", os.Getpid()%100000)
	mac, _ := proto.ParseMAC("52:54:00:12:34:56")
	if _, err := d.Create(ctx, domain.Spec{ID: 3, VCPUs: 1, Memory: 64 << 20, NICs: []domain.NIC{{MAC: mac, Tap: tap}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Do(ctx, 3, domain.OpStart); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/" + tap); err != nil {
		t.Errorf("tap %s missing while dn3 runs: %v", tap, err)
	}
	st, err := d.Stats(ctx, 3)
	if err != nil || len(st.VIFs) != 1 {
		t.Errorf("Stats VIFs = %+v, %v", st.VIFs, err)
	}
	if _, err := d.Do(ctx, 3, domain.OpDestroy); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/class/net/" + tap); err == nil {
		t.Errorf("tap %s outlived its domain", tap)
	}
}

// TestKillIsCrash kills QEMU with SIGKILL: the domain is crashed at once.
// A second create of the same id fails and starts nothing.
func TestKillIsCrash(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	ev := &events{ch: make(chan domain.Event, 32)}
	d, _ := newDriver(t, ev)
	ctx := context.Background()
	// No kernel: the BIOS finds nothing to boot and idles; enough to run.
	if _, err := d.Create(ctx, domain.Spec{ID: 2, VCPUs: 1, Memory: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	info, err := d.Do(ctx, 2, domain.OpStart)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Create(ctx, domain.Spec{ID: 2, VCPUs: 1, Memory: 64 << 20}); !errors.Is(err, domain.ErrExists) {
		t.Errorf("second create of dn2 = %v, want ErrExists", err)
	}
	if _, err := d.Do(ctx, 2, domain.OpStart); !errors.Is(err, domain.ErrState) {
		t.Errorf("second start of dn2 = %v, want ErrState", err)
	}
	if w, _ := d.Wild(ctx); len(w) != 0 {
		for _, x := range w {
			if strings.Contains(strings.Join(x.Cmdline, " "), "guest=dn2") {
				t.Errorf("a second dn2 process runs: %+v", x)
			}
		}
	}
	for len(ev.ch) > 0 {
		<-ev.ch
	}
	if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The acceptance bound: crashed within 1 s.
	select {
	case e := <-ev.ch:
		if e.State != domain.StateCrashed || e.ID != 2 {
			t.Errorf("event after kill -9: %+v, want dn2 crashed", e)
		}
	case <-time.After(time.Second):
		t.Fatal("kill -9 not reported within 1 s")
	}
	if info, _ := d.Info(2); info.State != domain.StateCrashed || !strings.Contains(info.Reason, "killed") {
		t.Errorf("Info after kill: %s %q", info.State, info.Reason)
	}
	// A crashed domain starts again.
	if _, err := d.Do(ctx, 2, domain.OpStart); err != nil {
		t.Errorf("restart after crash: %v", err)
	}
	if info, err := d.Do(ctx, 2, domain.OpDestroy); err != nil || info.State != domain.StateShutoff {
		t.Errorf("destroy: %s, %v", info.State, err)
	}
}

// TestWildGuestImported starts a QEMU by hand: the driver lists it as wild,
// imports it, and controls it through its QMP socket.
func TestWildGuestImported(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	d, ledger := newDriver(t, nil)
	ctx := context.Background()
	sock := filepath.Join(t.TempDir(), "legacy.sock")
	cmd := exec.Command(binary, "-name", "guest=legacy", "-machine", "pc,accel=tcg", "-smp", "1", "-m", "64",
		"-nodefaults", "-display", "none", "-S", "-qmp", "unix:"+sock+",server=on,wait=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	var w domain.Wild
	deadline := time.Now().Add(30 * time.Second)
	for w.PID == 0 {
		found, err := d.Wild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range found {
			if x.PID == cmd.Process.Pid {
				w = x
			}
		}
		if _, err := os.Stat(sock); err != nil {
			w = domain.Wild{} // wait for the socket too
		}
		if w.PID == 0 && time.Now().After(deadline) {
			t.Fatalf("pid %d not found wild with its QMP socket", cmd.Process.Pid)
		}
		if w.PID == 0 {
			time.Sleep(50 * time.Millisecond) // polling a real process
		}
	}
	if w.Name != "legacy" || w.VCPUs != 1 || w.Memory != 64<<20 || w.QMP != sock {
		t.Errorf("wild = %+v", w)
	}
	info, err := d.Import(ctx, w, 50)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Imported || info.State != domain.StatePaused || info.Spec.VCPUs != 1 {
		t.Errorf("imported: %+v", info)
	}
	if u := ledger.Usage(); u.VCPUs != 1 {
		t.Errorf("imported guest not in the ledger: %+v", u)
	}
	if found, _ := d.Wild(ctx); len(found) != 0 {
		for _, x := range found {
			if x.PID == w.PID {
				t.Error("still wild after import")
			}
		}
	}
	if z := domain.Zombies([]int{50}, d.List()); len(z) != 0 {
		t.Errorf("zombies %v while dn50 runs", z)
	}
	if info, err := d.Do(ctx, 50, domain.OpDestroy); err != nil || info.State != domain.StateShutoff {
		t.Errorf("destroy imported: %s, %v", info.State, err)
	}
	<-exited
	if z := domain.Zombies([]int{50}, d.List()); len(z) != 1 {
		t.Errorf("zombies %v after dn50 stopped, want [50]", z)
	}
}

// TestRecoverAfterRestart: a domain started by one driver survives it (as
// after a daemon restart); a new driver on the same run directory finds it
// launched-but-uncontrolled and recovers it under its own id.
func TestRecoverAfterRestart(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	ctx := context.Background()
	runDir := t.TempDir()
	first, _, _ := newDriverIn(t, nil, runDir)
	if _, err := first.Create(ctx, domain.Spec{ID: 61, VCPUs: 1, Memory: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	info, err := first.Do(ctx, 61, domain.OpStart)
	if err != nil {
		t.Fatal(err)
	}
	pid := info.PID
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	first.Detach() // the daemon goes away; its guest keeps running

	second, _, _ := newDriverIn(t, nil, runDir)
	found, err := second.Wild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var w domain.Wild
	for _, x := range found {
		if x.PID == pid {
			w = x
		}
	}
	if !w.Launched || w.Name != "dn61" {
		t.Fatalf("the first driver's guest seen by the second: %+v", w)
	}
	got, err := second.Recover(ctx)
	if err != nil || len(got) != 1 || got[0].ID != 61 || got[0].State != domain.StateRunning || got[0].PID != pid {
		t.Fatalf("Recover = %+v, %v", got, err)
	}
	if info, err := second.Do(ctx, 61, domain.OpDestroy); err != nil || info.State != domain.StateShutoff {
		t.Errorf("destroy recovered dn61: %s, %v", info.State, err)
	}
}

// TestDetectAccel proves KVM by booting under it; this kernel's /dev/kvm
// opens but runs no Linux guest, so the answer must then be TCG.
func TestDetectAccel(t *testing.T) {
	g := testGuest(t)
	t.Parallel()
	got := qemu.DetectAccel(context.Background(), binary, g.Kernel, g.Initrd, guest.ReadyMarker)
	if _, err := os.Stat("/dev/kvm"); err != nil && got != qemu.AccelTCG {
		t.Errorf("no /dev/kvm but DetectAccel = %s", got)
	}
	if got != qemu.AccelTCG && got != qemu.AccelKVM {
		t.Errorf("DetectAccel = %q", got)
	}
	t.Logf("acceleration here: %s", got)
	if qemu.DetectAccel(context.Background(), binary, "", "", "") != qemu.AccelTCG {
		t.Error("without a probe kernel nothing proves KVM; want tcg")
	}
}
