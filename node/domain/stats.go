package domain

import "time"

// Stats is one sample of a domain's counters, covering the per-domain
// metrics of seed 003 §2.6.1 (per vCPU, memory, per VIF, per VBD). Counters
// only grow while the domain runs.
type Stats struct {
	ID     int        `cbor:"1,keyasint" json:"id"`
	At     time.Time  `cbor:"2,keyasint" json:"at"`
	VCPUs  []VCPUStat `cbor:"3,keyasint,omitempty" json:"vcpus"`
	Memory MemoryStat `cbor:"4,keyasint" json:"memory"`
	VIFs   []VIFStat  `cbor:"5,keyasint,omitempty" json:"vifs,omitempty"`
	VBDs   []VBDStat  `cbor:"6,keyasint,omitempty" json:"vbds,omitempty"`
	State  State      `cbor:"7,keyasint" json:"state"`
}

// VCPUStat is one vCPU's accumulated CPU time.
type VCPUStat struct {
	VCPU int           `cbor:"1,keyasint" json:"vcpu"`
	Time time.Duration `cbor:"2,keyasint" json:"time"`
}

// MemoryStat is the domain's memory in bytes.
type MemoryStat struct {
	Current uint64 `cbor:"1,keyasint" json:"current"`
	Max     uint64 `cbor:"2,keyasint" json:"max"`
}

// VIFStat holds the 8 counters of a virtual interface.
type VIFStat struct {
	ID        int    `cbor:"1,keyasint" json:"id"`
	RxBytes   uint64 `cbor:"2,keyasint" json:"rx_bytes"`
	RxPackets uint64 `cbor:"3,keyasint" json:"rx_packets"`
	RxErrors  uint64 `cbor:"4,keyasint" json:"rx_errors"`
	RxDrops   uint64 `cbor:"5,keyasint" json:"rx_drops"`
	TxBytes   uint64 `cbor:"6,keyasint" json:"tx_bytes"`
	TxPackets uint64 `cbor:"7,keyasint" json:"tx_packets"`
	TxErrors  uint64 `cbor:"8,keyasint" json:"tx_errors"`
	TxDrops   uint64 `cbor:"9,keyasint" json:"tx_drops"`
}

// VBDStat holds a virtual block device's counters.
type VBDStat struct {
	ID int `cbor:"1,keyasint" json:"id"`
	// Backing is "nbd" or "file".
	Backing string `cbor:"2,keyasint" json:"backing"`
	// Device is the guest-facing name (vda, vdb, …).
	Device       string `cbor:"3,keyasint" json:"device"`
	Outstanding  uint64 `cbor:"4,keyasint" json:"outstanding"`
	ReadReqs     uint64 `cbor:"5,keyasint" json:"read_reqs"`
	WriteReqs    uint64 `cbor:"6,keyasint" json:"write_reqs"`
	ReadSectors  uint64 `cbor:"7,keyasint" json:"read_sectors"`
	WriteSectors uint64 `cbor:"8,keyasint" json:"write_sectors"`
}

// DeviceName returns the guest name of disk i: vda, vdb, …, vdz, vdaa.
func DeviceName(i int) string {
	name := ""
	for i++; i > 0; i = (i - 1) / 26 {
		name = string(rune('a'+(i-1)%26)) + name
	}
	return "vd" + name
}

// Backing returns "nbd" or "file" for a disk.
func (d Disk) Backing() string {
	if d.NBD != "" {
		return "nbd"
	}
	return "file"
}
