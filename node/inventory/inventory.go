package inventory

import (
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"

	"github.com/mvstack/mvstack/proto"
)

// Hypervisor names a node reports.
const (
	HypervisorQEMUTCG = "qemu-tcg" // qemu-system-x86_64 with the TCG emulator
	HypervisorQEMUKVM = "qemu-kvm" // qemu-system-x86_64 with /dev/kvm
	HypervisorSim     = "sim"      // simulated guests, no processes
)

// Inventory is what a node reports about itself when it registers.
type Inventory struct {
	NodeID     string     `cbor:"1,keyasint,omitempty" json:"node_id"`
	MAC        proto.MAC  `cbor:"2,keyasint" json:"mac"`
	Hostname   string     `cbor:"3,keyasint,omitempty" json:"hostname,omitempty"`
	Arch       string     `cbor:"4,keyasint,omitempty" json:"arch"`
	Hypervisor string     `cbor:"5,keyasint,omitempty" json:"hypervisor"`
	CPU        CPU        `cbor:"6,keyasint" json:"cpu"`
	Cores      []Core     `cbor:"7,keyasint,omitempty" json:"cores"`
	NUMA       []NUMANode `cbor:"8,keyasint,omitempty" json:"numa"`
	// Memory is the node's total memory in bytes.
	Memory   uint64   `cbor:"9,keyasint,omitempty" json:"memory"`
	Disks    []Disk   `cbor:"10,keyasint,omitempty" json:"disks,omitempty"`
	NICs     []NIC    `cbor:"11,keyasint,omitempty" json:"nics,omitempty"`
	Location Location `cbor:"12,keyasint" json:"location"`
	// Simulated is true when the hardware was declared, not probed.
	Simulated bool `cbor:"13,keyasint,omitempty" json:"simulated,omitempty"`
}

// CPU describes the node's processors.
type CPU struct {
	Vendor         string   `cbor:"1,keyasint,omitempty" json:"vendor"`
	Model          string   `cbor:"2,keyasint,omitempty" json:"model"`
	MHz            float64  `cbor:"3,keyasint,omitempty" json:"mhz"`
	Flags          []string `cbor:"4,keyasint,omitempty" json:"flags,omitempty"`
	Sockets        int      `cbor:"5,keyasint,omitempty" json:"sockets"`
	CoresPerSocket int      `cbor:"6,keyasint,omitempty" json:"cores_per_socket"`
	ThreadsPerCore int      `cbor:"7,keyasint,omitempty" json:"threads_per_core"`
}

// HasFlag reports whether the CPU has feature flag f (as /proc/cpuinfo
// spells it, e.g. "avx2").
func (c CPU) HasFlag(f string) bool { return slices.Contains(c.Flags, f) }

// Core is one logical CPU (a hardware thread) the node can run vCPUs on.
type Core struct {
	// ID is "<node>_<index>", e.g. "7a77f9af_4".
	ID string `cbor:"1,keyasint" json:"id"`
	// Index is the logical CPU number the operating system uses (cpuN).
	Index    int `cbor:"2,keyasint" json:"index"`
	NUMANode int `cbor:"3,keyasint" json:"numa_node"`
	Socket   int `cbor:"4,keyasint" json:"socket"`
	// Core is the physical core id within the socket.
	Core int `cbor:"5,keyasint" json:"core"`
	// Siblings are the logical CPUs sharing this physical core, itself
	// included, in ascending order.
	Siblings []int `cbor:"6,keyasint,omitempty" json:"siblings"`
}

// NUMANode is one NUMA node of the host.
type NUMANode struct {
	ID int `cbor:"1,keyasint" json:"id"`
	// Memory is the node's memory in bytes.
	Memory uint64 `cbor:"2,keyasint" json:"memory"`
	// CPUs are the logical CPUs of the node, ascending.
	CPUs []int `cbor:"3,keyasint,omitempty" json:"cpus"`
	// Distances are the ACPI SLIT distances from this node to node i,
	// indexed by position in Inventory.NUMA (10 = local).
	Distances []int `cbor:"4,keyasint,omitempty" json:"distances"`
}

// Disk is a drive the node can export or hand to guests: a block device, or
// a file standing in for a drive.
type Disk struct {
	Name string `cbor:"1,keyasint" json:"name"`
	// Path is /dev/NAME for a block device, the file's path otherwise.
	Path string `cbor:"2,keyasint,omitempty" json:"path"`
	// Size in bytes.
	Size  uint64 `cbor:"3,keyasint,omitempty" json:"size"`
	Model string `cbor:"4,keyasint,omitempty" json:"model,omitempty"`
	// Kind is "nvme", "ssd", "hdd", "virtio", "file" or "sim".
	Kind string `cbor:"5,keyasint,omitempty" json:"kind"`
}

// NIC is a network interface of the node.
type NIC struct {
	Name string    `cbor:"1,keyasint" json:"name"`
	MAC  proto.MAC `cbor:"2,keyasint" json:"mac"`
	MTU  int       `cbor:"3,keyasint,omitempty" json:"mtu"`
	// Speed in Mbit/s, 0 when the driver does not say.
	Speed int `cbor:"4,keyasint,omitempty" json:"speed,omitempty"`
	// Virtual is true for interfaces without a device behind them (veth,
	// bridges, taps).
	Virtual bool `cbor:"5,keyasint,omitempty" json:"virtual,omitempty"`
}

// Location is where the node sits; it feeds fault-tolerance units.
type Location struct {
	Rack    string `cbor:"1,keyasint,omitempty" json:"rack,omitempty"`
	Chassis string `cbor:"2,keyasint,omitempty" json:"chassis,omitempty"`
	Blade   string `cbor:"3,keyasint,omitempty" json:"blade,omitempty"`
}

// CoreID returns the MicroVisor core id "<node>_<index>".
func CoreID(nodeID string, index int) string { return fmt.Sprintf("%s_%d", nodeID, index) }

// PCPUs returns the number of logical CPUs.
func (inv *Inventory) PCPUs() int { return len(inv.Cores) }

// Core returns the core with logical index i.
func (inv *Inventory) Core(i int) (Core, bool) {
	for _, c := range inv.Cores {
		if c.Index == i {
			return c, true
		}
	}
	return Core{}, false
}

// NUMANodeOf returns the NUMA node of logical CPU i, or -1.
func (inv *Inventory) NUMANodeOf(i int) int {
	if c, ok := inv.Core(i); ok {
		return c.NUMANode
	}
	return -1
}

// ErrInvalid marks an inventory that contradicts itself.
var ErrInvalid = errors.New("inventory: invalid")

// Validate checks that the parts agree: every core's NUMA node exists, node
// CPU lists match the cores, distances are square, memory adds up.
func (inv *Inventory) Validate() error {
	if len(inv.Cores) == 0 {
		return fmt.Errorf("%w: no cores", ErrInvalid)
	}
	nodes := make(map[int]bool, len(inv.NUMA))
	var sum uint64
	for _, n := range inv.NUMA {
		nodes[n.ID] = true
		sum += n.Memory
		if len(n.Distances) != 0 && len(n.Distances) != len(inv.NUMA) {
			return fmt.Errorf("%w: NUMA node %d has %d distances, want %d", ErrInvalid, n.ID, len(n.Distances), len(inv.NUMA))
		}
	}
	seen := make(map[int]bool, len(inv.Cores))
	for _, c := range inv.Cores {
		if seen[c.Index] {
			return fmt.Errorf("%w: core %d listed twice", ErrInvalid, c.Index)
		}
		seen[c.Index] = true
		if len(inv.NUMA) > 0 && !nodes[c.NUMANode] {
			return fmt.Errorf("%w: core %s is on NUMA node %d, which is not listed", ErrInvalid, c.ID, c.NUMANode)
		}
	}
	if len(inv.NUMA) > 0 && sum > inv.Memory {
		return fmt.Errorf("%w: NUMA nodes hold %d bytes, more than the node's %d", ErrInvalid, sum, inv.Memory)
	}
	return nil
}

// plain has Inventory's fields without its methods, so the CBOR library
// encodes the fields instead of calling MarshalBinary again.
type plain Inventory

// MarshalBinary encodes the inventory as CBOR.
func (inv *Inventory) MarshalBinary() ([]byte, error) { return cbor.Marshal((*plain)(inv)) }

// UnmarshalBinary decodes CBOR written by MarshalBinary.
func (inv *Inventory) UnmarshalBinary(b []byte) error {
	var v plain
	if err := cbor.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("inventory: decode: %w", err)
	}
	*inv = Inventory(v)
	return nil
}
