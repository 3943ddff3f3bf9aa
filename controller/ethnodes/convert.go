package ethnodes

import (
	"cmp"
	"math"
	"slices"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
)

// Units of the controller's state (seed 000, as OpenNebula counts them):
// a "MB" is a MiB and a "KB" a KiB.
const (
	kib = 1 << 10
	mib = 1 << 20
)

// Inventory converts what a node reports (node/inventory) into the
// controller's replicated form. It is the one place the two meet:
//
//   - CPU flags become features (a copy); MHz is rounded to a whole number;
//   - the NUMA layout is rebuilt from the cores, which the node lists apart
//     from its NUMA nodes: every logical CPU lands in the NUMA node its core
//     names, ascending; a node that lists no NUMA nodes has one, node 0,
//     holding every core and all the memory, at distance 10 from itself;
//   - memory and disk sizes go from bytes to MiB (rounded down);
//   - a disk's id is "<node>_<name>", and only kind "hdd" is rotational;
//   - a NIC's speed and MTU become unsigned (0 = unknown).
func Inventory(inv *inventory.Inventory) state.Inventory {
	out := state.Inventory{
		Hostname:   inv.Hostname,
		Arch:       inv.Arch,
		Hypervisor: inv.Hypervisor,
		CPU: state.CPU{
			Vendor:   inv.CPU.Vendor,
			Model:    inv.CPU.Model,
			MHz:      mhz(inv.CPU.MHz),
			Features: slices.Clone(inv.CPU.Flags),
		},
		NUMA:     numa(inv),
		MemoryMB: inv.Memory / mib,
		Location: state.Location{Rack: inv.Location.Rack, Chassis: inv.Location.Chassis, Blade: inv.Location.Blade},
	}
	id := inv.NodeID
	if id == "" {
		id = inv.MAC.NodeID()
	}
	for _, d := range inv.Disks {
		out.Disks = append(out.Disks, state.Disk{ID: id + "_" + d.Name, Name: d.Name, Model: d.Model,
			SizeMB: d.Size / mib, Rotational: d.Kind == "hdd"})
	}
	for _, n := range inv.NICs {
		out.NICs = append(out.NICs, state.NIC{Name: n.Name, MAC: n.MAC, SpeedMbps: unsigned(n.Speed), MTU: unsigned(n.MTU)})
	}
	return out
}

func mhz(f float64) uint32 {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(math.Round(f))
}

func unsigned(v int) uint32 {
	if v < 0 {
		return 0
	}
	return uint32(min(int64(v), math.MaxUint32))
}

// numa groups the cores by the NUMA node they name. Memory and distances
// come from the node's NUMA list; a NUMA node a core names but the list
// lacks gets no memory and no distances.
func numa(inv *inventory.Inventory) []state.NUMA {
	if len(inv.NUMA) == 0 {
		z := state.NUMA{ID: 0, MemoryMB: inv.Memory / mib, Distances: []uint32{10}}
		for _, c := range inv.Cores {
			z.Cores = append(z.Cores, unsigned(c.Index))
		}
		slices.Sort(z.Cores)
		if len(z.Cores) == 0 && inv.Memory == 0 {
			return nil
		}
		return []state.NUMA{z}
	}
	byID := map[int]*state.NUMA{}
	var out []*state.NUMA
	zone := func(id int) *state.NUMA {
		if z := byID[id]; z != nil {
			return z
		}
		z := &state.NUMA{ID: unsigned(id)}
		byID[id] = z
		out = append(out, z)
		return z
	}
	for _, n := range inv.NUMA {
		z := zone(n.ID)
		z.MemoryMB = n.Memory / mib
		for _, d := range n.Distances {
			z.Distances = append(z.Distances, unsigned(d))
		}
	}
	for _, c := range inv.Cores {
		z := zone(c.NUMANode)
		z.Cores = append(z.Cores, unsigned(c.Index))
	}
	slices.SortStableFunc(out, func(a, b *state.NUMA) int { return cmp.Compare(a.ID, b.ID) })
	res := make([]state.NUMA, len(out))
	for i, z := range out {
		slices.Sort(z.Cores)
		res[i] = *z
	}
	return res
}

// Monitoring converts a node's heartbeat into seed 000's host fields:
//
//   - MAX_CPU and the allocated CPU are copied (percent × cores); the
//     heartbeat carries no measured CPU use yet, so USED_CPU is 0 and
//     FREE_CPU is MAX_CPU;
//   - memory goes from bytes to KiB: MAX is what domains may use, USED is
//     MAX minus FREE, ALLOCATED is what domains hold;
//   - MAX_DISK is the node's drives in MiB; no datastore uses them yet, so
//     USED and ALLOCATED are 0 and FREE is MAX;
//   - NETRX/NETTX, WILD and ZOMBIES are copied; At is the node's time stamp
//     in UTC.
func Monitoring(hb nodeclient.Heartbeat) state.Monitoring {
	m := state.Monitoring{
		MaxCPU:       hb.MaxCPU,
		FreeCPU:      hb.MaxCPU,
		AllocCPU:     hb.AllocCPU,
		MaxMemoryKB:  hb.MaxMemory / kib,
		FreeMemoryKB: hb.FreeMemory / kib,
		AllocMemKB:   hb.AllocMemory / kib,
		MaxDiskMB:    hb.MaxDisk / mib,
		FreeDiskMB:   hb.MaxDisk / mib,
		NetRX:        hb.NetRX,
		NetTX:        hb.NetTX,
		Wild:         slices.Clone(hb.Wild),
		Zombies:      slices.Clone(hb.Zombies),
	}
	if hb.MaxMemory > hb.FreeMemory {
		m.UsedMemoryKB = (hb.MaxMemory - hb.FreeMemory) / kib
	}
	if !hb.At.IsZero() {
		m.At = hb.At.UTC()
	}
	return m
}
