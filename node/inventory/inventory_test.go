package inventory_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/proto"
)

func mustMAC(t testing.TB, s string) proto.MAC {
	t.Helper()
	m, err := proto.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSimulatedTwoSocketServer(t *testing.T) {
	inv, err := inventory.Simulated(mustMAC(t, "0c:c4:7a:77:f9:af"), inventory.DefaultSimHardware(),
		inventory.Location{Rack: "r1", Chassis: "c2", Blade: "b3"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.NodeID != "7a77f9af" || inv.Hypervisor != "sim" || inv.PCPUs() != 64 || inv.Memory != 256*inventory.GiB {
		t.Errorf("node %s hypervisor %s pcpus %d memory %d", inv.NodeID, inv.Hypervisor, inv.PCPUs(), inv.Memory)
	}
	if len(inv.NUMA) != 2 || inv.NUMA[0].Memory != 128*inventory.GiB || !cmp.Equal(inv.NUMA[1].Distances, []int{21, 10}) {
		t.Errorf("NUMA %+v", inv.NUMA)
	}
	// cpu 4 is core 4 of socket 0, thread 0; its sibling is cpu 36.
	want := inventory.Core{ID: "7a77f9af_4", Index: 4, NUMANode: 0, Socket: 0, Core: 4, Siblings: []int{4, 36}}
	if diff := cmp.Diff(want, inv.Cores[4]); diff != "" {
		t.Errorf("core 4 (-want +got):\n%s", diff)
	}
	want = inventory.Core{ID: "7a77f9af_52", Index: 52, NUMANode: 1, Socket: 1, Core: 4, Siblings: []int{20, 52}}
	if diff := cmp.Diff(want, inv.Cores[52]); diff != "" {
		t.Errorf("core 52 (-want +got):\n%s", diff)
	}
	if len(inv.NUMA[0].CPUs) != 32 || len(inv.Disks) != 4 || inv.Disks[0].Kind != "nvme" {
		t.Errorf("node 0 cpus %d, disks %+v", len(inv.NUMA[0].CPUs), inv.Disks)
	}
	if !inv.CPU.HasFlag("avx2") || inv.CPU.Sockets != 2 || inv.CPU.ThreadsPerCore != 2 {
		t.Errorf("cpu %+v", inv.CPU)
	}
	if inv.Location.Blade != "b3" || inv.NICs[0].MAC != inv.MAC {
		t.Errorf("location %+v, nic %+v", inv.Location, inv.NICs[0])
	}
}

func TestSimHardwareValidate(t *testing.T) {
	h := inventory.DefaultSimHardware()
	h.NUMANodes = 3
	if err := h.Validate(); !errors.Is(err, inventory.ErrBadHardware) {
		t.Errorf("3 NUMA nodes over 32 cores: %v", err)
	}
	h = inventory.DefaultSimHardware()
	h.ThreadsPerCore = 0
	if err := h.Validate(); !errors.Is(err, inventory.ErrBadHardware) {
		t.Errorf("0 threads: %v", err)
	}
	cfg := inventory.DefaultConfig()
	if _, err := inventory.Probe(cfg); !errors.Is(err, inventory.ErrConfig) {
		t.Errorf("Probe without a MAC: %v", err)
	}
}

// writeTree makes a fake /proc and /sys of a 1-socket, 2-core, 2-thread
// machine with 2 NUMA nodes, an NVMe drive, a loop device and two NICs.
func writeTree(t *testing.T) (proc, sys string) {
	root := t.TempDir()
	proc, sys = filepath.Join(root, "proc"), filepath.Join(root, "sys")
	files := map[string]string{
		"proc/meminfo":                           "MemTotal:       8388608 kB\nMemFree:        4000000 kB\n",
		"proc/cpuinfo":                           cpuinfo(0) + cpuinfo(1) + cpuinfo(2) + cpuinfo(3),
		"sys/devices/system/node/node0/cpulist":  "0,2\n",
		"sys/devices/system/node/node0/distance": "10 20\n",
		"sys/devices/system/node/node0/meminfo":  "Node 0 MemTotal:        4194304 kB\nNode 0 MemFree: 1 kB\n",
		"sys/devices/system/node/node1/cpulist":  "1,3\n",
		"sys/devices/system/node/node1/distance": "20 10\n",
		"sys/devices/system/node/node1/meminfo":  "Node 1 MemTotal:        4194304 kB\n",
		"sys/block/nvme0n1/size":                 "3125627568\n",
		"sys/block/nvme0n1/device/model":         "Samsung SSD 970 EVO\n",
		"sys/block/nvme0n1/queue/rotational":     "0\n",
		"sys/block/loop0/size":                   "0\n",
		"sys/class/net/eth0/address":             "0c:c4:7a:77:f9:af\n",
		"sys/class/net/eth0/mtu":                 "9000\n",
		"sys/class/net/eth0/speed":               "10000\n",
		"sys/class/net/eth0/device/vendor":       "0x8086\n",
		"sys/class/net/veth1/address":            "02:00:00:00:00:01\n",
		"sys/class/net/veth1/mtu":                "1500\n",
		"sys/class/net/lo/address":               "00:00:00:00:00:00\n",
	}
	// cpu n: core n/2... no: threads 0,2 share core 0 and 1,3 share core 1.
	for n, sib := range []string{"0,2", "1,3", "0,2", "1,3"} {
		d := filepath.Join("sys/devices/system/cpu", "cpu"+string(rune('0'+n)), "topology")
		files[d+"/core_id"] = string(rune('0'+n%2)) + "\n"
		files[d+"/physical_package_id"] = "0\n"
		files[d+"/thread_siblings_list"] = sib + "\n"
		files[d+"/core_siblings_list"] = "0-3\n"
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return proc, sys
}

func cpuinfo(n int) string {
	return "processor\t: " + string(rune('0'+n)) + "\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n" +
		"model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\ncpu MHz\t\t: 2100.000\nphysical id\t: 0\n" +
		"flags\t\t: fpu vme sse2 avx2 vmx\n\n"
}

func TestProbeReadsProcAndSys(t *testing.T) {
	proc, sys := writeTree(t)
	img := filepath.Join(t.TempDir(), "drive0.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := inventory.Config{MAC: mustMAC(t, "0cc47a77f9af"), Hypervisor: inventory.HypervisorQEMUTCG,
		ProcPath: proc, SysPath: sys, DriveFiles: []string{img}, Location: inventory.Location{Rack: "r9"}}
	inv, err := inventory.Probe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv.Hostname, inv.Arch = "", ""
	want := &inventory.Inventory{
		NodeID: "7a77f9af", MAC: cfg.MAC, Hypervisor: "qemu-tcg",
		CPU: inventory.CPU{Vendor: "GenuineIntel", Model: "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", MHz: 2100,
			Flags: []string{"fpu", "vme", "sse2", "avx2", "vmx"}, Sockets: 1, CoresPerSocket: 2, ThreadsPerCore: 2},
		Cores: []inventory.Core{
			{ID: "7a77f9af_0", Index: 0, NUMANode: 0, Core: 0, Siblings: []int{0, 2}},
			{ID: "7a77f9af_1", Index: 1, NUMANode: 1, Core: 1, Siblings: []int{1, 3}},
			{ID: "7a77f9af_2", Index: 2, NUMANode: 0, Core: 0, Siblings: []int{0, 2}},
			{ID: "7a77f9af_3", Index: 3, NUMANode: 1, Core: 1, Siblings: []int{1, 3}},
		},
		NUMA: []inventory.NUMANode{
			{ID: 0, Memory: 4 * inventory.GiB, CPUs: []int{0, 2}, Distances: []int{10, 20}},
			{ID: 1, Memory: 4 * inventory.GiB, CPUs: []int{1, 3}, Distances: []int{20, 10}},
		},
		Memory: 8 * inventory.GiB,
		Disks: []inventory.Disk{
			{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 3125627568 * 512, Model: "Samsung SSD 970 EVO", Kind: "nvme"},
			{Name: "drive0.img", Path: img, Size: 4096, Kind: "file"},
		},
		NICs: []inventory.NIC{
			{Name: "eth0", MAC: mustMAC(t, "0c:c4:7a:77:f9:af"), MTU: 9000, Speed: 10000},
			{Name: "veth1", MAC: mustMAC(t, "02:00:00:00:00:01"), MTU: 1500, Virtual: true},
		},
		Location: inventory.Location{Rack: "r9"},
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("Probe (-want +got):\n%s", diff)
	}
}

func TestProbeThisMachine(t *testing.T) {
	cfg := inventory.DefaultConfig()
	cfg.MAC = mustMAC(t, "02:00:00:00:00:01")
	inv, err := inventory.Probe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if inv.PCPUs() == 0 || inv.Memory == 0 || len(inv.NUMA) == 0 || inv.Arch == "" {
		t.Errorf("probe of this machine: pcpus %d memory %d numa %d arch %q", inv.PCPUs(), inv.Memory, len(inv.NUMA), inv.Arch)
	}
}

func TestEncodingsRoundTrip(t *testing.T) {
	inv, _ := inventory.Simulated(mustMAC(t, "0c:c4:7a:77:f9:af"), inventory.DefaultSimHardware(), inventory.Location{Rack: "r1"})
	b, err := inv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got inventory.Inventory
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inv, &got); diff != "" {
		t.Errorf("CBOR round trip (-want +got):\n%s", diff)
	}
	j, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	var gotJ inventory.Inventory
	if err := json.Unmarshal(j, &gotJ); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inv, &gotJ); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	if err := got.UnmarshalBinary(b[:len(b)/2]); err == nil {
		t.Error("truncated CBOR decoded")
	}
}

func TestCPUList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []int
	}{
		{"0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}},
		{"5", []int{5}},
		{"", nil},
	} {
		got, err := inventory.ParseCPUList(tt.in)
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v", tt.in, got, err)
		}
	}
	if _, err := inventory.ParseCPUList("3-1"); err == nil {
		t.Error("3-1 accepted")
	}
	if got := inventory.FormatCPUList([]int{0, 1, 2, 3, 8, 10, 11}); got != "0-3,8,10-11" {
		t.Errorf("FormatCPUList = %s", got)
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	inv, _ := inventory.Simulated(proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}, inventory.DefaultSimHardware(), inventory.Location{Rack: "r1"})
	b, _ := inv.MarshalBinary()
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a inventory.Inventory
		if err := a.UnmarshalBinary(b); err != nil {
			return
		}
		b2, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var c inventory.Inventory
		if err := c.UnmarshalBinary(b2); err != nil {
			t.Fatal(err)
		}
		// An empty list and no list are the same inventory: CBOR's [] may
		// come back as nil.
		if !cmp.Equal(a, c, cmpopts.EquateEmpty()) {
			t.Errorf("round trip changed the value:\n%s", cmp.Diff(a, c, cmpopts.EquateEmpty()))
		}
	})
}
