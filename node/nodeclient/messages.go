package nodeclient

import (
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/proto"
)

// DiscoverRequest is broadcast to find nodes. Term is the controller's
// term (0 from mvctl); a broadcast is never refused, but a node remembers
// a higher term it hears.
type DiscoverRequest struct {
	Term uint64 `cbor:"1,keyasint,omitempty"`
}

// Summary is a node's answer to a discovery: small enough for one frame.
type Summary struct {
	NodeID     string             `cbor:"1,keyasint" json:"node_id"`
	MAC        proto.MAC          `cbor:"2,keyasint" json:"mac"`
	Hostname   string             `cbor:"3,keyasint,omitempty" json:"hostname"`
	Hypervisor string             `cbor:"4,keyasint,omitempty" json:"hypervisor"`
	Location   inventory.Location `cbor:"5,keyasint" json:"location"`
	// PCPUs is the number of logical CPUs; Memory the node's bytes.
	PCPUs  int    `cbor:"6,keyasint" json:"pcpus"`
	Memory uint64 `cbor:"7,keyasint" json:"memory"`
	// Domains defined, and how many of them run.
	Domains int `cbor:"8,keyasint" json:"domains"`
	Running int `cbor:"9,keyasint" json:"running"`
	// Term is the highest controller term the node has seen.
	Term uint64 `cbor:"10,keyasint,omitempty" json:"term,omitempty"`
	// Epoch is the node process's control-protocol session epoch: new at
	// every start, so a restart shows.
	Epoch uint64 `cbor:"11,keyasint" json:"epoch"`
}

// InfoRequest asks for a node's description.
type InfoRequest struct{}

// NodeInfo is a node's full description.
type NodeInfo struct {
	Inventory inventory.Inventory `cbor:"1,keyasint" json:"inventory"`
	Usage     domain.Usage        `cbor:"2,keyasint" json:"usage"`
	// Driver is the domain driver's hypervisor name.
	Driver string `cbor:"3,keyasint" json:"driver"`
	// Term is the highest controller term the node has seen.
	Term    uint64    `cbor:"4,keyasint,omitempty" json:"term,omitempty"`
	Started time.Time `cbor:"5,keyasint" json:"started"`
	// Wild are guests running on the node that it did not start
	// ("pid:name"); Zombies are domains it should run that are not
	// running ("dnN"). Seed 000's WILD and ZOMBIES.
	Wild    []string `cbor:"6,keyasint,omitempty" json:"wild"`
	Zombies []string `cbor:"7,keyasint,omitempty" json:"zombies"`
	// Events are the most recent domain state changes, oldest first.
	Events []domain.Event `cbor:"8,keyasint,omitempty" json:"events"`
	Epoch  uint64         `cbor:"9,keyasint" json:"epoch"`
}

// ProbeRequest is the controller's liveness probe.
type ProbeRequest struct {
	Term uint64 `cbor:"1,keyasint,omitempty"`
}

// Heartbeat is what a node tells its controller every interval (one-way
// MethodHeartbeat), and what it answers to a probe. The monitoring fields
// follow seed 000's host information.
type Heartbeat struct {
	NodeID string    `cbor:"1,keyasint" json:"node_id"`
	MAC    proto.MAC `cbor:"2,keyasint" json:"mac"`
	// Seq counts heartbeats from 1 within one process (Epoch).
	Seq   uint64    `cbor:"3,keyasint" json:"seq"`
	Epoch uint64    `cbor:"4,keyasint" json:"epoch"`
	At    time.Time `cbor:"5,keyasint" json:"at"`
	// Term is the highest controller term the node has seen.
	Term uint64 `cbor:"6,keyasint,omitempty" json:"term,omitempty"`
	// MaxCPU is pCPUs × 100; AllocCPU is the allocated vCPUs × 100.
	MaxCPU   uint64 `cbor:"7,keyasint" json:"max_cpu"`
	AllocCPU uint64 `cbor:"8,keyasint" json:"alloc_cpu"`
	// Memory in bytes: what domains may use, what they hold, what is left.
	MaxMemory   uint64 `cbor:"9,keyasint" json:"max_memory"`
	AllocMemory uint64 `cbor:"10,keyasint" json:"alloc_memory"`
	FreeMemory  uint64 `cbor:"11,keyasint" json:"free_memory"`
	// MaxDisk is the sum of the node's drives in bytes.
	MaxDisk uint64 `cbor:"12,keyasint" json:"max_disk"`
	// NetRX and NetTX are the management interface's byte counters.
	NetRX uint64 `cbor:"13,keyasint" json:"netrx"`
	NetTX uint64 `cbor:"14,keyasint" json:"nettx"`
	// Domains and Running count the node's domains.
	Domains int `cbor:"15,keyasint" json:"domains"`
	Running int `cbor:"16,keyasint" json:"running"`
	// Wild ("pid:name") and Zombies ("dnN") as in NodeInfo.
	Wild    []string `cbor:"17,keyasint,omitempty" json:"wild"`
	Zombies []string `cbor:"18,keyasint,omitempty" json:"zombies"`
	// Crashed is set when a domain crashed since the last heartbeat; such
	// a heartbeat is sent at once, not at the next interval.
	Crashed bool `cbor:"19,keyasint,omitempty" json:"crashed,omitempty"`
	// Events are the state changes since the last heartbeat (at most
	// MaxHeartbeatEvents, the newest kept).
	Events []domain.Event `cbor:"20,keyasint,omitempty" json:"events,omitempty"`
}

// MaxHeartbeatEvents bounds the events one heartbeat carries.
const MaxHeartbeatEvents = 64

// ListRequest asks for the node's domains (or wild guests).
type ListRequest struct{}

// DomainList is every domain of a node, by id.
type DomainList struct {
	Domains []domain.Info `cbor:"1,keyasint" json:"domains"`
}

// CreateRequest defines a domain and, with Start, starts it.
type CreateRequest struct {
	Term  uint64      `cbor:"1,keyasint,omitempty"`
	Spec  domain.Spec `cbor:"2,keyasint"`
	Start bool        `cbor:"3,keyasint,omitempty"`
}

// OpRequest applies a life-cycle operation.
type OpRequest struct {
	Term uint64    `cbor:"1,keyasint,omitempty"`
	ID   int       `cbor:"2,keyasint"`
	Op   domain.Op `cbor:"3,keyasint"`
}

// DomainRequest names one domain (ID 0: every domain, where allowed).
type DomainRequest struct {
	ID int `cbor:"1,keyasint"`
}

// Console is a domain's recent console output.
type Console struct {
	ID   int    `cbor:"1,keyasint" json:"id"`
	Data []byte `cbor:"2,keyasint" json:"data"`
}

// WildList lists the guests found running that the node did not start.
type WildList struct {
	Wild []domain.Wild `cbor:"1,keyasint" json:"wild"`
}

// ImportRequest adopts the wild guest with PID as domain ID.
type ImportRequest struct {
	Term uint64 `cbor:"1,keyasint,omitempty"`
	PID  int    `cbor:"2,keyasint"`
	ID   int    `cbor:"3,keyasint"`
}

// PinRequest pins vCPU VCPU of domain ID to host CPU PCPU.
type PinRequest struct {
	Term uint64 `cbor:"1,keyasint,omitempty"`
	ID   int    `cbor:"2,keyasint"`
	VCPU int    `cbor:"3,keyasint"`
	PCPU int    `cbor:"4,keyasint"`
}

// VCPUList is a domain's vCPUs.
type VCPUList struct {
	ID    int               `cbor:"1,keyasint" json:"id"`
	VCPUs []domain.VCPUInfo `cbor:"2,keyasint" json:"vcpus"`
}

// NUMAReport is "show numa" for one domain or all of them.
type NUMAReport struct {
	// At is the node's clock when it answered; the console prefix uses it.
	At      time.Time         `cbor:"1,keyasint" json:"at"`
	Domains []domain.NUMAInfo `cbor:"2,keyasint" json:"domains"`
}
