package sim_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/domain/sim"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/proto"
)

// clock is an injected clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	drv    *sim.Driver
	ledger *domain.Ledger
	clk    *clock
	mu     sync.Mutex
	events []domain.Event
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	mac, _ := proto.ParseMAC("0c:c4:7a:77:f9:af")
	inv, err := inventory.Simulated(mac, inventory.DefaultSimHardware(), inventory.Location{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{clk: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	h.ledger, err = domain.NewLedger(inv, domain.DefaultLedgerConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultConfig()
	cfg.Ledger, cfg.Now = h.ledger, h.clk.Now
	cfg.Notify = func(e domain.Event) { h.mu.Lock(); h.events = append(h.events, e); h.mu.Unlock() }
	h.drv, err = sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) states() []domain.State {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s []domain.State
	for _, e := range h.events {
		s = append(s, e.State)
	}
	return s
}

func TestLifeCycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	spec := domain.Spec{ID: 3, VCPUs: 2, Memory: 1 << 30}
	if _, err := h.drv.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		op   domain.Op
		want domain.State
	}{
		{domain.OpStart, domain.StateRunning},
		{domain.OpPause, domain.StatePaused},
		{domain.OpResume, domain.StateRunning},
		{domain.OpReboot, domain.StateRunning},
		{domain.OpShutdown, domain.StateShutoff},
		{domain.OpStart, domain.StateRunning},
		{domain.OpDestroy, domain.StateShutoff},
	} {
		info, err := h.drv.Do(ctx, 3, step.op)
		if err != nil || info.State != step.want {
			t.Fatalf("%s: %v, %v; want %s", step.op, info.State, err, step.want)
		}
	}
	if _, err := h.drv.Do(ctx, 3, domain.OpPause); !errors.Is(err, domain.ErrState) {
		t.Errorf("pause while shut off = %v, want ErrState", err)
	}
	want := []domain.State{domain.StateDefined, domain.StateRunning, domain.StatePaused, domain.StateRunning,
		domain.StateRunning, domain.StateShutoff, domain.StateRunning, domain.StateShutoff}
	if diff := cmp.Diff(want, h.states()); diff != "" {
		t.Errorf("notified states (-want +got):\n%s", diff)
	}
	con, _ := h.drv.Console(ctx, 3)
	if !bytes.Contains(con, []byte("dn3: up")) {
		t.Errorf("console lacks the boot marker:\n%s", con)
	}
	if _, err := h.drv.Do(ctx, 3, domain.OpUndefine); err != nil {
		t.Fatal(err)
	}
	if u := h.ledger.Usage(); u.Domains != 0 || u.MemoryFree != u.Memory {
		t.Errorf("undefine left resources held: %+v", u)
	}
	if _, err := h.drv.Info(3); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Info after undefine = %v", err)
	}
}

func TestCreateRejects(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.drv.Create(ctx, domain.Spec{ID: 1, VCPUs: 2, Memory: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.drv.Create(ctx, domain.Spec{ID: 1, VCPUs: 1, Memory: 1 << 30}); !errors.Is(err, domain.ErrExists) {
		t.Errorf("existing id: %v, want ErrExists", err)
	}
	if got := len(h.drv.List()); got != 1 {
		t.Errorf("%d domains after a duplicate create, want 1", got)
	}
	_, err := h.drv.Create(ctx, domain.Spec{ID: 2, VCPUs: 6, Topology: domain.Topology{Sockets: 1, Cores: 4, Threads: 2}, Memory: 1 << 30})
	if !errors.Is(err, domain.ErrTopology) || !strings.Contains(err.Error(), "VCPU = SOCKETS × CORES × THREADS") {
		t.Errorf("topology: %v", err)
	}
	_, err = h.drv.Create(ctx, domain.Spec{ID: 4, VCPUs: 1, Memory: 512 << 30})
	if !errors.Is(err, domain.ErrNoMemory) || !strings.Contains(err.Error(), "wants 524288 MiB memory, node 7a77f9af has 262144 MiB") {
		t.Errorf("memory: %v", err)
	}
}

func TestPinAndVCPUInfo(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.drv.Create(ctx, domain.Spec{ID: 7, VCPUs: 2, Memory: 1 << 30, Pin: []int{4, 5}})
	h.drv.Do(ctx, 7, domain.OpStart)
	if err := h.drv.PinVCPU(ctx, 7, 1, 40); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(10 * time.Second)
	v, err := h.drv.VCPUs(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if v[0].CPU != 4 || v[1].CPU != 40 || !cmp.Equal(v[1].Affinity, []int{40}) {
		t.Errorf("vCPUs = %+v, want vCPU0 on 4, vCPU1 on 40", v)
	}
	if v[0].Time <= 0 || v[0].Time > 10*time.Second {
		t.Errorf("vCPU time %v after 10 s of running", v[0].Time)
	}
	if err := h.drv.PinVCPU(ctx, 7, 1, 99); !errors.Is(err, domain.ErrInvalidSpec) {
		t.Errorf("pin to CPU 99 = %v", err)
	}
}

func TestShowNUMA(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	spec := domain.Spec{ID: 5, VCPUs: 32, Topology: domain.Topology{Sockets: 2, Cores: 16, Threads: 1}, Memory: 32 << 30,
		VNodes: domain.SplitVNodes(32, 32<<30, 2, []int{0, 1})}
	if _, err := h.drv.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := h.drv.Create(ctx, domain.Spec{ID: 6, VCPUs: 1, Memory: 8 << 30}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, id := range []int{5, 6} {
		n, err := h.drv.NUMA(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		domain.FormatNUMA(&b, domain.ConsolePrefix(h.clk.Now()), n)
	}
	// dn6 lands on node 0: after dn5 took 16 GiB from each node they tie,
	// and a tie goes to the lower node.
	const want = `(NEX) [2026-01-02 03:04:05] Domain 5 (total: 8388608):
(NEX) [2026-01-02 03:04:05]     Node 0: 4194304
(NEX) [2026-01-02 03:04:05]     Node 1: 4194304
(NEX) [2026-01-02 03:04:05]      2 vnodes, 32 vcpus, guest physical layout:
(NEX) [2026-01-02 03:04:05]          0: pnode   0, vcpus 0-15
(NEX) [2026-01-02 03:04:05]            0000000000000000 - 00000000bfffffff
(NEX) [2026-01-02 03:04:05]            0000000100000000 - 000000043fffffff
(NEX) [2026-01-02 03:04:05]          1: pnode   1, vcpus 16-31
(NEX) [2026-01-02 03:04:05]            0000000440000000 - 000000083fffffff
(NEX) [2026-01-02 03:04:05] Domain 6 (total: 2097152):
(NEX) [2026-01-02 03:04:05]     Node 0: 2097152
(NEX) [2026-01-02 03:04:05]     Node 1: 0
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("show numa (-want +got):\n%s", diff)
	}
	// vCPUs of a vnode run on its host node's CPUs.
	v, _ := h.drv.VCPUs(ctx, 5)
	if n := nodeOf(t, v[20].Affinity); n != 1 {
		t.Errorf("vCPU 20 (vnode 1) may run on node %d's CPUs", n)
	}
}

func nodeOf(t *testing.T, cpus []int) int {
	mac, _ := proto.ParseMAC("0c:c4:7a:77:f9:af")
	inv, _ := inventory.Simulated(mac, inventory.DefaultSimHardware(), inventory.Location{})
	n := inv.NUMANodeOf(cpus[0])
	for _, c := range cpus {
		if inv.NUMANodeOf(c) != n {
			t.Errorf("affinity %v spans NUMA nodes", cpus)
		}
	}
	return n
}

func TestStatsMonotonicAndConsistent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	mac, _ := proto.ParseMAC("52:54:00:00:00:01")
	h.drv.Create(ctx, domain.Spec{ID: 9, VCPUs: 2, Memory: 2 << 30,
		Disks: []domain.Disk{{NBD: "/run/v.sock"}}, NICs: []domain.NIC{{MAC: mac}}})
	h.drv.Do(ctx, 9, domain.OpStart)
	var prev domain.Stats
	for i := range 20 {
		h.clk.Advance(10 * time.Second)
		if i == 5 {
			h.drv.Do(ctx, 9, domain.OpPause)
		}
		if i == 8 {
			h.drv.Do(ctx, 9, domain.OpResume)
		}
		s, err := h.drv.Stats(ctx, 9)
		if err != nil {
			t.Fatal(err)
		}
		if s.Memory.Max != 2<<30 || s.Memory.Current > s.Memory.Max || s.Memory.Current == 0 {
			t.Errorf("memory %+v", s.Memory)
		}
		if i > 0 {
			for v := range s.VCPUs {
				if s.VCPUs[v].Time < prev.VCPUs[v].Time {
					t.Errorf("sample %d: vCPU %d time went back", i, v)
				}
			}
			if s.VIFs[0].RxBytes < prev.VIFs[0].RxBytes || s.VBDs[0].WriteSectors < prev.VBDs[0].WriteSectors {
				t.Errorf("sample %d: counters went back", i)
			}
			paused := i >= 6 && i <= 8
			if grew := s.VIFs[0].RxBytes > prev.VIFs[0].RxBytes; grew == paused {
				t.Errorf("sample %d: rx grew=%v while paused=%v", i, grew, paused)
			}
		}
		if elapsed := time.Duration(i+1) * 10 * time.Second; s.VCPUs[0].Time > elapsed {
			t.Errorf("vCPU time %v exceeds wall time %v", s.VCPUs[0].Time, elapsed)
		}
		if s.VBDs[0].Backing != "nbd" || s.VBDs[0].Device != "vda" || s.VBDs[0].ReadSectors < s.VBDs[0].ReadReqs {
			t.Errorf("vbd %+v", s.VBDs[0])
		}
		prev = s
	}
}

func TestCrashIsReported(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.drv.Create(ctx, domain.Spec{ID: 2, VCPUs: 1, Memory: 256 << 20})
	h.drv.Do(ctx, 2, domain.OpStart)
	if err := h.drv.Crash(2, "injected"); err != nil {
		t.Fatal(err)
	}
	info, _ := h.drv.Info(2)
	if info.State != domain.StateCrashed || info.Reason != "injected" {
		t.Errorf("info %+v", info)
	}
	if s := h.states(); s[len(s)-1] != domain.StateCrashed {
		t.Errorf("last event %v", s)
	}
	if _, err := h.drv.Do(ctx, 2, domain.OpStart); err != nil {
		t.Errorf("restart after crash: %v", err)
	}
}

func TestWildImport(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.drv.AddWild(domain.Wild{PID: 4242, Name: "legacy", VCPUs: 2, Memory: 1 << 30})
	w, _ := h.drv.Wild(ctx)
	if len(w) != 1 {
		t.Fatalf("wild = %v", w)
	}
	info, err := h.drv.Import(ctx, w[0], 77)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Imported || info.State != domain.StateRunning || info.Spec.VCPUs != 2 {
		t.Errorf("imported %+v", info)
	}
	if w, _ := h.drv.Wild(ctx); len(w) != 0 {
		t.Errorf("still wild after import: %v", w)
	}
	if z := domain.Zombies([]int{77, 78}, h.drv.List()); !cmp.Equal(z, []int{78}) {
		t.Errorf("zombies %v, want [78]", z)
	}
}

func TestFiveHundredDomains(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for id := 1; id <= 500; id++ {
		if _, err := h.drv.Create(ctx, domain.Spec{ID: id, VCPUs: 1, Memory: 512 << 20}); err != nil {
			t.Fatalf("domain %d: %v", id, err)
		}
		if _, err := h.drv.Do(ctx, id, domain.OpStart); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(h.drv.List()); got != 500 {
		t.Errorf("%d domains", got)
	}
	u := h.ledger.Usage()
	if u.VCPUs != 500 || u.Memory-u.MemoryFree != 500*512<<20 {
		t.Errorf("usage %+v", u)
	}
	// 6 GiB are left: a 7 GiB domain does not fit.
	if _, err := h.drv.Create(ctx, domain.Spec{ID: 501, VCPUs: 1, Memory: 7 << 30}); !errors.Is(err, domain.ErrNoMemory) {
		t.Errorf("501st: %v", err)
	}
}
