package ethnodes_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/controller/ethnodes"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/agent"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

var (
	ctl1 = proto.MAC{0x02, 0, 0, 0, 0, 0xc1}
	ctl2 = proto.MAC{0x02, 0, 0, 0, 0, 0xc2}
)

func nodeMAC(i int) proto.MAC { return proto.MAC{0x0c, 0xc4, 0x7a, 0x00, 0x00, byte(i + 1)} }

// rack is an in-memory switch with simulated node agents on it.
type rack struct {
	t      *testing.T
	sw     *linktest.Switch
	keys   *proto.Keyring
	agents map[proto.MAC]*agent.Agent
	stops  map[proto.MAC]func()
}

func newRack(t *testing.T) *rack {
	t.Helper()
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	r := &rack{t: t, sw: linktest.NewSwitch(linktest.Config{MTU: 1500}), keys: keys,
		agents: map[proto.MAC]*agent.Agent{}, stops: map[proto.MAC]func(){}}
	t.Cleanup(r.sw.Close)
	return r
}

// smallHardware is 2 sockets × 2 cores × 2 threads, 4 GiB, one 1 GB drive.
func smallHardware() *inventory.SimHardware {
	hw := inventory.DefaultSimHardware()
	hw.Sockets, hw.CoresPerSocket, hw.ThreadsPerCore, hw.Memory = 2, 2, 2, 4*inventory.GiB
	hw.Disks = []inventory.SimDisk{{Name: "nvme0n1", Size: 1e9}}
	return &hw
}

// node starts a sim node agent that sends heartbeats to controller (none
// when zero) every second.
func (r *rack) node(mac, controller proto.MAC, hw *inventory.SimHardware) *agent.Agent {
	r.t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Link = r.sw.Link(mac, proto.EtherTypeControl)
	cfg.Keys = r.keys
	cfg.SimHardware = hw
	cfg.Location = inventory.Location{Rack: "r1", Blade: mac.NodeID()}
	if !controller.IsZero() {
		cfg.Controller = controller.String()
	}
	a, err := agent.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	stop := func() { cancel(); <-done }
	r.agents[mac], r.stops[mac] = a, stop
	r.t.Cleanup(stop)
	return a
}

// kill stops a node: it answers nothing from now on.
func (r *rack) kill(mac proto.MAC) { r.stops[mac]() }

func (r *rack) source(mac proto.MAC) *ethnodes.Source {
	r.t.Helper()
	cfg := ethnodes.DefaultConfig()
	cfg.Link = r.sw.Link(mac, proto.EtherTypeControl)
	cfg.Keys = r.keys
	cfg.Logger = slog.New(slog.NewTextHandler(r.t.Output(), nil))
	s, err := ethnodes.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { s.Close() })
	return s
}

// collect reads reports until cond holds for the reports so far, or fails
// the test after limit (synctest time).
func collect(t *testing.T, ch <-chan controller.Report, limit time.Duration, cond func([]controller.Report) bool) []controller.Report {
	t.Helper()
	var got []controller.Report
	deadline := time.After(limit)
	for !cond(got) {
		select {
		case r := <-ch:
			got = append(got, r)
		case <-deadline:
			t.Fatalf("after %v, %d reports and the condition does not hold: %+v", limit, len(got), got)
		}
	}
	return got
}

func registrations(rs []controller.Report) map[proto.MAC]state.Inventory {
	out := map[proto.MAC]state.Inventory{}
	for _, r := range rs {
		if r.Inventory != nil {
			out[r.MAC] = *r.Inventory
		}
	}
	return out
}

// wantInventory is smallHardware as the controller stores it.
func wantInventory(mac proto.MAC) state.Inventory {
	hw := smallHardware()
	id := mac.NodeID()
	return state.Inventory{
		Hostname: "sim-" + id, Arch: "x86_64", Hypervisor: "sim",
		CPU: state.CPU{Vendor: hw.Vendor, Model: hw.Model, MHz: 2100, Features: hw.Flags},
		NUMA: []state.NUMA{
			{ID: 0, Cores: []uint32{0, 1, 4, 5}, MemoryMB: 2048, Distances: []uint32{10, 21}},
			{ID: 1, Cores: []uint32{2, 3, 6, 7}, MemoryMB: 2048, Distances: []uint32{21, 10}},
		},
		MemoryMB: 4096,
		Disks:    []state.Disk{{ID: id + "_nvme0n1", Name: "nvme0n1", Model: "simulated", SizeMB: 953}},
		NICs:     []state.NIC{{Name: "eth0", MAC: mac, SpeedMbps: 10000, MTU: 1500}},
		Location: state.Location{Rack: "r1", Blade: id},
	}
}

func TestControllerDiscoveryRegistersEveryNodeWithItsInventory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		for i := range 4 {
			r.node(nodeMAC(i), proto.MAC{}, smallHardware())
		}
		src := r.source(ctl1)
		reports := src.Reports(t.Context())
		if err := src.Discover(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		got := registrations(collect(t, reports, time.Second, func(rs []controller.Report) bool { return len(registrations(rs)) == 4 }))
		for i := range 4 {
			m := nodeMAC(i)
			if diff := cmp.Diff(wantInventory(m), got[m]); diff != "" {
				t.Errorf("node %s registered with (-want +got):\n%s", m.NodeID(), diff)
			}
			if id, ok := src.MAC(m.NodeID()); !ok || id != m {
				t.Errorf("MAC(%s) = %s, %v; want %s", m.NodeID(), id, ok, m)
			}
			if term := r.agents[m].Heartbeat().Term; term != 3 {
				t.Errorf("node %s saw term %d after the discovery, want 3", m.NodeID(), term)
			}
		}

		// A second discovery asks nobody for the inventory again.
		if err := src.Discover(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-reports:
			t.Errorf("the second discovery reported %+v for an unchanged node", r)
		default:
		}

		// Node 0 restarts with more memory: the next discovery registers
		// its new hardware.
		r.kill(nodeMAC(0))
		hw := smallHardware()
		hw.Memory = 8 * inventory.GiB
		r.node(nodeMAC(0), proto.MAC{}, hw)
		if err := src.Discover(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		regs := registrations(collect(t, reports, time.Second, func(rs []controller.Report) bool { return len(registrations(rs)) == 1 }))
		if inv, ok := regs[nodeMAC(0)]; !ok || inv.MemoryMB != 8192 || inv.NUMA[0].MemoryMB != 4096 {
			t.Errorf("after node 0's restart with 8 GiB: registrations %+v", regs)
		}
	})
}

func TestControllerGetsHeartbeatsAsMonitoring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		src := r.source(ctl1)
		reports := src.Reports(t.Context())
		a := r.node(nodeMAC(0), ctl1, smallHardware())
		r.node(nodeMAC(1), ctl1, smallHardware())
		if _, err := nodeclient.New(r.source(ctl2).Endpoint()).Create(t.Context(), nodeMAC(0), domain.Spec{ID: 7, VCPUs: 3, Memory: 512 * domain.MiB}, true); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Two heartbeats from each node: at start and a second later.
		rs := collect(t, reports, 3*time.Second, func(rs []controller.Report) bool {
			n := map[proto.MAC]int{}
			for _, r := range rs {
				n[r.MAC]++
			}
			return n[nodeMAC(0)] >= 2 && n[nodeMAC(1)] >= 2
		})
		var last *state.Monitoring
		for _, rep := range rs {
			if rep.Monitoring == nil || rep.Inventory != nil {
				t.Fatalf("report %+v: a heartbeat must carry monitoring and no inventory", rep)
			}
			if rep.At.Before(start) {
				t.Errorf("report time %v is before the test began", rep.At)
			}
			if rep.MAC == nodeMAC(0) {
				last = rep.Monitoring
			}
		}
		want := state.Monitoring{MaxCPU: 800, FreeCPU: 800, AllocCPU: 300,
			MaxMemoryKB: a.Heartbeat().MaxMemory / 1024, FreeMemoryKB: a.Heartbeat().FreeMemory / 1024,
			UsedMemoryKB: 512 * 1024, AllocMemKB: 512 * 1024, MaxDiskMB: 953, FreeDiskMB: 953,
		}
		if diff := cmp.Diff(want, *last, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "At" }, cmp.Ignore())); diff != "" {
			t.Errorf("node 0's monitoring (-want +got):\n%s", diff)
		}
		if last.At.IsZero() {
			t.Error("monitoring without the node's time stamp")
		}
	})
}

func TestControllerProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		r.node(nodeMAC(0), proto.MAC{}, smallHardware())
		r.node(nodeMAC(1), proto.MAC{}, smallHardware())
		src := r.source(ctl1)
		reports := src.Reports(t.Context())
		if err := src.Probe(t.Context(), nodeMAC(0).NodeID(), 4); !errors.Is(err, ethnodes.ErrUnknownNode) {
			t.Fatalf("probe before any discovery: %v, want ErrUnknownNode", err)
		}
		if err := src.Discover(t.Context(), 4); err != nil {
			t.Fatal(err)
		}
		collect(t, reports, time.Second, func(rs []controller.Report) bool { return len(registrations(rs)) == 2 })

		if err := src.Probe(t.Context(), nodeMAC(0).NodeID(), 4); err != nil {
			t.Fatalf("probe of a live node: %v", err)
		}
		rep := collect(t, reports, time.Second, func(rs []controller.Report) bool { return len(rs) == 1 })[0]
		if rep.MAC != nodeMAC(0) || rep.Monitoring == nil || rep.Monitoring.MaxCPU != 800 {
			t.Errorf("a probe's answer is reported as %+v, want node 0's heartbeat", rep)
		}

		// A dead node fails the probe within the protocol's tolerance, even
		// when the caller would wait longer.
		r.kill(nodeMAC(1))
		tol := ethnodes.DefaultConfig().Tolerance
		ctx, cancel := context.WithTimeout(t.Context(), 10*tol)
		defer cancel()
		start := time.Now()
		err := src.Probe(ctx, nodeMAC(1).NodeID(), 4)
		if took := time.Since(start); !errors.Is(err, proto.ErrPeerDead) || took > tol+tol/4 {
			t.Errorf("probe of a dead node: %v after %v; want ErrPeerDead within the tolerance %v", err, took, tol)
		}
	})
}

func TestANewerControllerLeaderDeposesTheOldOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		var macs []proto.MAC
		for i := range 3 {
			macs = append(macs, nodeMAC(i))
			r.node(nodeMAC(i), proto.MAC{}, smallHardware())
		}
		old, cur := r.source(ctl1), r.source(ctl2)
		if err := old.Discover(t.Context(), 5); err != nil {
			t.Fatal(err)
		}
		for _, m := range macs {
			if err := old.Probe(t.Context(), m.NodeID(), 5); err != nil {
				t.Fatalf("leader of term 5 probing %s: %v", m.NodeID(), err)
			}
		}
		// A new leader, term 6, discovers: every node now refuses term 5.
		if err := cur.Discover(t.Context(), 6); err != nil {
			t.Fatal(err)
		}
		for _, m := range macs {
			err := old.Probe(t.Context(), m.NodeID(), 5)
			var ne *nodeclient.Error
			if !errors.Is(err, nodeclient.ErrStaleTerm) || !errors.As(err, &ne) || ne.Term != 6 {
				t.Errorf("old leader's probe of %s: %v; want ErrStaleTerm naming term 6", m.NodeID(), err)
			}
			if err := cur.Probe(t.Context(), m.NodeID(), 6); err != nil {
				t.Errorf("new leader's probe of %s: %v", m.NodeID(), err)
			}
			// Its commands are refused too, and change nothing.
			_, err = nodeclient.New(old.Endpoint()).WithTerm(5).Create(t.Context(), m, domain.Spec{ID: 1, VCPUs: 1, Memory: 64 * domain.MiB}, true)
			if !errors.Is(err, nodeclient.ErrStaleTerm) {
				t.Errorf("old leader's create on %s: %v; want ErrStaleTerm", m.NodeID(), err)
			}
			if n := len(r.agents[m].Driver().List()); n != 0 {
				t.Errorf("node %s runs %d domains after a refused create", m.NodeID(), n)
			}
		}
		if got := old.Refused(); got != uint64(len(macs)) {
			t.Errorf("old leader counted %d refused probes, want %d", got, len(macs))
		}
		if !slices.Equal([]uint64{cur.Refused()}, []uint64{0}) {
			t.Errorf("new leader counted %d refusals", cur.Refused())
		}
	})
}
