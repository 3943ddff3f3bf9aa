package domain

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mvstack/mvstack/proto"
)

// MiB is 2^20 bytes.
const MiB = 1 << 20

// Sentinel errors; compare with errors.Is.
var (
	ErrInvalidSpec = errors.New("domain: invalid spec")
	// ErrTopology is wrapped by the error for VCPU ≠ SOCKETS × CORES × THREADS.
	ErrTopology = errors.New("domain: topology rule broken")
	ErrExists   = errors.New("domain: already exists")
	ErrNotFound = errors.New("domain: no such domain")
	// ErrState means the operation does not apply in the domain's state.
	ErrState = errors.New("domain: wrong state")
	// ErrNoCPU and ErrNoMemory wrap a *ResourceError with the numbers.
	ErrNoCPU    = errors.New("domain: not enough CPUs")
	ErrNoMemory = errors.New("domain: not enough memory")
	ErrDiskBusy = errors.New("domain: disk in use")
	// ErrUnsupported is returned for an operation a driver cannot do.
	ErrUnsupported = errors.New("domain: not supported by this driver")
)

// Name returns the domain name of instance id: "dn<id>".
func Name(id int) string { return "dn" + strconv.Itoa(id) }

// ParseName returns N from "dnN".
func ParseName(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "dn"))
	if err != nil || !strings.HasPrefix(s, "dn") || n <= 0 {
		return 0, fmt.Errorf("%w: domain name %q is not dnN with N > 0", ErrInvalidSpec, s)
	}
	return n, nil
}

// CPUMode is how the guest's CPU model relates to the host's; live
// migration compatibility follows from it (seed 001).
type CPUMode string

// CPU modes.
const (
	CPUHostPassthrough CPUMode = "host-passthrough" // the host CPU exactly
	CPUHostModel       CPUMode = "host-model"       // the host model's named features
	CPUCustom          CPUMode = "custom"           // a named baseline (Spec.CPUModel)
	CPUNone            CPUMode = "none"             // the hypervisor's default
)

// Topology is the guest CPU topology.
type Topology struct {
	Sockets int `cbor:"1,keyasint" json:"sockets"`
	Cores   int `cbor:"2,keyasint" json:"cores"`
	Threads int `cbor:"3,keyasint" json:"threads"`
}

// VCPUs returns sockets × cores × threads.
func (t Topology) VCPUs() int { return t.Sockets * t.Cores * t.Threads }

// VNode is one virtual NUMA node.
type VNode struct {
	// PNode is the host NUMA node that backs the vnode's memory and runs
	// its vCPUs.
	PNode int `cbor:"1,keyasint" json:"pnode"`
	// Memory in bytes, a whole number of MiB.
	Memory uint64 `cbor:"2,keyasint" json:"memory"`
	// VCPUs are the vCPU numbers of the vnode.
	VCPUs []int `cbor:"3,keyasint" json:"vcpus"`
}

// Disk is a guest drive: an NBD export on a unix socket (served by the
// node's volume client) or a local file.
type Disk struct {
	// NBD is the path of an NBD server's unix socket.
	NBD string `cbor:"1,keyasint,omitempty" json:"nbd,omitempty"`
	// File is a local raw image.
	File     string `cbor:"2,keyasint,omitempty" json:"file,omitempty"`
	ReadOnly bool   `cbor:"3,keyasint,omitempty" json:"read_only,omitempty"`
}

// Source returns the NBD socket or the file.
func (d Disk) Source() string {
	if d.NBD != "" {
		return d.NBD
	}
	return d.File
}

// NIC is a guest network interface.
type NIC struct {
	MAC proto.MAC `cbor:"1,keyasint" json:"mac"`
	// Tap is the host tap device the NIC is attached to; the driver
	// creates it if it does not exist.
	Tap string `cbor:"2,keyasint,omitempty" json:"tap,omitempty"`
}

// Boot is a direct kernel boot (QEMU -kernel/-initrd/-append).
type Boot struct {
	Kernel  string `cbor:"1,keyasint,omitempty" json:"kernel,omitempty"`
	Initrd  string `cbor:"2,keyasint,omitempty" json:"initrd,omitempty"`
	Cmdline string `cbor:"3,keyasint,omitempty" json:"cmdline,omitempty"`
}

// Spec describes a domain.
type Spec struct {
	ID    int `cbor:"1,keyasint" json:"id"`
	VCPUs int `cbor:"2,keyasint" json:"vcpus"`
	// Topology defaults to 1 socket × VCPUs cores × 1 thread.
	Topology Topology `cbor:"3,keyasint,omitempty" json:"topology,omitzero"`
	// Memory in bytes, a whole number of MiB.
	Memory uint64 `cbor:"4,keyasint" json:"memory"`
	// VNodes, when set, give the guest a virtual NUMA topology; their
	// memory adds up to Memory and every vCPU is in exactly one.
	VNodes []VNode `cbor:"5,keyasint,omitempty" json:"vnodes,omitempty"`
	// Distances between vnodes (10 = local); default 10 local, 20 remote.
	Distances [][]int `cbor:"6,keyasint,omitempty" json:"distances,omitempty"`
	CPUMode   CPUMode `cbor:"7,keyasint,omitempty" json:"cpu_mode,omitempty"`
	// CPUModel names the baseline for CPUCustom, e.g. "Cascadelake-Server-noTSX".
	CPUModel string `cbor:"8,keyasint,omitempty" json:"cpu_model,omitempty"`
	Disks    []Disk `cbor:"9,keyasint,omitempty" json:"disks,omitempty"`
	NICs     []NIC  `cbor:"10,keyasint,omitempty" json:"nics,omitempty"`
	Boot     Boot   `cbor:"11,keyasint,omitempty" json:"boot,omitzero"`
	// Pin, when set, pins vCPU i to host CPU Pin[i] at start.
	Pin []int `cbor:"12,keyasint,omitempty" json:"pin,omitempty"`
}

// Name returns "dn<ID>".
func (s Spec) Name() string { return Name(s.ID) }

// WithDefaults fills the topology (1 socket × VCPUs cores × 1 thread) and
// the CPU mode (none) when they are left zero.
func (s Spec) WithDefaults() Spec {
	if s.Topology == (Topology{}) && s.VCPUs > 0 {
		s.Topology = Topology{Sockets: 1, Cores: s.VCPUs, Threads: 1}
	}
	if s.CPUMode == "" {
		s.CPUMode = CPUNone
	}
	return s
}

// Validate checks the spec on its own (the [Ledger] checks it against the
// node). Call it on WithDefaults().
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidSpec, s.Name(), fmt.Sprintf(format, a...))
	}
	if s.ID <= 0 {
		return fmt.Errorf("%w: id %d: must be positive", ErrInvalidSpec, s.ID)
	}
	if s.VCPUs < 1 {
		return bad("vcpus %d: must be at least 1", s.VCPUs)
	}
	t := s.Topology
	if t.Sockets < 1 || t.Cores < 1 || t.Threads < 1 {
		return bad("topology %d sockets × %d cores × %d threads: each must be at least 1", t.Sockets, t.Cores, t.Threads)
	}
	if t.VCPUs() != s.VCPUs {
		return fmt.Errorf("%w: %s: vcpus %d ≠ sockets %d × cores %d × threads %d = %d; the rule is VCPU = SOCKETS × CORES × THREADS",
			ErrTopology, s.Name(), s.VCPUs, t.Sockets, t.Cores, t.Threads, t.VCPUs())
	}
	if s.Memory < MiB || s.Memory%MiB != 0 {
		return bad("memory %d bytes: must be a positive whole number of MiB", s.Memory)
	}
	switch s.CPUMode {
	case CPUHostPassthrough, CPUHostModel, CPUNone:
	case CPUCustom:
		if s.CPUModel == "" {
			return bad("cpu mode custom needs a cpu model (a named baseline)")
		}
	default:
		return bad("cpu mode %q: want host-passthrough, host-model, custom or none", s.CPUMode)
	}
	if err := s.validateVNodes(); err != nil {
		return bad("%v", err)
	}
	for i, d := range s.Disks {
		if (d.NBD == "") == (d.File == "") {
			return bad("disk %d: give exactly one of an NBD socket or a file", i)
		}
	}
	for i, n := range s.NICs {
		if n.MAC.IsZero() || n.MAC.IsMulticast() {
			return bad("nic %d: MAC %s is not a unicast address", i, n.MAC)
		}
	}
	if len(s.Pin) != 0 && len(s.Pin) != s.VCPUs {
		return bad("pin lists %d host CPUs for %d vCPUs", len(s.Pin), s.VCPUs)
	}
	return nil
}

func (s Spec) validateVNodes() error {
	if len(s.VNodes) == 0 {
		return nil
	}
	var mem uint64
	seen := make([]bool, s.VCPUs)
	for i, v := range s.VNodes {
		if v.Memory == 0 || v.Memory%MiB != 0 {
			return fmt.Errorf("vnode %d memory %d bytes: must be a positive whole number of MiB", i, v.Memory)
		}
		if v.PNode < 0 {
			return fmt.Errorf("vnode %d pnode %d: must not be negative", i, v.PNode)
		}
		mem += v.Memory
		if len(v.VCPUs) == 0 {
			return fmt.Errorf("vnode %d has no vCPUs", i)
		}
		for _, c := range v.VCPUs {
			if c < 0 || c >= s.VCPUs {
				return fmt.Errorf("vnode %d: vCPU %d out of range 0-%d", i, c, s.VCPUs-1)
			}
			if seen[c] {
				return fmt.Errorf("vnode %d: vCPU %d is in two vnodes", i, c)
			}
			seen[c] = true
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		return fmt.Errorf("vCPU %d is in no vnode", i)
	}
	if mem != s.Memory {
		return fmt.Errorf("vnodes hold %d MiB, the domain has %d MiB", mem/MiB, s.Memory/MiB)
	}
	if d := s.Distances; len(d) != 0 {
		if len(d) != len(s.VNodes) {
			return fmt.Errorf("distance table has %d rows for %d vnodes", len(d), len(s.VNodes))
		}
		for i, row := range d {
			if len(row) != len(s.VNodes) {
				return fmt.Errorf("distance row %d has %d entries for %d vnodes", i, len(row), len(s.VNodes))
			}
		}
	}
	return nil
}

// SplitVNodes returns n vnodes on host nodes pnodes[i%len(pnodes)] that
// split the memory (in whole MiB, the remainder on the last) and the vCPUs
// (in contiguous runs) evenly: the MicroVisor default of splitting a guest
// over all NUMA nodes.
func SplitVNodes(vcpus int, memory uint64, n int, pnodes []int) []VNode {
	if n < 1 || vcpus < n || len(pnodes) == 0 {
		return nil
	}
	per := memory / MiB / uint64(n) * MiB
	out := make([]VNode, n)
	for i := range out {
		out[i].PNode = pnodes[i%len(pnodes)]
		out[i].Memory = per
		lo, hi := i*vcpus/n, (i+1)*vcpus/n
		for c := lo; c < hi; c++ {
			out[i].VCPUs = append(out[i].VCPUs, c)
		}
	}
	out[n-1].Memory += memory - per*uint64(n)
	return out
}
