package domain

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/mvstack/mvstack/node/inventory"
)

// LedgerConfig bounds what a node lends its domains.
type LedgerConfig struct {
	// CPUOvercommit is how many vCPUs the node runs per pCPU in total
	// (1..8; the controller's resource groups choose below it). A single
	// domain never gets more vCPUs than the node has pCPUs.
	CPUOvercommit int
	// ReservedMemory is kept for the node itself (bytes), taken from the
	// NUMA nodes in proportion to their size.
	ReservedMemory uint64
}

// DefaultLedgerConfig allows 8 vCPUs per pCPU and reserves no memory.
func DefaultLedgerConfig() LedgerConfig { return LedgerConfig{CPUOvercommit: 8} }

// Validate checks the bounds.
func (c LedgerConfig) Validate() error {
	if c.CPUOvercommit < 1 || c.CPUOvercommit > 8 {
		return fmt.Errorf("domain: ledger CPUOvercommit %d: want 1..8", c.CPUOvercommit)
	}
	return nil
}

// ResourceError says what a domain asked for and what the node has. It
// unwraps to ErrNoCPU or ErrNoMemory.
type ResourceError struct {
	Domain string
	Node   string // the node id
	// Resource is "vcpus" or "memory".
	Resource string
	// NUMANode is the host NUMA node for a per-node shortage, -1 for the
	// whole node.
	NUMANode int
	// Want, Have and Free count vCPUs or bytes. For vCPUs Have is the
	// node's pCPUs and Free the vCPU slots left (pCPUs × overcommit −
	// in use).
	Want, Have, Free uint64
	Overcommit       int
}

func (e *ResourceError) Error() string {
	switch {
	case e.Resource == "vcpus" && e.Want > e.Have:
		return fmt.Sprintf("domain: %s wants %d vCPUs, node %s has %d pCPUs", e.Domain, e.Want, e.Node, e.Have)
	case e.Resource == "vcpus":
		return fmt.Sprintf("domain: %s wants %d vCPUs, node %s has %d pCPUs × overcommit %d = %d vCPU slots, %d free",
			e.Domain, e.Want, e.Node, e.Have, e.Overcommit, e.Have*uint64(e.Overcommit), e.Free)
	case e.NUMANode >= 0:
		return fmt.Sprintf("domain: %s wants %d MiB memory on NUMA node %d, node %s has %d MiB there, %d MiB free",
			e.Domain, e.Want/MiB, e.NUMANode, e.Node, e.Have/MiB, e.Free/MiB)
	default:
		return fmt.Sprintf("domain: %s wants %d MiB memory, node %s has %d MiB, %d MiB free",
			e.Domain, e.Want/MiB, e.Node, e.Have/MiB, e.Free/MiB)
	}
}

// Unwrap returns ErrNoCPU or ErrNoMemory.
func (e *ResourceError) Unwrap() error {
	if e.Resource == "vcpus" {
		return ErrNoCPU
	}
	return ErrNoMemory
}

// Placement is what the ledger holds for one domain.
type Placement struct {
	ID    int
	VCPUs int
	// Memory[n] is the bytes on host NUMA node n (indexed like
	// Ledger.NUMANodes).
	Memory []uint64
	// Affinity[v] are the host CPUs vCPU v may run on.
	Affinity [][]int
	// Layout is the guest physical layout (see [Layout]).
	Layout []VNodeLayout
	vnuma  bool
	disks  []string
}

// NUMA returns the placement as "show numa" reports it.
func (p *Placement) NUMA() NUMAInfo {
	info := NUMAInfo{ID: p.ID, VCPUs: p.VCPUs, Nodes: make([]uint64, len(p.Memory))}
	for i, m := range p.Memory {
		info.Nodes[i] = m / PageSize
		info.TotalPages += m / PageSize
	}
	if p.vnuma {
		info.VNodes = slices.Clone(p.Layout)
	}
	return info
}

// Ledger holds the node's CPUs, memory and disks against its inventory.
// It is safe for concurrent use.
type Ledger struct {
	inv        *inventory.Inventory
	overcommit int
	nodeIndex  map[int]int // NUMA node id → position
	nodeCPUs   [][]int
	size       []uint64 // usable bytes per node

	mu        sync.Mutex
	free      []uint64
	vcpusUsed int
	doms      map[int]*Placement
	disks     map[string]int // path → domain id holding it read-write
}

// NewLedger builds a ledger for inv.
func NewLedger(inv *inventory.Inventory, cfg LedgerConfig) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	l := &Ledger{inv: inv, overcommit: cfg.CPUOvercommit, nodeIndex: map[int]int{},
		doms: map[int]*Placement{}, disks: map[string]int{}}
	nodes := inv.NUMA
	if len(nodes) == 0 {
		all := make([]int, 0, len(inv.Cores))
		for _, c := range inv.Cores {
			all = append(all, c.Index)
		}
		nodes = []inventory.NUMANode{{ID: 0, Memory: inv.Memory, CPUs: all}}
	}
	var total uint64
	for _, n := range nodes {
		total += n.Memory
	}
	for i, n := range nodes {
		l.nodeIndex[n.ID] = i
		l.nodeCPUs = append(l.nodeCPUs, slices.Clone(n.CPUs))
		reserve := uint64(0)
		if total > 0 {
			reserve = uint64(float64(cfg.ReservedMemory) * float64(n.Memory) / float64(total))
		}
		usable := uint64(0)
		if n.Memory > reserve {
			usable = n.Memory - reserve
		}
		l.size = append(l.size, usable)
	}
	l.free = slices.Clone(l.size)
	return l, nil
}

// NUMANodes returns the number of host NUMA nodes.
func (l *Ledger) NUMANodes() int { return len(l.size) }

// Reserve checks spec against the node and holds its resources. The spec
// must be valid (Spec.Validate). It fails with ErrExists, a *ResourceError
// (ErrNoCPU, ErrNoMemory), ErrDiskBusy or ErrInvalidSpec (a vnode on a NUMA
// node or a pin on a CPU the node does not have).
func (l *Ledger) Reserve(s Spec) (*Placement, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.doms[s.ID]; ok {
		return nil, fmt.Errorf("%w: %s", ErrExists, s.Name())
	}
	pcpus := len(l.inv.Cores)
	if s.VCPUs > pcpus {
		return nil, &ResourceError{Domain: s.Name(), Node: l.inv.NodeID, Resource: "vcpus", NUMANode: -1,
			Want: uint64(s.VCPUs), Have: uint64(pcpus), Overcommit: l.overcommit}
	}
	if slots := pcpus * l.overcommit; l.vcpusUsed+s.VCPUs > slots {
		return nil, &ResourceError{Domain: s.Name(), Node: l.inv.NodeID, Resource: "vcpus", NUMANode: -1,
			Want: uint64(s.VCPUs), Have: uint64(pcpus), Free: uint64(slots - l.vcpusUsed), Overcommit: l.overcommit}
	}
	for v, c := range s.Pin {
		if _, ok := l.inv.Core(c); !ok {
			return nil, fmt.Errorf("%w: %s: vCPU %d pinned to CPU %d, node %s has CPUs %s", ErrInvalidSpec,
				s.Name(), v, c, l.inv.NodeID, l.cpuList())
		}
	}
	var disks []string
	for _, d := range s.Disks {
		if d.ReadOnly {
			continue
		}
		if other, ok := l.disks[d.Source()]; ok {
			return nil, fmt.Errorf("%w: %s: %s is held by %s", ErrDiskBusy, s.Name(), d.Source(), Name(other))
		}
		disks = append(disks, d.Source())
	}
	mem, err := l.placeMemory(s)
	if err != nil {
		return nil, err
	}
	p := &Placement{ID: s.ID, VCPUs: s.VCPUs, Memory: mem, Layout: Layout(s), vnuma: len(s.VNodes) > 0, disks: disks}
	p.Affinity = l.affinity(s, mem)
	for i, m := range mem {
		l.free[i] -= m
	}
	l.vcpusUsed += s.VCPUs
	for _, d := range disks {
		l.disks[d] = s.ID
	}
	l.doms[s.ID] = p
	return clonePlacement(p), nil
}

// Admit fills spec's defaults, validates it and reserves its resources:
// what a driver's Create does before it defines the domain. It returns the
// spec as admitted.
func (l *Ledger) Admit(s Spec) (Spec, error) {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	if _, err := l.Reserve(s); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// placeMemory chooses how many bytes each host node gives the domain.
func (l *Ledger) placeMemory(s Spec) ([]uint64, error) {
	mem := make([]uint64, len(l.size))
	if len(s.VNodes) > 0 {
		for i, v := range s.VNodes {
			idx, ok := l.nodeIndex[v.PNode]
			if !ok {
				return nil, fmt.Errorf("%w: %s: vnode %d on NUMA node %d, node %s has %d NUMA nodes",
					ErrInvalidSpec, s.Name(), i, v.PNode, l.inv.NodeID, len(l.size))
			}
			mem[idx] += v.Memory
		}
		for idx, m := range mem {
			if m > l.free[idx] {
				return nil, &ResourceError{Domain: s.Name(), Node: l.inv.NodeID, Resource: "memory",
					NUMANode: l.nodeID(idx), Want: m, Have: l.size[idx], Free: l.free[idx]}
			}
		}
		return mem, nil
	}
	var have, free uint64
	for i := range l.size {
		have += l.size[i]
		free += l.free[i]
	}
	if s.Memory > free {
		return nil, &ResourceError{Domain: s.Name(), Node: l.inv.NodeID, Resource: "memory", NUMANode: -1,
			Want: s.Memory, Have: have, Free: free}
	}
	// Prefer the node of the first pinned vCPU, then the freest nodes.
	order := make([]int, len(l.size))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return l.free[order[a]] > l.free[order[b]] })
	if len(s.Pin) > 0 {
		if idx, ok := l.nodeIndex[l.inv.NUMANodeOf(s.Pin[0])]; ok {
			k := slices.Index(order, idx)
			order = append([]int{idx}, slices.Delete(order, k, k+1)...)
		}
	}
	left := s.Memory
	for _, idx := range order {
		take := min(left, l.free[idx])
		mem[idx] = take
		left -= take
		if left == 0 {
			break
		}
	}
	return mem, nil
}

// affinity gives each vCPU its pinned CPU, its vnode's host CPUs, or the
// CPUs of the nodes holding the domain's memory.
func (l *Ledger) affinity(s Spec, mem []uint64) [][]int {
	out := make([][]int, s.VCPUs)
	if len(s.Pin) > 0 {
		for v, c := range s.Pin {
			out[v] = []int{c}
		}
		return out
	}
	for _, vn := range s.VNodes {
		cpus := l.nodeCPUs[l.nodeIndex[vn.PNode]]
		for _, v := range vn.VCPUs {
			out[v] = slices.Clone(cpus)
		}
	}
	var home []int
	for idx, m := range mem {
		if m > 0 {
			home = append(home, l.nodeCPUs[idx]...)
		}
	}
	slices.Sort(home)
	for v := range out {
		if out[v] == nil {
			out[v] = slices.Clone(home)
		}
	}
	return out
}

// Pin restricts vCPU vcpu of domain id to host CPU pcpu.
func (l *Ledger) Pin(id, vcpu, pcpu int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.doms[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, Name(id))
	}
	if vcpu < 0 || vcpu >= p.VCPUs {
		return fmt.Errorf("%w: %s has vCPUs 0-%d, not %d", ErrInvalidSpec, Name(id), p.VCPUs-1, vcpu)
	}
	if _, ok := l.inv.Core(pcpu); !ok {
		return fmt.Errorf("%w: %s: CPU %d: node %s has CPUs %s", ErrInvalidSpec, Name(id), pcpu, l.inv.NodeID, l.cpuList())
	}
	p.Affinity[vcpu] = []int{pcpu}
	return nil
}

// Placement returns a copy of what domain id holds.
func (l *Ledger) Placement(id int) (*Placement, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.doms[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, Name(id))
	}
	return clonePlacement(p), nil
}

// NUMA returns domain id's placement as "show numa" reports it.
func (l *Ledger) NUMA(id int) (NUMAInfo, error) {
	p, err := l.Placement(id)
	if err != nil {
		return NUMAInfo{}, err
	}
	return p.NUMA(), nil
}

// Release returns domain id's resources; releasing an unknown id is a no-op.
func (l *Ledger) Release(id int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.doms[id]
	if !ok {
		return
	}
	for i, m := range p.Memory {
		l.free[i] += m
	}
	l.vcpusUsed -= p.VCPUs
	for _, d := range p.disks {
		delete(l.disks, d)
	}
	delete(l.doms, id)
}

// Usage is the node's allocation (seed 000's allocated CPU and memory).
type Usage struct {
	PCPUs      int      `cbor:"1,keyasint" json:"pcpus"`
	VCPUs      int      `cbor:"2,keyasint" json:"vcpus"`
	Memory     uint64   `cbor:"3,keyasint" json:"memory"`
	MemoryFree uint64   `cbor:"4,keyasint" json:"memory_free"`
	NodeFree   []uint64 `cbor:"5,keyasint" json:"node_free"`
	Domains    int      `cbor:"6,keyasint" json:"domains"`
	Overcommit int      `cbor:"7,keyasint" json:"overcommit"`
}

// Usage reports what is allocated.
func (l *Ledger) Usage() Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := Usage{PCPUs: len(l.inv.Cores), VCPUs: l.vcpusUsed, Domains: len(l.doms), Overcommit: l.overcommit,
		NodeFree: slices.Clone(l.free)}
	for i := range l.size {
		u.Memory += l.size[i]
		u.MemoryFree += l.free[i]
	}
	return u
}

func (l *Ledger) nodeID(idx int) int {
	for id, i := range l.nodeIndex {
		if i == idx {
			return id
		}
	}
	return idx
}

func (l *Ledger) cpuList() string {
	cpus := make([]int, 0, len(l.inv.Cores))
	for _, c := range l.inv.Cores {
		cpus = append(cpus, c.Index)
	}
	slices.Sort(cpus)
	return inventory.FormatCPUList(cpus)
}

func clonePlacement(p *Placement) *Placement {
	c := *p
	c.Memory = slices.Clone(p.Memory)
	c.Affinity = make([][]int, len(p.Affinity))
	for i, a := range p.Affinity {
		c.Affinity[i] = slices.Clone(a)
	}
	c.Layout = slices.Clone(p.Layout)
	c.disks = slices.Clone(p.disks)
	return &c
}
