package ethnodes_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/controller/ethnodes"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

var mac = proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}

func TestControllerInventoryConversion(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		desc string
		in   inventory.Inventory
		want state.Inventory
	}{
		{
			desc: "two NUMA nodes, cores listed apart and out of order, units to MiB",
			in: inventory.Inventory{
				NodeID: "7a77f9af", MAC: mac, Hostname: "n1", Arch: "x86_64", Hypervisor: "sim",
				CPU: inventory.CPU{Vendor: "GenuineIntel", Model: "Xeon", MHz: 2099.6, Flags: []string{"avx2", "vmx"},
					Sockets: 2, CoresPerSocket: 1, ThreadsPerCore: 2},
				Cores: []inventory.Core{
					{ID: "7a77f9af_3", Index: 3, NUMANode: 1}, {ID: "7a77f9af_0", Index: 0, NUMANode: 0},
					{ID: "7a77f9af_1", Index: 1, NUMANode: 1}, {ID: "7a77f9af_2", Index: 2, NUMANode: 0},
				},
				NUMA: []inventory.NUMANode{
					{ID: 1, Memory: 8 * gib, CPUs: []int{1, 3}, Distances: []int{21, 10}},
					{ID: 0, Memory: 8 * gib, CPUs: []int{0, 2}, Distances: []int{10, 21}},
				},
				Memory: 16*gib + 512<<10, // half a MiB over: rounded down
				Disks: []inventory.Disk{
					{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 1600e9, Model: "simulated", Kind: "nvme"},
					{Name: "sda", Path: "/dev/sda", Size: 4 * gib, Model: "WD", Kind: "hdd"},
				},
				NICs:     []inventory.NIC{{Name: "eth0", MAC: mac, MTU: 9000, Speed: 10000}, {Name: "veth1", MAC: mac, MTU: 1500, Speed: -1, Virtual: true}},
				Location: inventory.Location{Rack: "r1", Chassis: "c2", Blade: "b3"},
			},
			want: state.Inventory{
				Hostname: "n1", Arch: "x86_64", Hypervisor: "sim",
				CPU: state.CPU{Vendor: "GenuineIntel", Model: "Xeon", MHz: 2100, Features: []string{"avx2", "vmx"}},
				NUMA: []state.NUMA{
					{ID: 0, Cores: []uint32{0, 2}, MemoryMB: 8192, Distances: []uint32{10, 21}},
					{ID: 1, Cores: []uint32{1, 3}, MemoryMB: 8192, Distances: []uint32{21, 10}},
				},
				MemoryMB: 16384,
				Disks: []state.Disk{
					{ID: "7a77f9af_nvme0n1", Name: "nvme0n1", Model: "simulated", SizeMB: 1525878},
					{ID: "7a77f9af_sda", Name: "sda", Model: "WD", SizeMB: 4096, Rotational: true},
				},
				NICs:     []state.NIC{{Name: "eth0", MAC: mac, SpeedMbps: 10000, MTU: 9000}, {Name: "veth1", MAC: mac, MTU: 1500}},
				Location: state.Location{Rack: "r1", Chassis: "c2", Blade: "b3"},
			},
		},
		{
			desc: "no NUMA list: one node 0 with every core and all the memory; node id from the MAC",
			in: inventory.Inventory{
				MAC:    mac,
				CPU:    inventory.CPU{MHz: -5},
				Cores:  []inventory.Core{{Index: 1}, {Index: 0}},
				Memory: 2 * gib,
				Disks:  []inventory.Disk{{Name: "d0", Size: mib(3)}},
			},
			want: state.Inventory{
				NUMA:     []state.NUMA{{ID: 0, Cores: []uint32{0, 1}, MemoryMB: 2048, Distances: []uint32{10}}},
				MemoryMB: 2048,
				Disks:    []state.Disk{{ID: "7a77f9af_d0", Name: "d0", SizeMB: 3}},
			},
		},
		{
			desc: "a core on a NUMA node the list lacks still shows, without memory",
			in: inventory.Inventory{
				NodeID: "x",
				Cores:  []inventory.Core{{Index: 0, NUMANode: 0}, {Index: 1, NUMANode: 2}},
				NUMA:   []inventory.NUMANode{{ID: 0, Memory: mib(100)}},
				Memory: mib(100),
			},
			want: state.Inventory{
				NUMA:     []state.NUMA{{ID: 0, Cores: []uint32{0}, MemoryMB: 100}, {ID: 2, Cores: []uint32{1}}},
				MemoryMB: 100,
			},
		},
		{
			desc: "empty inventory: empty state",
			in:   inventory.Inventory{},
			want: state.Inventory{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := ethnodes.Inventory(&tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inventory mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestControllerInventoryConversionCopiesFlags(t *testing.T) {
	in := inventory.Inventory{CPU: inventory.CPU{Flags: []string{"avx"}}}
	got := ethnodes.Inventory(&in)
	in.CPU.Flags[0] = "changed"
	if got.CPU.Features[0] != "avx" {
		t.Fatalf("the state's features share the node's slice: %v", got.CPU.Features)
	}
}

func mib(n uint64) uint64 { return n << 20 }

func TestControllerMonitoringConversion(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		desc string
		in   nodeclient.Heartbeat
		want state.Monitoring
	}{
		{
			desc: "a busy node: bytes to KiB and MiB, used memory is max minus free",
			in: nodeclient.Heartbeat{NodeID: "7a77f9af", MAC: mac, Seq: 7, Epoch: 9, At: at, Term: 3,
				MaxCPU: 6400, AllocCPU: 800, MaxMemory: mib(16384), AllocMemory: mib(4096), FreeMemory: mib(12288),
				MaxDisk: 4 * 1600e9, NetRX: 123, NetTX: 456, Domains: 3, Running: 2,
				Wild: []string{"4242:guest"}, Zombies: []string{"dn5"}},
			want: state.Monitoring{MaxCPU: 6400, FreeCPU: 6400, AllocCPU: 800,
				MaxMemoryKB: 16384 * 1024, UsedMemoryKB: 4096 * 1024, FreeMemoryKB: 12288 * 1024, AllocMemKB: 4096 * 1024,
				MaxDiskMB: 6103515, FreeDiskMB: 6103515, NetRX: 123, NetTX: 456,
				Wild: []string{"4242:guest"}, Zombies: []string{"dn5"}, At: at.UTC()},
		},
		{
			desc: "free above max (a reservation changed): used is 0, never wraps",
			in:   nodeclient.Heartbeat{MaxMemory: mib(1), FreeMemory: mib(2)},
			want: state.Monitoring{MaxMemoryKB: 1024, FreeMemoryKB: 2048},
		},
		{
			desc: "empty heartbeat: zero time stays zero",
			in:   nodeclient.Heartbeat{},
			want: state.Monitoring{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := ethnodes.Monitoring(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Monitoring mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
