package netns_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// nodeLab is a lab whose host 0 runs mvctl and whose other hosts run
// mvnode.
type nodeLab struct {
	lab  *netns.Lab
	bin  map[string]string
	key  string
	ctl  *netns.Host
	tol  string // mvctl --tolerance
	mvnd map[*netns.Host]*netns.Process
}

func newNodeLab(t *testing.T, hosts int) *nodeLab {
	t.Helper()
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: hosts, MTU: 1500})
	bin := netns.BuildBinaries(t, "./cmd/mvnode", "./cmd/mvctl")
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := proto.WriteKeyFile(key, k); err != nil {
		t.Fatal(err)
	}
	nl := &nodeLab{lab: lab, bin: bin, key: key, ctl: lab.Hosts[0], tol: "1s", mvnd: map[*netns.Host]*netns.Process{}}
	// The node commands exist only once cmd/mvctl/app.go registers them.
	if out, err := nl.ctl.Run(t.Context(), bin["mvctl"], "info", "--help"); err != nil || !strings.Contains(out, "--mvmac") {
		t.Fatalf("mvctl has no 'info' command: cmd/mvctl/app.go must register nodeCommands() (see docs/node-daemon.md):\n%s", out)
	}
	return nl
}

// startNode runs mvnode on h and waits for its ready line.
func (nl *nodeLab) startNode(t *testing.T, ctx context.Context, h *netns.Host, args ...string) *netns.Process {
	t.Helper()
	p := h.Start(t, nl.bin["mvnode"], append([]string{"--iface", h.Iface, "--key", nl.key, "--log-level", "warn"}, args...)...)
	if err := p.WaitOutput(ctx, "answering on"); err != nil {
		t.Fatal(err)
	}
	nl.mvnd[h] = p
	return p
}

// mvctl runs mvctl on the control host against node h.
func (nl *nodeLab) mvctl(ctx context.Context, h *netns.Host, args ...string) (string, error) {
	// Flags first: urfave/cli stops at the first argument (show numa 5).
	cmd := args[:1]
	if args[0] == "show" {
		cmd, args = args[:2], args[1:]
	}
	full := append(append([]string{}, cmd...), "--iface", nl.ctl.Iface, "--key", nl.key, "--tolerance", nl.tol)
	if h != nil {
		full = append(full, "--mvmac", h.MAC.String())
	}
	return nl.ctl.Run(ctx, nl.bin["mvctl"], append(full, args[1:]...)...)
}

func (nl *nodeLab) must(t *testing.T, ctx context.Context, h *netns.Host, args ...string) string {
	t.Helper()
	out, err := nl.mvctl(ctx, h, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mustFail runs a command that must fail and returns what it said.
func (nl *nodeLab) mustFail(t *testing.T, ctx context.Context, h *netns.Host, args ...string) string {
	t.Helper()
	out, err := nl.mvctl(ctx, h, args...)
	if err == nil {
		t.Fatalf("mvctl %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func wantIn(t *testing.T, what, out string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, out)
		}
	}
}

// TestSimNodesAnswerMvctl: four simulated nodes on one segment, found by
// discover and driven by mvctl as an operator would.
func TestSimNodesAnswerMvctl(t *testing.T) {
	nl := newNodeLab(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	nodes := nl.lab.Hosts[1:]
	for i, h := range nodes {
		nl.startNode(t, ctx, h, "--driver", "sim", "--sim-hardware", "2x16x2,256G,4",
			"--rack", "r1", "--chassis", "c1", "--blade", fmt.Sprintf("b%d", i+1), "--state-dir", t.TempDir())
	}

	// Every node is listed within a 1 s discovery window.
	out := nl.must(t, ctx, nil, "discover", "--window", "1s")
	for _, h := range nodes {
		wantIn(t, "discover", out, h.MAC.NodeID())
	}
	wantIn(t, "discover", out, "4 node(s) answered")

	n := nodes[0]
	info := nl.must(t, ctx, n, "info")
	wantIn(t, "info", info, n.MAC.NodeID(), "2 sockets × 16 cores × 2 threads = 64 pCPUs", "rack r1, chassis c1, blade b1", "numa 1")

	// A 4-vCPU, 2-vnode domain: created, started, listed, its console.
	nl.must(t, ctx, n, "create", "--id", "5", "--vcpus", "4", "--sockets", "2", "--cores", "2", "--threads", "1",
		"--memory", "8G", "--vnuma", "2", "--start")
	wantIn(t, "domains", nl.must(t, ctx, n, "domains"), "dn5", "running", "2x2x1", "8192 MiB")
	wantIn(t, "console", nl.must(t, ctx, n, "console", "5"), "dn5: up")
	numa := nl.must(t, ctx, n, "show", "numa", "5")
	wantIn(t, "show numa", numa, "(NEX) [", "Domain 5 (total: 2097152):", "Node 0: 1048576", "Node 1: 1048576",
		"2 vnodes, 4 vcpus, guest physical layout:", "0: pnode   0, vcpus 0-1", "1: pnode   1, vcpus 2-3")

	// Pinning, read back.
	nl.must(t, ctx, n, "vcpu-pin", "-d", "5", "-v", "1", "-c", "33")
	var vcpus []domain.VCPUInfo
	if err := json.Unmarshal([]byte(nl.must(t, ctx, n, "vcpuinfo", "--json", "5")), &vcpus); err != nil {
		t.Fatal(err)
	}
	if len(vcpus) != 4 || len(vcpus[1].Affinity) != 1 || vcpus[1].Affinity[0] != 33 {
		t.Errorf("vCPU 1 after pinning to 33: %+v", vcpus)
	}

	// The MicroVisor CLI's own spelling: global options, no command.
	out, err := nl.ctl.Run(ctx, nl.bin["mvctl"], "--iface", nl.ctl.Iface, "--key", nl.key, "--mvmac", n.MAC.String(),
		"--vcpu-pin", "-d", "5", "-v", "2", "-c", "40")
	if err != nil {
		t.Fatal(err)
	}
	out, err = nl.ctl.Run(ctx, nl.bin["mvctl"], "--iface", nl.ctl.Iface, "--key", nl.key, "--mvmac", n.MAC.String(), "--vcpuinfo", "5")
	if err != nil {
		t.Fatal(err)
	}
	wantIn(t, "--vcpuinfo", out, "dn5   5   1     33", "dn5   5   2     40")

	// What an operator gets wrong, and what the node says.
	wantIn(t, "topology error", nl.mustFail(t, ctx, n, "create", "--id", "6", "--vcpus", "3", "--sockets", "2", "--cores", "2", "--threads", "1"),
		"vcpus 3 ≠ sockets 2 × cores 2 × threads 1 = 4", "VCPU = SOCKETS × CORES × THREADS")
	wantIn(t, "memory error", nl.mustFail(t, ctx, n, "create", "--id", "6", "--memory", "300G"),
		"dn6 wants 307200 MiB memory", "node "+n.MAC.NodeID()+" has 262144 MiB")
	wantIn(t, "cores error", nl.mustFail(t, ctx, n, "create", "--id", "6", "--vcpus", "65"),
		"dn6 wants 65 vCPUs", "has 64 pCPUs")
	wantIn(t, "create twice", nl.mustFail(t, ctx, n, "create", "--id", "5", "--start"), "dn5 is already defined")
	if doms := nl.must(t, ctx, n, "domains"); strings.Count(doms, "dn") != 1 {
		t.Errorf("refused creates left domains behind:\n%s", doms)
	}

	// Life cycle through the CLI.
	wantIn(t, "stop", nl.must(t, ctx, n, "stop", "5"), "dn5 shutoff")
	wantIn(t, "start", nl.must(t, ctx, n, "start", "-d", "5"), "dn5 running")
	wantIn(t, "destroy", nl.must(t, ctx, n, "destroy", "dn5"), "dn5 shutoff")

	// A MAC where nothing answers.
	nobody := proto.MAC{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}
	start := time.Now()
	out, err = nl.ctl.Run(ctx, nl.bin["mvctl"], "info", "--iface", nl.ctl.Iface, "--key", nl.key, "--tolerance", nl.tol, "--mvmac", nobody.String())
	took := time.Since(start)
	if err == nil {
		t.Fatalf("info at an unknown MAC succeeded:\n%s", out)
	}
	wantIn(t, "unknown MAC", out, fmt.Sprintf("no node answered at MAC %s on %s within 1s", nobody, nl.ctl.Iface))
	t.Logf("unknown MAC reported after %v (tolerance %s)", took.Round(time.Millisecond), nl.tol)

	// SIGTERM: a clean exit.
	if err := nl.mvnd[n].Stop(ctx); err != nil {
		t.Errorf("mvnode did not exit cleanly on SIGTERM: %v", err)
	}
	wantIn(t, "mvnode's output", nl.mvnd[n].Output(), "stopped")
}
