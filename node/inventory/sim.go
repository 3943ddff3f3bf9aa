package inventory

import (
	"errors"
	"fmt"

	"github.com/mvstack/mvstack/proto"
)

// GiB is 2^30 bytes.
const GiB = 1 << 30

// SimHardware declares a simulated node's hardware.
type SimHardware struct {
	Sockets        int `json:"sockets"`
	CoresPerSocket int `json:"cores_per_socket"`
	ThreadsPerCore int `json:"threads_per_core"`
	// NUMANodes defaults to one per socket; it must divide the socket count
	// or be a multiple of it that divides the cores.
	NUMANodes int `json:"numa_nodes,omitempty"`
	// Memory in bytes, split evenly over the NUMA nodes.
	Memory uint64    `json:"memory"`
	Disks  []SimDisk `json:"disks,omitempty"`
	// NICs beyond the management one (which always comes first).
	NICs   []string `json:"nics,omitempty"`
	Vendor string   `json:"vendor,omitempty"`
	Model  string   `json:"model,omitempty"`
	MHz    float64  `json:"mhz,omitempty"`
	Flags  []string `json:"flags,omitempty"`
}

// SimDisk is a declared drive.
type SimDisk struct {
	Name string `json:"name"`
	Size uint64 `json:"size"`
	Kind string `json:"kind,omitempty"` // "nvme" by default
}

// DefaultSimHardware is a two-socket server: 2 × 16 cores × 2 threads,
// 256 GiB over 2 NUMA nodes, 4 NVMe drives of 1.6 TB.
func DefaultSimHardware() SimHardware {
	h := SimHardware{
		Sockets: 2, CoresPerSocket: 16, ThreadsPerCore: 2,
		Memory: 256 * GiB,
		Vendor: "GenuineIntel",
		Model:  "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
		MHz:    2100,
		Flags: []string{"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep",
			"mtrr", "pge", "mca", "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2",
			"ht", "syscall", "nx", "pdpe1gb", "rdtscp", "lm", "pni", "pclmulqdq", "vmx", "ssse3",
			"fma", "cx16", "pcid", "sse4_1", "sse4_2", "x2apic", "movbe", "popcnt", "aes", "xsave",
			"avx", "f16c", "rdrand", "lahf_lm", "abm", "3dnowprefetch", "fsgsbase", "bmi1", "hle",
			"avx2", "smep", "bmi2", "erms", "invpcid", "rtm", "avx512f", "avx512dq", "rdseed", "adx",
			"smap", "clflushopt", "clwb", "avx512cd", "avx512bw", "avx512vl", "xsaveopt", "xsavec"},
	}
	for i := range 4 {
		h.Disks = append(h.Disks, SimDisk{Name: fmt.Sprintf("nvme%dn1", i), Size: 1600 * 1000 * 1000 * 1000, Kind: "nvme"})
	}
	return h
}

// ErrBadHardware marks a SimHardware that cannot describe a machine.
var ErrBadHardware = errors.New("inventory: bad simulated hardware")

// Validate checks the declaration.
func (h SimHardware) Validate() error {
	if h.Sockets < 1 || h.CoresPerSocket < 1 || h.ThreadsPerCore < 1 {
		return fmt.Errorf("%w: sockets %d × cores %d × threads %d: each must be at least 1", ErrBadHardware, h.Sockets, h.CoresPerSocket, h.ThreadsPerCore)
	}
	n := h.numaNodes()
	cores := h.Sockets * h.CoresPerSocket
	if n < 1 || cores%n != 0 {
		return fmt.Errorf("%w: %d NUMA nodes do not divide %d cores", ErrBadHardware, n, cores)
	}
	if h.Memory < uint64(n)<<20 {
		return fmt.Errorf("%w: memory %d bytes is less than 1 MiB per NUMA node", ErrBadHardware, h.Memory)
	}
	return nil
}

func (h SimHardware) numaNodes() int {
	if h.NUMANodes > 0 {
		return h.NUMANodes
	}
	return h.Sockets
}

// Simulated builds the inventory of a simulated node with management MAC
// mac. Logical CPUs are numbered as Linux numbers a two-thread Intel
// server: first thread of every core across all sockets, then the second,
// so the siblings of cpu i are i and i + sockets × cores.
func Simulated(mac proto.MAC, h SimHardware, loc Location) (*Inventory, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	id := mac.NodeID()
	inv := &Inventory{
		NodeID: id, MAC: mac, Hostname: "sim-" + id, Arch: "x86_64",
		Hypervisor: HypervisorSim, Memory: h.Memory, Location: loc, Simulated: true,
		CPU: CPU{Vendor: h.Vendor, Model: h.Model, MHz: h.MHz, Flags: h.Flags,
			Sockets: h.Sockets, CoresPerSocket: h.CoresPerSocket, ThreadsPerCore: h.ThreadsPerCore},
	}
	nn := h.numaNodes()
	physical := h.Sockets * h.CoresPerSocket
	perNode := physical / nn
	for n := range nn {
		node := NUMANode{ID: n, Memory: h.Memory / uint64(nn)}
		for d := range nn {
			dist := 21
			if d == n {
				dist = 10
			}
			node.Distances = append(node.Distances, dist)
		}
		inv.NUMA = append(inv.NUMA, node)
	}
	total := physical * h.ThreadsPerCore
	for cpu := range total {
		p := cpu % physical // physical core number across sockets
		c := Core{
			ID: CoreID(id, cpu), Index: cpu, Socket: p / h.CoresPerSocket, Core: p % h.CoresPerSocket,
			NUMANode: p / perNode,
		}
		for t := range h.ThreadsPerCore {
			c.Siblings = append(c.Siblings, p+t*physical)
		}
		inv.Cores = append(inv.Cores, c)
		inv.NUMA[c.NUMANode].CPUs = append(inv.NUMA[c.NUMANode].CPUs, cpu)
	}
	for _, d := range h.Disks {
		kind := d.Kind
		if kind == "" {
			kind = "nvme"
		}
		inv.Disks = append(inv.Disks, Disk{Name: d.Name, Path: "/dev/" + d.Name, Size: d.Size, Kind: kind, Model: "simulated"})
	}
	inv.NICs = append(inv.NICs, NIC{Name: "eth0", MAC: mac, MTU: 1500, Speed: 10000})
	for i, name := range h.NICs {
		m := mac
		m[0] |= 0x02 // locally administered, derived from the management MAC
		m[1] += byte(i + 1)
		inv.NICs = append(inv.NICs, NIC{Name: name, MAC: m, MTU: 1500, Speed: 10000})
	}
	return inv, nil
}
