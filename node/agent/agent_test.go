package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/node/agent"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/domain/sim"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

var (
	nodeMAC = proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}
	ctlMAC  = proto.MAC{0x02, 0, 0, 0, 0, 0xc1}
	// laterMAC is a controller that comes up during a test.
	laterMAC = proto.MAC{0x02, 0, 0, 0, 0, 0xc2}
)

type rig struct {
	sw     *linktest.Switch
	keys   *proto.Keyring
	agent  *agent.Agent
	ep     *proto.Endpoint // the caller (mvctl or a controller)
	client *nodeclient.Client
}

func testKeys(t *testing.T) *proto.Keyring {
	t.Helper()
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// smallHardware is a 2-socket, 4-core, 2-thread node with 16 GiB.
func smallHardware() *inventory.SimHardware {
	hw := inventory.DefaultSimHardware()
	hw.Sockets, hw.CoresPerSocket, hw.ThreadsPerCore, hw.Memory = 2, 4, 2, 16*inventory.GiB
	return &hw
}

func newRig(t *testing.T, edit func(*agent.Config)) *rig {
	t.Helper()
	r := &rig{sw: linktest.NewSwitch(linktest.Config{MTU: 1500}), keys: testKeys(t)}
	t.Cleanup(r.sw.Close)
	cfg := agent.DefaultConfig()
	cfg.Link = r.sw.Link(nodeMAC, proto.EtherTypeControl)
	cfg.Keys = r.keys
	cfg.SimHardware = smallHardware()
	cfg.Location = inventory.Location{Rack: "r1", Chassis: "c2", Blade: "b3"}
	if edit != nil {
		edit(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	r.agent = a
	r.ep = r.endpoint(t, ctlMAC)
	r.client = nodeclient.New(r.ep)
	return r
}

func (r *rig) endpoint(t *testing.T, mac proto.MAC) *proto.Endpoint {
	t.Helper()
	pcfg := proto.DefaultConfig()
	pcfg.Keys = r.keys
	ep, err := proto.NewEndpoint(r.sw.Link(mac, proto.EtherTypeControl), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func spec(id, vcpus int, mib uint64) domain.Spec {
	return domain.Spec{ID: id, VCPUs: vcpus, Memory: mib * domain.MiB}
}

func TestInfoDescribesTheDeclaredNode(t *testing.T) {
	r := newRig(t, nil)
	info, err := r.client.Info(ctx(t), nodeMAC)
	if err != nil {
		t.Fatal(err)
	}
	inv := info.Inventory
	if inv.NodeID != "7a77f9af" || inv.PCPUs() != 16 || inv.Memory != 16*inventory.GiB || len(inv.NUMA) != 2 {
		t.Errorf("inventory: node %s, %d pCPUs, %d bytes, %d NUMA nodes; want 7a77f9af, 16, 16 GiB, 2", inv.NodeID, inv.PCPUs(), inv.Memory, len(inv.NUMA))
	}
	if inv.Hypervisor != "sim" || info.Driver != "sim" || inv.Location.Rack != "r1" || inv.Cores[4].ID != "7a77f9af_4" {
		t.Errorf("hypervisor %q driver %q location %+v core 4 %q", inv.Hypervisor, info.Driver, inv.Location, inv.Cores[4].ID)
	}
	if info.Usage.PCPUs != 16 || info.Usage.Domains != 0 {
		t.Errorf("usage %+v", info.Usage)
	}
}

func TestIdentifyAndDiscoverAnswerBroadcasts(t *testing.T) {
	r := newRig(t, nil)
	replies, err := r.ep.Discover(ctx(t), nodeclient.MethodIdentify, nil, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 || string(replies[0].Payload) != "7a77f9af" {
		t.Fatalf("identify answers %+v, want one saying 7a77f9af", replies)
	}
	if _, err := r.client.Create(ctx(t), nodeMAC, spec(1, 2, 512), true); err != nil {
		t.Fatal(err)
	}
	found, err := r.client.Discover(ctx(t), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Err != nil {
		t.Fatalf("discover: %+v", found)
	}
	want := nodeclient.Summary{NodeID: "7a77f9af", MAC: nodeMAC, Hostname: "sim-7a77f9af", Hypervisor: "sim",
		Location: inventory.Location{Rack: "r1", Chassis: "c2", Blade: "b3"}, PCPUs: 16, Memory: 16 * inventory.GiB,
		Domains: 1, Running: 1, Epoch: r.agent.Endpoint().Epoch()}
	if diff := cmp.Diff(want, found[0].Summary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func TestDomainLifeCycle(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	info, err := r.client.Create(c, nodeMAC, spec(5, 4, 1024), false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "dn5" || info.State != domain.StateDefined || info.Spec.Topology != (domain.Topology{Sockets: 1, Cores: 4, Threads: 1}) {
		t.Errorf("created %+v", info)
	}
	for _, step := range []struct {
		op   domain.Op
		want domain.State
	}{
		{domain.OpStart, domain.StateRunning}, {domain.OpPause, domain.StatePaused}, {domain.OpResume, domain.StateRunning},
		{domain.OpReboot, domain.StateRunning}, {domain.OpShutdown, domain.StateShutoff}, {domain.OpStart, domain.StateRunning},
		{domain.OpDestroy, domain.StateShutoff},
	} {
		info, err := r.client.Do(c, nodeMAC, 5, step.op)
		if err != nil {
			t.Fatalf("%s: %v", step.op, err)
		}
		if info.State != step.want {
			t.Errorf("after %s: %s, want %s", step.op, info.State, step.want)
		}
	}
	if _, err := r.client.Do(c, nodeMAC, 5, domain.OpPause); !errors.Is(err, domain.ErrState) || !strings.Contains(err.Error(), "cannot pause dn5 while shutoff") {
		t.Errorf("pausing a shut-off domain: %v, want ErrState saying why", err)
	}
	con, err := r.client.Console(c, nodeMAC, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(con, []byte("dn5: up")) || !bytes.Contains(con, []byte("dn5: power down")) {
		t.Errorf("console %q lacks the guest's boot and power-down lines", con)
	}
	if _, err := r.client.Do(c, nodeMAC, 5, domain.OpUndefine); err != nil {
		t.Fatal(err)
	}
	doms, err := r.client.List(c, nodeMAC)
	if err != nil || len(doms) != 0 {
		t.Errorf("after undefine: %v %v, want no domains", doms, err)
	}
	if _, err := r.client.Console(c, nodeMAC, 5); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("console of an undefined domain: %v, want ErrNotFound", err)
	}
}

func TestUserErrorsStateTheRuleAndTheNumbers(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	for _, tc := range []struct {
		desc  string
		spec  domain.Spec
		is    error
		words []string
	}{
		{"topology", domain.Spec{ID: 1, VCPUs: 6, Memory: 512 * domain.MiB, Topology: domain.Topology{Sockets: 2, Cores: 2, Threads: 2}},
			domain.ErrTopology, []string{"vcpus 6 ≠ sockets 2 × cores 2 × threads 2 = 8", "VCPU = SOCKETS × CORES × THREADS"}},
		{"memory", spec(2, 2, 20*1024), domain.ErrNoMemory, []string{"dn2 wants 20480 MiB memory", "node 7a77f9af has 16384 MiB"}},
		{"cores", spec(3, 17, 512), domain.ErrNoCPU, []string{"dn3 wants 17 vCPUs", "node 7a77f9af has 16 pCPUs"}},
		{"cpu mode", domain.Spec{ID: 4, VCPUs: 1, Memory: domain.MiB, CPUMode: "fast"}, domain.ErrInvalidSpec, []string{`cpu mode "fast"`}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := r.client.Create(c, nodeMAC, tc.spec, true)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if doms, _ := r.client.List(c, nodeMAC); len(doms) != 0 {
		t.Errorf("refused creates left domains behind: %+v", doms)
	}
}

func TestCreatingAnExistingIDFailsAndKeepsTheFirst(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	if _, err := r.client.Create(c, nodeMAC, spec(7, 2, 512), true); err != nil {
		t.Fatal(err)
	}
	_, err := r.client.Create(c, nodeMAC, spec(7, 4, 2048), true)
	if !errors.Is(err, domain.ErrExists) || !strings.Contains(err.Error(), "dn7 is already defined") {
		t.Fatalf("second create: %v, want ErrExists naming dn7", err)
	}
	doms, err := r.client.List(c, nodeMAC)
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 1 || doms[0].Spec.VCPUs != 2 || doms[0].State != domain.StateRunning {
		t.Errorf("domains after the refused create: %+v, want the first dn7 only, running", doms)
	}
	info, _ := r.client.Info(c, nodeMAC)
	if info.Usage.VCPUs != 2 || info.Usage.Memory-info.Usage.MemoryFree != 512*domain.MiB {
		t.Errorf("ledger holds %d vCPUs and %d bytes, want the first domain's 2 and 512 MiB", info.Usage.VCPUs, info.Usage.Memory-info.Usage.MemoryFree)
	}
}

func TestOlderTermsAreRefused(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	leader := r.client.WithTerm(5)
	if _, err := leader.Create(c, nodeMAC, spec(1, 1, 256), true); err != nil {
		t.Fatal(err)
	}
	old := r.client.WithTerm(4)
	_, err := old.Do(c, nodeMAC, 1, domain.OpDestroy)
	var ne *nodeclient.Error
	if !errors.Is(err, nodeclient.ErrStaleTerm) || !errors.As(err, &ne) || ne.Term != 5 {
		t.Fatalf("term 4 after term 5: %v, want ErrStaleTerm naming term 5", err)
	}
	if !strings.Contains(err.Error(), "term 4 is older than term 5") {
		t.Errorf("error %q does not name both terms", err)
	}
	if _, err := old.Create(c, nodeMAC, spec(2, 1, 256), false); !errors.Is(err, nodeclient.ErrStaleTerm) {
		t.Errorf("create with term 4: %v, want ErrStaleTerm", err)
	}
	if _, err := old.Pin(c, nodeMAC, 1, 0, 3); !errors.Is(err, nodeclient.ErrStaleTerm) {
		t.Errorf("pin with term 4: %v, want ErrStaleTerm", err)
	}
	if _, err := old.Probe(c, nodeMAC); !errors.Is(err, nodeclient.ErrStaleTerm) {
		t.Errorf("probe with term 4: %v, want ErrStaleTerm", err)
	}
	if d, _ := r.client.List(c, nodeMAC); len(d) != 1 || d[0].State != domain.StateRunning {
		t.Errorf("a refused destroy changed the domain: %+v", d)
	}
	// The operator's term 0 passes; a newer leader raises the bar.
	if _, err := r.client.Do(c, nodeMAC, 1, domain.OpPause); err != nil {
		t.Errorf("term 0: %v", err)
	}
	if hb, err := r.client.WithTerm(9).Probe(c, nodeMAC); err != nil || hb.Term != 9 {
		t.Errorf("probe with term 9: %+v %v", hb, err)
	}
	if _, err := leader.Do(c, nodeMAC, 1, domain.OpResume); !errors.Is(err, nodeclient.ErrStaleTerm) {
		t.Errorf("term 5 after term 9: %v, want ErrStaleTerm", err)
	}
}

func TestTermSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, func(c *agent.Config) { c.StateDir = dir })
	if _, err := r.client.WithTerm(7).Probe(ctx(t), nodeMAC); err != nil {
		t.Fatal(err)
	}
	r.agent.Close()
	cfg := agent.DefaultConfig()
	cfg.Link, cfg.Keys, cfg.SimHardware, cfg.StateDir = r.sw.Link(nodeMAC, proto.EtherTypeControl), r.keys, smallHardware(), dir
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := r.client.WithTerm(6).Create(ctx(t), nodeMAC, spec(1, 1, 256), false); !errors.Is(err, nodeclient.ErrStaleTerm) && !errors.Is(err, proto.ErrPeerRestarted) {
		t.Fatalf("term 6 after a restart that saw 7: %v", err)
	} else if errors.Is(err, proto.ErrPeerRestarted) {
		if _, err := r.client.WithTerm(6).Create(ctx(t), nodeMAC, spec(1, 1, 256), false); !errors.Is(err, nodeclient.ErrStaleTerm) {
			t.Fatalf("term 6 after a restart that saw 7: %v", err)
		}
	}
}

func TestPinningAndVCPUInfo(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	if _, err := r.client.Create(c, nodeMAC, spec(3, 2, 512), true); err != nil {
		t.Fatal(err)
	}
	vs, err := r.client.Pin(c, nodeMAC, 3, 1, 13)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || !cmp.Equal(vs[1].Affinity, []int{13}) || vs[1].CPU != 13 {
		t.Errorf("after pinning vCPU 1 to CPU 13: %+v", vs)
	}
	got, err := r.client.VCPUs(c, nodeMAC, 3)
	if err != nil || !cmp.Equal(got[1].Affinity, []int{13}) {
		t.Errorf("vcpu.info: %+v %v", got, err)
	}
	if _, err := r.client.Pin(c, nodeMAC, 3, 2, 0); !errors.Is(err, domain.ErrInvalidSpec) || !strings.Contains(err.Error(), "vCPUs 0-1, not 2") {
		t.Errorf("pinning vCPU 2 of a 2-vCPU domain: %v", err)
	}
	if _, err := r.client.Pin(c, nodeMAC, 3, 0, 99); !errors.Is(err, domain.ErrInvalidSpec) || !strings.Contains(err.Error(), "CPU 99") {
		t.Errorf("pinning to CPU 99: %v", err)
	}
}

func TestShowNUMAMatchesTheSeedsLayout(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	s := domain.Spec{ID: 5, VCPUs: 8, Memory: 8 * 1024 * domain.MiB, Topology: domain.Topology{Sockets: 2, Cores: 4, Threads: 1},
		VNodes: domain.SplitVNodes(8, 8*1024*domain.MiB, 2, []int{0, 1})}
	if _, err := r.client.Create(c, nodeMAC, s, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Create(c, nodeMAC, spec(6, 1, 1024), true); err != nil {
		t.Fatal(err)
	}
	rep, err := r.client.NUMA(c, nodeMAC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := domain.FormatNUMA(&b, "", rep.Domains...); err != nil {
		t.Fatal(err)
	}
	want := `Domain 5 (total: 2097152):
    Node 0: 1048576
    Node 1: 1048576
     2 vnodes, 8 vcpus, guest physical layout:
         0: pnode   0, vcpus 0-3
           0000000000000000 - 00000000bfffffff
           0000000100000000 - 000000013fffffff
         1: pnode   1, vcpus 4-7
           0000000140000000 - 000000023fffffff
Domain 6 (total: 262144):
`
	if got := b.String(); !strings.HasPrefix(got, want) {
		t.Errorf("show numa (-want +got):\n%s", cmp.Diff(want, got))
	}
	one, err := r.client.NUMA(c, nodeMAC, 6)
	if err != nil || len(one.Domains) != 1 || one.Domains[0].TotalPages != 262144 {
		t.Errorf("show numa 6: %+v %v", one, err)
	}
}

func TestCrashesAreReportedAtOnce(t *testing.T) {
	got := make(chan nodeclient.Heartbeat, 16)
	r := newRig(t, func(c *agent.Config) {
		c.Controller = ctlMAC.String()
		c.HeartbeatInterval = agent.Duration(time.Hour) // only the first and the crash's
	})
	nodeclient.HandleHeartbeats(r.ep, func(from proto.MAC, hb nodeclient.Heartbeat) {
		if from == nodeMAC {
			got <- hb
		}
	})
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.agent.Run(runCtx) }()
	defer func() { stop(); <-done }()
	first := recv(t, got)
	if first.Seq != 1 || first.NodeID != "7a77f9af" || first.MaxCPU != 1600 || first.Crashed {
		t.Errorf("first heartbeat %+v", first)
	}
	c := ctx(t)
	if _, err := r.client.Create(c, nodeMAC, spec(9, 2, 1024), true); err != nil {
		t.Fatal(err)
	}
	if err := r.agent.Driver().(*sim.Driver).Crash(9, "guest died: signal: killed"); err != nil {
		t.Fatal(err)
	}
	hb := recv(t, got)
	if !hb.Crashed || hb.AllocCPU != 200 || hb.AllocMemory != 1024*domain.MiB || hb.Running != 0 || !cmp.Equal(hb.Zombies, []string{"dn9"}) {
		t.Errorf("heartbeat after the crash: %+v, want Crashed, dn9 a zombie", hb)
	}
	var crash bool
	for _, e := range hb.Events {
		crash = crash || e.ID == 9 && e.State == domain.StateCrashed && e.Reason == "guest died: signal: killed"
	}
	if !crash {
		t.Errorf("heartbeat events %+v lack dn9's crash", hb.Events)
	}
	info, err := r.client.Info(c, nodeMAC)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(info.Zombies, []string{"dn9"}) || info.Events[len(info.Events)-1].State != domain.StateCrashed {
		t.Errorf("node.info zombies %v events %+v", info.Zombies, info.Events)
	}
	// A domain shut down on request is no zombie.
	if _, err := r.client.Do(c, nodeMAC, 9, domain.OpStart); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Do(c, nodeMAC, 9, domain.OpShutdown); err != nil {
		t.Fatal(err)
	}
	if info, _ := r.client.Info(c, nodeMAC); len(info.Zombies) != 0 {
		t.Errorf("zombies after a requested shutdown: %v", info.Zombies)
	}
}

func recv(t *testing.T, ch <-chan nodeclient.Heartbeat) nodeclient.Heartbeat {
	t.Helper()
	select {
	case hb := <-ch:
		return hb
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat within 10 s")
	}
	return nodeclient.Heartbeat{}
}

func TestWildGuestsAreListedAndImported(t *testing.T) {
	r := newRig(t, nil)
	c := ctx(t)
	r.agent.Driver().(*sim.Driver).AddWild(domain.Wild{PID: 4242, Name: "stray", VCPUs: 2, Memory: 512 * domain.MiB})
	w, err := r.client.Wild(c, nodeMAC)
	if err != nil || len(w) != 1 || w[0].PID != 4242 {
		t.Fatalf("wild: %+v %v", w, err)
	}
	if info, _ := r.client.Info(c, nodeMAC); !cmp.Equal(info.Wild, []string{"4242:stray"}) {
		t.Errorf("node.info wild %v, want [4242:stray]", info.Wild)
	}
	d, err := r.client.Import(c, nodeMAC, 4242, 12)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "dn12" || !d.Imported || d.State != domain.StateRunning {
		t.Errorf("imported %+v", d)
	}
	if w, _ := r.client.Wild(c, nodeMAC); len(w) != 0 {
		t.Errorf("still wild after import: %+v", w)
	}
	if _, err := r.client.Import(c, nodeMAC, 4242, 13); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("importing it twice: %v, want ErrNotFound", err)
	}
}

func TestUndecodableRequestsAreBadRequests(t *testing.T) {
	r := newRig(t, nil)
	_, err := r.ep.Call(ctx(t), nodeMAC, nodeclient.MethodCreate, []byte{0xff, 0x00})
	var re *proto.RemoteError
	if !errors.As(err, &re) || re.Code != proto.CodeBadRequest {
		t.Fatalf("garbage create: %v, want a bad request", err)
	}
	b, _ := cbor.Marshal(nodeclient.OpRequest{ID: 1, Op: 77})
	if _, err := r.ep.Call(ctx(t), nodeMAC, nodeclient.MethodOp, b); !errors.As(err, &re) || re.Code != proto.CodeBadRequest {
		t.Errorf("operation 77: %v, want a bad request", err)
	}
}

func TestMetricsCountRequestsAndEndpointFrames(t *testing.T) {
	r := newRig(t, func(c *agent.Config) { c.MetricsAddr = "127.0.0.1:0" })
	c := ctx(t)
	if _, err := r.client.Create(c, nodeMAC, spec(1, 1, 256), true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Create(c, nodeMAC, spec(1, 1, 256), true); err == nil {
		t.Fatal("second create succeeded")
	}
	addr := r.agent.MetricsAddr()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mvstack_node_rpc_calls_domain_create_total{domain="",node="7a77f9af"} 2`,
		`mvstack_node_rpc_errors_domain_create_total{domain="",node="7a77f9af"} 1`,
		`mvstack_node_domain_ops_start_total{domain="",node="7a77f9af"} 1`,
		`mvstack_proto_frames_in_control_total{domain="",node="7a77f9af"}`,
		`mvstack_proto_drops_auth_total{domain="",node="7a77f9af"} 0`,
		`mvstack_proto_rpc_served_ping_total{domain="",node="7a77f9af"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		desc string
		edit func(*agent.Config)
		want string
	}{
		{"no iface", func(c *agent.Config) {}, "Config.Iface is empty"},
		{"driver", func(c *agent.Config) { c.Iface, c.Driver = "eth0", "xen" }, `Config.Driver "xen"`},
		{"controller", func(c *agent.Config) { c.Iface, c.Controller = "eth0", "ff:ff:ff:ff:ff:ff" }, "not a unicast MAC"},
		{"overcommit", func(c *agent.Config) { c.Iface, c.CPUOvercommit = "eth0", 9 }, "CPUOvercommit 9"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := agent.DefaultConfig()
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestParseSimHardware(t *testing.T) {
	hw, err := agent.ParseSimHardware("2x16x2,256G,4")
	if err != nil {
		t.Fatal(err)
	}
	if hw.Sockets != 2 || hw.CoresPerSocket != 16 || hw.ThreadsPerCore != 2 || hw.Memory != 256*inventory.GiB || len(hw.Disks) != 4 {
		t.Errorf("parsed %+v", hw)
	}
	if _, err := agent.ParseSimHardware("2x16"); err == nil || !strings.Contains(err.Error(), "SOCKETSxCORESxTHREADS") {
		t.Errorf("bad topology: %v", err)
	}
}

func TestZombiesAfterAnUncleanRestart(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, func(c *agent.Config) { c.StateDir = dir })
	if _, err := r.client.Create(ctx(t), nodeMAC, spec(3, 1, 256), true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Create(ctx(t), nodeMAC, spec(4, 1, 256), true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Do(ctx(t), nodeMAC, 4, domain.OpShutdown); err != nil {
		t.Fatal(err)
	}
	r.agent.Close() // as if the process died: no clean shutdown
	restart := func() *agent.Agent {
		cfg := agent.DefaultConfig()
		cfg.Link, cfg.Keys, cfg.SimHardware, cfg.StateDir = r.sw.Link(nodeMAC, proto.EtherTypeControl), r.keys, smallHardware(), dir
		a, err := agent.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := restart()
	if z := a.Zombies(); !cmp.Equal(z, []int{3}) {
		t.Errorf("zombies after the node died with dn3 running and dn4 shut down: %v, want [3]", z)
	}
	// A clean stop of a sim node drops its domains for good.
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b := restart()
	defer b.Close()
	if z := b.Zombies(); len(z) != 0 {
		t.Errorf("zombies after a clean stop: %v, want none", z)
	}
}

func TestHeartbeatsToAnAbsentControllerKeepTheirEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(c *agent.Config) {
			c.Controller = laterMAC.String() // nobody there yet
			c.HeartbeatInterval = agent.Duration(time.Hour)
			c.Tolerance = agent.Duration(100 * time.Millisecond)
		})
		runCtx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.agent.Run(runCtx) }()
		defer func() { stop(); <-done }()
		c := t.Context()
		if _, err := r.client.Create(c, nodeMAC, spec(1, 1, 256), true); err != nil {
			t.Fatal(err)
		}
		if err := r.agent.Driver().(*sim.Driver).Crash(1, "first"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // fake time: both sends time out
		synctest.Wait()
		m, err := r.agent.Perfc().Get("node.heartbeats.failed")
		if err != nil || m.Value < 1 {
			t.Fatalf("failed heartbeats %+v %v, want at least 1", m, err)
		}
		got := make(chan nodeclient.Heartbeat, 4)
		nodeclient.HandleHeartbeats(r.endpoint(t, laterMAC), func(_ proto.MAC, hb nodeclient.Heartbeat) { got <- hb })
		if _, err := r.client.Create(c, nodeMAC, spec(2, 1, 256), true); err != nil {
			t.Fatal(err)
		}
		if err := r.agent.Driver().(*sim.Driver).Crash(2, "second"); err != nil {
			t.Fatal(err)
		}
		hb := <-got
		var reasons []string
		for _, e := range hb.Events {
			if e.State == domain.StateCrashed {
				reasons = append(reasons, e.Reason)
			}
		}
		if !hb.Crashed || !cmp.Equal(reasons, []string{"first", "second"}) {
			t.Errorf("heartbeat after the controller came: crashed %v, crash reasons %q; want both crashes", hb.Crashed, reasons)
		}
	})
}

func TestGuestsAnEarlierRunLaunchedAreZombiesNotWild(t *testing.T) {
	r := newRig(t, nil)
	d := r.agent.Driver().(*sim.Driver)
	d.AddWild(domain.Wild{PID: 100, Name: "dn8", QMP: "/run/mvnode/7a77f9af/dn8/qmp.sock", Launched: true})
	d.AddWild(domain.Wild{PID: 101, Name: "hand-made"})
	info, err := r.client.Info(ctx(t), nodeMAC)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(info.Wild, []string{"101:hand-made"}) || !cmp.Equal(info.Zombies, []string{"dn8"}) {
		t.Errorf("wild %q zombies %q; want the hand-made guest wild and dn8 a zombie", info.Wild, info.Zombies)
	}
}
