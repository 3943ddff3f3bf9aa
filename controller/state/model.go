package state

import (
	"fmt"
	"time"

	"github.com/mvstack/mvstack/proto"
)

// Node is one registered hypervisor node.
type Node struct {
	// ID is the low 32 bits of MAC in hex (proto.MAC.NodeID).
	ID  string    `json:"id"`
	MAC proto.MAC `json:"mac"`
	// Admin is the mode the operator chose.
	Admin AdminState `json:"admin_state"`
	// Health is what liveness monitoring concluded.
	Health Health `json:"health"`
	// Reason explains the last health change (why the node is in error).
	Reason     string     `json:"reason,omitempty"`
	Inventory  Inventory  `json:"inventory"`
	Monitoring Monitoring `json:"monitoring"`
	Registered time.Time  `json:"registered"`
	Updated    time.Time  `json:"updated"`
}

// State is the host state seed 000 shows: the admin mode unless monitoring
// overrides it. An offline node is not monitored, so it stays offline.
func (n Node) State() HostState {
	switch {
	case n.Admin == AdminOffline:
		return HostOffline
	case n.Health == HealthError:
		return HostError
	case n.Health == HealthRetry:
		return HostRetry
	}
	return HostState(n.Admin)
}

// Inventory is the hardware a node reports when it registers.
type Inventory struct {
	Hostname   string   `json:"hostname"`
	Arch       string   `json:"arch"`
	Hypervisor string   `json:"hypervisor"`
	CPU        CPU      `json:"cpu"`
	NUMA       []NUMA   `json:"numa"`
	MemoryMB   uint64   `json:"memory_mb"`
	Disks      []Disk   `json:"disks"`
	NICs       []NIC    `json:"nics"`
	Location   Location `json:"location"`
}

// CPU describes the node's processors.
type CPU struct {
	Vendor   string   `json:"vendor"`
	Model    string   `json:"model"`
	MHz      uint32   `json:"mhz"`
	Features []string `json:"features"`
}

// NUMA is one NUMA node: its cores (logical CPU indexes on the host), its
// memory and its distance to every NUMA node, in NUMA id order.
type NUMA struct {
	ID        uint32   `json:"id"`
	Cores     []uint32 `json:"cores"`
	MemoryMB  uint64   `json:"memory_mb"`
	Distances []uint32 `json:"distances"`
}

// Disk is a physical disk.
type Disk struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Model      string `json:"model"`
	SizeMB     uint64 `json:"size_mb"`
	Rotational bool   `json:"rotational"`
}

// NIC is a network interface.
type NIC struct {
	Name      string    `json:"name"`
	MAC       proto.MAC `json:"mac"`
	SpeedMbps uint32    `json:"speed_mbps"`
	MTU       uint32    `json:"mtu"`
}

// Location places a node for fault-tolerance units.
type Location struct {
	Rack    string `json:"rack"`
	Chassis string `json:"chassis"`
	Blade   string `json:"blade"`
}

// Monitoring holds the host fields of seed 000. CPU figures are percent of
// one core times the number of cores (a 16-core host has MaxCPU 1600);
// memory is in KiB; disk in MB; network in bytes.
type Monitoring struct {
	MaxCPU       uint64    `json:"max_cpu"`
	UsedCPU      uint64    `json:"used_cpu"`
	FreeCPU      uint64    `json:"free_cpu"`
	MaxMemoryKB  uint64    `json:"max_memory_kb"`
	UsedMemoryKB uint64    `json:"used_memory_kb"`
	FreeMemoryKB uint64    `json:"free_memory_kb"`
	MaxDiskMB    uint64    `json:"max_disk_mb"`
	UsedDiskMB   uint64    `json:"used_disk_mb"`
	FreeDiskMB   uint64    `json:"free_disk_mb"`
	AllocCPU     uint64    `json:"alloc_cpu"`
	AllocMemKB   uint64    `json:"alloc_memory_kb"`
	AllocDiskMB  uint64    `json:"alloc_disk_mb"`
	NetRX        uint64    `json:"netrx"`
	NetTX        uint64    `json:"nettx"`
	Wild         []string  `json:"wild"`
	Zombies      []string  `json:"zombies"`
	At           time.Time `json:"at"`
}

// Core is one physical core, named "<node>_<index>".
type Core struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	Index uint32 `json:"index"`
	NUMA  uint32 `json:"numa"`
}

// CoreID names core index of node, e.g. "54424488_4".
func CoreID(node string, index uint32) string { return fmt.Sprintf("%s_%d", node, index) }

// Cores lists the node's cores in NUMA then index order.
func (n *Node) Cores() []Core {
	var cs []Core
	for _, z := range n.Inventory.NUMA {
		for _, c := range z.Cores {
			cs = append(cs, Core{ID: CoreID(n.ID, c), Node: n.ID, Index: c, NUMA: z.ID})
		}
	}
	return cs
}

// Event is one entry of the events log.
type Event struct {
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message"`
}

// Token is an API token. Only the SHA-256 of its secret is kept.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Hash    []byte    `json:"-" cbor:"hash"`
	Created time.Time `json:"created"`
}

// Replica is a controller replica's address for clients and for forwarding.
type Replica struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr"`
}
