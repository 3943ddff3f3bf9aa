package domain_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/proto"
)

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		desc string
		spec domain.Spec
		want error
		msg  string // exact message when set
	}{
		{desc: "default topology", spec: domain.Spec{ID: 1, VCPUs: 4, Memory: 512 * domain.MiB}},
		{desc: "2x2x2", spec: domain.Spec{ID: 1, VCPUs: 8, Topology: domain.Topology{Sockets: 2, Cores: 2, Threads: 2}, Memory: domain.MiB}},
		{
			desc: "topology rule",
			spec: domain.Spec{ID: 3, VCPUs: 6, Topology: domain.Topology{Sockets: 2, Cores: 2, Threads: 1}, Memory: domain.MiB},
			want: domain.ErrTopology,
			msg:  "domain: topology rule broken: dn3: vcpus 6 ≠ sockets 2 × cores 2 × threads 1 = 4; the rule is VCPU = SOCKETS × CORES × THREADS",
		},
		{desc: "id", spec: domain.Spec{ID: 0, VCPUs: 1, Memory: domain.MiB}, want: domain.ErrInvalidSpec},
		{desc: "memory not MiB", spec: domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB + 1}, want: domain.ErrInvalidSpec},
		{desc: "custom needs model", spec: domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB, CPUMode: domain.CPUCustom}, want: domain.ErrInvalidSpec},
		{desc: "custom", spec: domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB, CPUMode: domain.CPUCustom, CPUModel: "Cascadelake-Server-noTSX"}},
		{desc: "bad mode", spec: domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB, CPUMode: "turbo"}, want: domain.ErrInvalidSpec},
		{
			desc: "vnodes memory",
			spec: domain.Spec{ID: 1, VCPUs: 2, Memory: 4 * domain.MiB, VNodes: []domain.VNode{
				{PNode: 0, Memory: domain.MiB, VCPUs: []int{0}}, {PNode: 1, Memory: domain.MiB, VCPUs: []int{1}}}},
			want: domain.ErrInvalidSpec,
			msg:  "domain: invalid spec: dn1: vnodes hold 2 MiB, the domain has 4 MiB",
		},
		{
			desc: "vcpu in two vnodes",
			spec: domain.Spec{ID: 1, VCPUs: 2, Memory: 2 * domain.MiB, VNodes: []domain.VNode{
				{PNode: 0, Memory: domain.MiB, VCPUs: []int{0, 1}}, {PNode: 1, Memory: domain.MiB, VCPUs: []int{1}}}},
			want: domain.ErrInvalidSpec,
		},
		{desc: "disk both", spec: domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB, Disks: []domain.Disk{{NBD: "/a", File: "/b"}}}, want: domain.ErrInvalidSpec},
		{desc: "pin count", spec: domain.Spec{ID: 1, VCPUs: 2, Memory: domain.MiB, Pin: []int{0}}, want: domain.ErrInvalidSpec},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := tt.spec.WithDefaults().Validate()
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message:\n got %s\nwant %s", err, tt.msg)
			}
		})
	}
}

func TestOpAllowed(t *testing.T) {
	type row struct {
		op   domain.Op
		from domain.State
		next domain.State
		ok   bool
	}
	for _, r := range []row{
		{domain.OpStart, domain.StateDefined, domain.StateRunning, true},
		{domain.OpStart, domain.StateCrashed, domain.StateRunning, true},
		{domain.OpStart, domain.StateRunning, domain.StateRunning, false},
		{domain.OpShutdown, domain.StateRunning, domain.StateShutoff, true},
		{domain.OpShutdown, domain.StatePaused, domain.StateShutoff, false},
		{domain.OpDestroy, domain.StatePaused, domain.StateShutoff, true},
		{domain.OpPause, domain.StateRunning, domain.StatePaused, true},
		{domain.OpResume, domain.StatePaused, domain.StateRunning, true},
		{domain.OpResume, domain.StateRunning, domain.StateRunning, false},
		{domain.OpUndefine, domain.StateRunning, 0, false},
		{domain.OpUndefine, domain.StateShutoff, 0, true},
	} {
		next, ok := r.op.Allowed(r.from)
		if ok != r.ok || (ok && next != r.next) {
			t.Errorf("%s from %s = %s, %v; want %s, %v", r.op, r.from, next, ok, r.next, r.ok)
		}
	}
	for _, name := range []string{"start", "shutdown", "destroy", "reboot", "pause", "resume", "undefine"} {
		op, err := domain.ParseOp(name)
		if err != nil || op.String() != name {
			t.Errorf("ParseOp(%q) = %v, %v", name, op, err)
		}
	}
}

// The two "show numa" outputs of seed 003 §2.7.1, with the PDF's stray
// spaces inside dates and ranges removed.
const seedNoVNUMA = `(NEX) [2019-07-16 09:06:58] Domain 6 (total: 8380935):
(NEX) [2019-07-16 09:06:58]     Node 0: 8380667
(NEX) [2019-07-16 09:06:58]     Node 1: 268
`

const seedVNUMA = `(NEX) [2019-07-16 09:10:11] Domain 5 (total: 8384496):
(NEX) [2019-07-16 09:10:11]     Node 0: 4192248
(NEX) [2019-07-16 09:10:11]     Node 1: 4192248
(NEX) [2019-07-16 09:10:11]      2 vnodes, 32 vcpus, guest physical layout:
(NEX) [2019-07-16 09:10:11]          0: pnode   0, vcpus 0-15
(NEX) [2019-07-16 09:10:11]            0000000000000000 - 00000003ffffffff
(NEX) [2019-07-16 09:10:11]          1: pnode   1, vcpus 16-31
(NEX) [2019-07-16 09:10:11]            0000000400000000 - 000000080fffffff
`

func seq(lo, hi int) []int {
	var s []int
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestFormatNUMAMatchesSeed(t *testing.T) {
	tests := []struct {
		desc string
		at   time.Time
		info domain.NUMAInfo
		want string
	}{
		{
			desc: "without vNUMA",
			at:   time.Date(2019, 7, 16, 9, 6, 58, 0, time.UTC),
			info: domain.NUMAInfo{ID: 6, TotalPages: 8380935, Nodes: []uint64{8380667, 268}, VCPUs: 32},
			want: seedNoVNUMA,
		},
		{
			desc: "with vNUMA",
			at:   time.Date(2019, 7, 16, 9, 10, 11, 0, time.UTC),
			info: domain.NUMAInfo{ID: 5, TotalPages: 8384496, Nodes: []uint64{4192248, 4192248}, VCPUs: 32,
				VNodes: []domain.VNodeLayout{
					{PNode: 0, VCPUs: seq(0, 15), Ranges: []domain.Range{{Start: 0, End: 0x3ffffffff}}},
					{PNode: 1, VCPUs: seq(16, 31), Ranges: []domain.Range{{Start: 0x400000000, End: 0x80fffffff}}},
				}},
			want: seedVNUMA,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var b bytes.Buffer
			if err := domain.FormatNUMA(&b, domain.ConsolePrefix(tt.at), tt.info); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("FormatNUMA (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLayoutFollowsQEMUPCHole(t *testing.T) {
	tests := []struct {
		desc string
		spec domain.Spec
		want []domain.VNodeLayout
	}{
		{
			desc: "small guest below 4 GiB, 2 vnodes",
			spec: domain.Spec{ID: 1, VCPUs: 2, Memory: 512 * domain.MiB, VNodes: domain.SplitVNodes(2, 512*domain.MiB, 2, []int{0, 1})},
			want: []domain.VNodeLayout{
				{PNode: 0, VCPUs: []int{0}, Ranges: []domain.Range{{0, 0x0fffffff}}},
				{PNode: 1, VCPUs: []int{1}, Ranges: []domain.Range{{0x10000000, 0x1fffffff}}},
			},
		},
		{
			desc: "32 GiB, 2 vnodes: lowmem ends at 3 GiB, the rest from 4 GiB",
			spec: domain.Spec{ID: 5, VCPUs: 32, Memory: 32 << 30, VNodes: domain.SplitVNodes(32, 32<<30, 2, []int{0, 1})},
			want: []domain.VNodeLayout{
				{PNode: 0, VCPUs: seq(0, 15), Ranges: []domain.Range{{0, 0xbfffffff}, {0x100000000, 0x43fffffff}}},
				{PNode: 1, VCPUs: seq(16, 31), Ranges: []domain.Range{{0x440000000, 0x83fffffff}}},
			},
		},
		{
			desc: "no vNUMA",
			spec: domain.Spec{ID: 1, VCPUs: 2, Memory: 4 << 30},
			want: []domain.VNodeLayout{
				{PNode: -1, VCPUs: []int{0, 1}, Ranges: []domain.Range{{0, 0xbfffffff}, {0x100000000, 0x13fffffff}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, domain.Layout(tt.spec)); diff != "" {
				t.Errorf("Layout (-want +got):\n%s", diff)
			}
		})
	}
}

func simInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	mac, _ := proto.ParseMAC("0c:c4:7a:77:f9:af")
	inv, err := inventory.Simulated(mac, inventory.DefaultSimHardware(), inventory.Location{Rack: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestLedgerErrorsCarryNumbers(t *testing.T) {
	l, err := domain.NewLedger(simInventory(t), domain.LedgerConfig{CPUOvercommit: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc string
		spec domain.Spec
		want error
		msg  string
	}{
		{
			desc: "more vCPUs than pCPUs",
			spec: domain.Spec{ID: 7, VCPUs: 65, Memory: domain.MiB},
			want: domain.ErrNoCPU,
			msg:  "domain: dn7 wants 65 vCPUs, node 7a77f9af has 64 pCPUs",
		},
		{
			desc: "more memory than the node",
			spec: domain.Spec{ID: 8, VCPUs: 1, Memory: 300 << 30},
			want: domain.ErrNoMemory,
			msg:  "domain: dn8 wants 307200 MiB memory, node 7a77f9af has 262144 MiB, 262144 MiB free",
		},
		{
			desc: "vnode larger than its NUMA node",
			spec: domain.Spec{ID: 9, VCPUs: 2, Memory: 200 << 30, VNodes: []domain.VNode{
				{PNode: 0, Memory: 160 << 30, VCPUs: []int{0}}, {PNode: 1, Memory: 40 << 30, VCPUs: []int{1}}}},
			want: domain.ErrNoMemory,
			msg:  "domain: dn9 wants 163840 MiB memory on NUMA node 0, node 7a77f9af has 131072 MiB there, 131072 MiB free",
		},
		{
			desc: "vnode on a missing NUMA node",
			spec: domain.Spec{ID: 10, VCPUs: 1, Memory: domain.MiB, VNodes: []domain.VNode{{PNode: 2, Memory: domain.MiB, VCPUs: []int{0}}}},
			want: domain.ErrInvalidSpec,
		},
		{
			desc: "pin on a missing CPU",
			spec: domain.Spec{ID: 11, VCPUs: 1, Memory: domain.MiB, Pin: []int{64}},
			want: domain.ErrInvalidSpec,
			msg:  "domain: invalid spec: dn11: vCPU 0 pinned to CPU 64, node 7a77f9af has CPUs 0-63",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := l.Reserve(tt.spec.WithDefaults())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Reserve() = %v, want %v", err, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message:\n got %s\nwant %s", err, tt.msg)
			}
		})
	}
	if u := l.Usage(); u.VCPUs != 0 || u.MemoryFree != u.Memory || u.Domains != 0 {
		t.Errorf("failed reservations left %+v held", u)
	}

	// Overcommit 1: 64 slots. Fill 60, then ask 8.
	if _, err := l.Reserve(domain.Spec{ID: 1, VCPUs: 60, Memory: domain.MiB}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	_, err = l.Reserve(domain.Spec{ID: 2, VCPUs: 8, Memory: domain.MiB}.WithDefaults())
	const want = "domain: dn2 wants 8 vCPUs, node 7a77f9af has 64 pCPUs × overcommit 1 = 64 vCPU slots, 4 free"
	if !errors.Is(err, domain.ErrNoCPU) || err.Error() != want {
		t.Errorf("Reserve over the slots = %v, want %s", err, want)
	}
	var re *domain.ResourceError
	if !errors.As(err, &re) || re.Want != 8 || re.Free != 4 {
		t.Errorf("ResourceError = %+v", re)
	}
	if _, err := l.Reserve(domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB}.WithDefaults()); !errors.Is(err, domain.ErrExists) {
		t.Errorf("Reserve of an existing id = %v, want ErrExists", err)
	}
	l.Release(1)
	if u := l.Usage(); u.VCPUs != 0 || u.MemoryFree != u.Memory {
		t.Errorf("after release: %+v", u)
	}
}

func TestLedgerDiskHeldOnce(t *testing.T) {
	l, _ := domain.NewLedger(simInventory(t), domain.DefaultLedgerConfig())
	disk := []domain.Disk{{File: "/var/lib/a.img"}}
	if _, err := l.Reserve(domain.Spec{ID: 1, VCPUs: 1, Memory: domain.MiB, Disks: disk}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(domain.Spec{ID: 2, VCPUs: 1, Memory: domain.MiB, Disks: disk}.WithDefaults()); !errors.Is(err, domain.ErrDiskBusy) {
		t.Errorf("second writer = %v, want ErrDiskBusy", err)
	}
	ro := []domain.Disk{{File: "/var/lib/a.img", ReadOnly: true}}
	if _, err := l.Reserve(domain.Spec{ID: 3, VCPUs: 1, Memory: domain.MiB, Disks: ro}.WithDefaults()); err != nil {
		t.Errorf("read-only user = %v", err)
	}
}

func TestLedgerPlacesMemoryAndAffinity(t *testing.T) {
	l, _ := domain.NewLedger(simInventory(t), domain.DefaultLedgerConfig())
	// Pinned to CPU 20 (NUMA node 1 on the default hardware): memory goes there.
	p, err := l.Reserve(domain.Spec{ID: 1, VCPUs: 1, Memory: 8 << 30, Pin: []int{20}}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{0, 8 << 30}, p.Memory); diff != "" {
		t.Errorf("memory by node (-want +got):\n%s", diff)
	}
	// Larger than one node: split, freest first.
	p, err = l.Reserve(domain.Spec{ID: 2, VCPUs: 2, Memory: 200 << 30}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{128 << 30, 72 << 30}, p.Memory); diff != "" {
		t.Errorf("split memory (-want +got):\n%s", diff)
	}
	if err := l.Pin(2, 1, 63); err != nil {
		t.Fatal(err)
	}
	p, _ = l.Placement(2)
	if diff := cmp.Diff([]int{63}, p.Affinity[1]); diff != "" {
		t.Errorf("affinity after pin (-want +got):\n%s", diff)
	}
	if err := l.Pin(2, 2, 0); !errors.Is(err, domain.ErrInvalidSpec) {
		t.Errorf("pin of vCPU 2 of a 2-vCPU domain = %v", err)
	}
}

func TestSpecCBORRoundTrip(t *testing.T) {
	mac, _ := proto.ParseMAC("52:54:00:12:34:56")
	in := domain.Spec{ID: 5, VCPUs: 4, Topology: domain.Topology{Sockets: 2, Cores: 2, Threads: 1}, Memory: 1 << 30,
		VNodes: domain.SplitVNodes(4, 1<<30, 2, []int{0, 1}), CPUMode: domain.CPUHostModel,
		Disks: []domain.Disk{{NBD: "/run/mvnode/v1.sock"}}, NICs: []domain.NIC{{MAC: mac, Tap: "tap5"}}}
	info := domain.Info{ID: 5, Name: "dn5", State: domain.StateCrashed, Spec: in, PID: 42, Reason: "killed"}
	b, err := cbor.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var out domain.Info
	if err := cbor.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(info, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestZombies(t *testing.T) {
	have := []domain.Info{{ID: 1, State: domain.StateRunning}, {ID: 2, State: domain.StateCrashed}, {ID: 3, State: domain.StatePaused}}
	if diff := cmp.Diff([]int{2, 4}, domain.Zombies([]int{1, 2, 3, 4}, have)); diff != "" {
		t.Errorf("Zombies (-want +got):\n%s", diff)
	}
}

func TestNames(t *testing.T) {
	if got := domain.DeviceName(0) + domain.DeviceName(25) + domain.DeviceName(26); got != "vdavdzvdaa" {
		t.Errorf("device names = %s", got)
	}
	if id, err := domain.ParseName("dn42"); err != nil || id != 42 {
		t.Errorf("ParseName(dn42) = %d, %v", id, err)
	}
	if _, err := domain.ParseName("vm42"); err == nil {
		t.Error("ParseName(vm42) accepted")
	}
}
