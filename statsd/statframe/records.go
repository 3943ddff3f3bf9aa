package statframe

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Host is the node-level record (seed 003 §2.6.1, 1.1–1.8).
//
//	off len
//	  0   8  time, Unix ns
//	  8   2  pCPUs
//	 10   2  CPU pools
//	 12   2  NUMA nodes
//	 14   2  guests (domains)
//	 16   8  total memory, bytes
//	 24   8  free memory, bytes
//	 32   8  load average, 1 min
//	 40   8  load average, 5 min
//	 48   8  load average, 15 min
type Host struct {
	Time                    int64
	PCPUs, Pools, NUMANodes uint16
	Guests                  uint16
	MemTotal, MemFree       uint64
	Load1, Load5, Load15    float64
}

// PCPU is one physical CPU (2.1–2.3).
//
//	off len
//	  0   2  CPU id
//	  2   8  time, Unix ns
//	 10   8  CPU time (busy, not idle), ns since boot
type PCPU struct {
	ID      uint16
	Time    int64
	CPUTime uint64
}

// NUMA is one NUMA node (3.1–3.3).
//
//	off len
//	  0   2  node id
//	  2   8  total memory, bytes
//	 10   8  free memory, bytes
type NUMA struct {
	ID                uint16
	MemTotal, MemFree uint64
}

// Pool is one CPU pool (4.1–4.4).
//
//	off len
//	  0   2  pool id
//	  2   8  load (runnable vCPUs per CPU, a float)
//	 10   2  CPUs
//	 12   2  guests
type Pool struct {
	ID     uint16
	Load   float64
	CPUs   uint16
	Guests uint16
}

// Domain names a guest domain (5.1).
//
//	off len
//	  0   4  domain id (instance number; the domain is dnN)
//	  4  16  UUID
type Domain struct {
	Domain uint32
	UUID   [16]byte
}

// VCPU is one virtual CPU of a domain (6.1–6.3).
//
//	off len
//	  0   4  domain id
//	  4   2  vCPU id
//	  6   8  time, Unix ns
//	 14   8  utilisation over the last interval, percent (NaN: unknown)
//	 22   8  CPU time, ns since the domain started
type VCPU struct {
	Domain  uint32
	ID      uint16
	Time    int64
	Util    float64
	CPUTime uint64
}

// Memory is a domain's memory (7.1–7.3).
//
//	off len
//	  0   4  domain id
//	  4   8  time, Unix ns
//	 12   8  current, bytes
//	 20   8  max, bytes
type Memory struct {
	Domain       uint32
	Time         int64
	Current, Max uint64
}

// VIF is one virtual interface of a domain (8.1–8.10): eight counters.
//
//	off len
//	  0   4  domain id
//	  4   2  VIF id
//	  6   8  time, Unix ns
//	 14  64  rx bytes, rx packets, rx errors, rx drops,
//	         tx bytes, tx packets, tx errors, tx drops (8 bytes each)
type VIF struct {
	Domain                                uint32
	ID                                    uint16
	Time                                  int64
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// VBD is one virtual block device of a domain (9.1–9.10).
//
//	off len
//	  0   4  domain id
//	  4   2  VBD id
//	  6   8  time, Unix ns
//	 14   1  backing type (Backing)
//	 15   8  outstanding requests
//	 23   8  read requests
//	 31   8  write requests
//	 39   8  read sectors
//	 47   8  write sectors
//	 55   1  device name length (at most 32)
//	 56   …  device name, printable ASCII
type VBD struct {
	Domain                    uint32
	ID                        uint16
	Time                      int64
	Backing                   Backing
	Outstanding               uint64
	ReadReqs, WriteReqs       uint64
	ReadSectors, WriteSectors uint64
	Device                    string
}

// Backing is a VBD's backing device type.
type Backing uint8

// Backing device types.
const (
	BackingUnknown Backing = 0
	BackingFile    Backing = 1
	BackingNBD     Backing = 2
	BackingAoE     Backing = 3
	BackingBlock   Backing = 4
)

var backingNames = [...]string{"unknown", "file", "nbd", "aoe", "block"}

// String names the backing type.
func (b Backing) String() string {
	if int(b) < len(backingNames) {
		return backingNames[b]
	}
	return fmt.Sprintf("backing(%d)", uint8(b))
}

// ParseBacking returns the backing type named s (BackingUnknown for names
// it does not know).
func ParseBacking(s string) Backing {
	for i, n := range backingNames {
		if n == s {
			return Backing(i)
		}
	}
	return BackingUnknown
}

var (
	_ Record = (*Host)(nil)
	_ Record = (*PCPU)(nil)
	_ Record = (*NUMA)(nil)
	_ Record = (*Pool)(nil)
	_ Record = (*Domain)(nil)
	_ Record = (*VCPU)(nil)
	_ Record = (*Memory)(nil)
	_ Record = (*VIF)(nil)
	_ Record = (*VBD)(nil)
)

var minLens = [...]int{TypeHost: 56, TypePCPU: 18, TypeNUMA: 18, TypePool: 14, TypeDomain: 20,
	TypeVCPU: 30, TypeMemory: 28, TypeVIF: 78, TypeVBD: 56}

func minLen(t Type) int { return minLens[t] }

func newRecord(t Type) Record {
	switch t {
	case TypeHost:
		return new(Host)
	case TypePCPU:
		return new(PCPU)
	case TypeNUMA:
		return new(NUMA)
	case TypePool:
		return new(Pool)
	case TypeDomain:
		return new(Domain)
	case TypeVCPU:
		return new(VCPU)
	case TypeMemory:
		return new(Memory)
	case TypeVIF:
		return new(VIF)
	case TypeVBD:
		return new(VBD)
	}
	return nil
}

// checkRecord validates what a fixed layout cannot: a VBD's name.
func checkRecord(t Type, b []byte) error {
	if t != TypeVBD {
		return nil
	}
	n := int(b[55])
	if n > MaxDeviceName {
		return fmt.Errorf("device name of %d bytes, at most %d", n, MaxDeviceName)
	}
	if len(b) < 56+n {
		return fmt.Errorf("device name of %d bytes in %d", n, len(b)-56)
	}
	for _, c := range b[56 : 56+n] {
		if !printable(c) {
			return fmt.Errorf("device name byte %#02x is not printable ASCII", c)
		}
	}
	return nil
}

func printable(c byte) bool { return c > ' ' && c < 0x7f }

var be = binary.BigEndian

func putF(b []byte, v float64) { be.PutUint64(b, math.Float64bits(v)) }
func getF(b []byte) float64    { return math.Float64frombits(be.Uint64(b)) }

// Type implements Record.
func (*Host) Type() Type { return TypeHost }

// Len implements Record.
func (*Host) Len() int { return 56 }

func (r *Host) marshal(b []byte) {
	be.PutUint64(b, uint64(r.Time))
	be.PutUint16(b[8:], r.PCPUs)
	be.PutUint16(b[10:], r.Pools)
	be.PutUint16(b[12:], r.NUMANodes)
	be.PutUint16(b[14:], r.Guests)
	be.PutUint64(b[16:], r.MemTotal)
	be.PutUint64(b[24:], r.MemFree)
	putF(b[32:], r.Load1)
	putF(b[40:], r.Load5)
	putF(b[48:], r.Load15)
}

func (r *Host) unmarshal(b []byte) {
	*r = Host{
		Time: int64(be.Uint64(b)), PCPUs: be.Uint16(b[8:]), Pools: be.Uint16(b[10:]),
		NUMANodes: be.Uint16(b[12:]), Guests: be.Uint16(b[14:]),
		MemTotal: be.Uint64(b[16:]), MemFree: be.Uint64(b[24:]),
		Load1: getF(b[32:]), Load5: getF(b[40:]), Load15: getF(b[48:]),
	}
}

// Type implements Record.
func (*PCPU) Type() Type { return TypePCPU }

// Len implements Record.
func (*PCPU) Len() int { return 18 }

func (r *PCPU) marshal(b []byte) {
	be.PutUint16(b, r.ID)
	be.PutUint64(b[2:], uint64(r.Time))
	be.PutUint64(b[10:], r.CPUTime)
}

func (r *PCPU) unmarshal(b []byte) {
	*r = PCPU{ID: be.Uint16(b), Time: int64(be.Uint64(b[2:])), CPUTime: be.Uint64(b[10:])}
}

// Type implements Record.
func (*NUMA) Type() Type { return TypeNUMA }

// Len implements Record.
func (*NUMA) Len() int { return 18 }

func (r *NUMA) marshal(b []byte) {
	be.PutUint16(b, r.ID)
	be.PutUint64(b[2:], r.MemTotal)
	be.PutUint64(b[10:], r.MemFree)
}

func (r *NUMA) unmarshal(b []byte) {
	*r = NUMA{ID: be.Uint16(b), MemTotal: be.Uint64(b[2:]), MemFree: be.Uint64(b[10:])}
}

// Type implements Record.
func (*Pool) Type() Type { return TypePool }

// Len implements Record.
func (*Pool) Len() int { return 14 }

func (r *Pool) marshal(b []byte) {
	be.PutUint16(b, r.ID)
	putF(b[2:], r.Load)
	be.PutUint16(b[10:], r.CPUs)
	be.PutUint16(b[12:], r.Guests)
}

func (r *Pool) unmarshal(b []byte) {
	*r = Pool{ID: be.Uint16(b), Load: getF(b[2:]), CPUs: be.Uint16(b[10:]), Guests: be.Uint16(b[12:])}
}

// Type implements Record.
func (*Domain) Type() Type { return TypeDomain }

// Len implements Record.
func (*Domain) Len() int { return 20 }

func (r *Domain) marshal(b []byte) {
	be.PutUint32(b, r.Domain)
	copy(b[4:20], r.UUID[:])
}

func (r *Domain) unmarshal(b []byte) {
	*r = Domain{Domain: be.Uint32(b)}
	copy(r.UUID[:], b[4:20])
}

// UUIDString formats the UUID in its canonical 8-4-4-4-12 form.
func (r *Domain) UUIDString() string {
	u := r.UUID
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Type implements Record.
func (*VCPU) Type() Type { return TypeVCPU }

// Len implements Record.
func (*VCPU) Len() int { return 30 }

func (r *VCPU) marshal(b []byte) {
	be.PutUint32(b, r.Domain)
	be.PutUint16(b[4:], r.ID)
	be.PutUint64(b[6:], uint64(r.Time))
	putF(b[14:], r.Util)
	be.PutUint64(b[22:], r.CPUTime)
}

func (r *VCPU) unmarshal(b []byte) {
	*r = VCPU{Domain: be.Uint32(b), ID: be.Uint16(b[4:]), Time: int64(be.Uint64(b[6:])),
		Util: getF(b[14:]), CPUTime: be.Uint64(b[22:])}
}

// Type implements Record.
func (*Memory) Type() Type { return TypeMemory }

// Len implements Record.
func (*Memory) Len() int { return 28 }

func (r *Memory) marshal(b []byte) {
	be.PutUint32(b, r.Domain)
	be.PutUint64(b[4:], uint64(r.Time))
	be.PutUint64(b[12:], r.Current)
	be.PutUint64(b[20:], r.Max)
}

func (r *Memory) unmarshal(b []byte) {
	*r = Memory{Domain: be.Uint32(b), Time: int64(be.Uint64(b[4:])), Current: be.Uint64(b[12:]), Max: be.Uint64(b[20:])}
}

// Type implements Record.
func (*VIF) Type() Type { return TypeVIF }

// Len implements Record.
func (*VIF) Len() int { return 78 }

// Counters returns the eight counters in wire order.
func (r *VIF) Counters() [8]uint64 {
	return [8]uint64{r.RxBytes, r.RxPackets, r.RxErrors, r.RxDrops, r.TxBytes, r.TxPackets, r.TxErrors, r.TxDrops}
}

func (r *VIF) marshal(b []byte) {
	be.PutUint32(b, r.Domain)
	be.PutUint16(b[4:], r.ID)
	be.PutUint64(b[6:], uint64(r.Time))
	for i, c := range r.Counters() {
		be.PutUint64(b[14+8*i:], c)
	}
}

func (r *VIF) unmarshal(b []byte) {
	c := func(i int) uint64 { return be.Uint64(b[14+8*i:]) }
	*r = VIF{Domain: be.Uint32(b), ID: be.Uint16(b[4:]), Time: int64(be.Uint64(b[6:])),
		RxBytes: c(0), RxPackets: c(1), RxErrors: c(2), RxDrops: c(3),
		TxBytes: c(4), TxPackets: c(5), TxErrors: c(6), TxDrops: c(7)}
}

// Type implements Record.
func (*VBD) Type() Type { return TypeVBD }

// Len implements Record: the device name is cut to MaxDeviceName bytes.
func (r *VBD) Len() int { return 56 + min(len(r.Device), MaxDeviceName) }

func (r *VBD) marshal(b []byte) {
	be.PutUint32(b, r.Domain)
	be.PutUint16(b[4:], r.ID)
	be.PutUint64(b[6:], uint64(r.Time))
	b[14] = byte(r.Backing)
	be.PutUint64(b[15:], r.Outstanding)
	be.PutUint64(b[23:], r.ReadReqs)
	be.PutUint64(b[31:], r.WriteReqs)
	be.PutUint64(b[39:], r.ReadSectors)
	be.PutUint64(b[47:], r.WriteSectors)
	n := min(len(r.Device), MaxDeviceName)
	b[55] = byte(n)
	for i := 0; i < n; i++ {
		c := r.Device[i]
		if !printable(c) {
			c = '_' // the decoder accepts printable ASCII only
		}
		b[56+i] = c
	}
}

func (r *VBD) unmarshal(b []byte) {
	n := int(b[55])
	*r = VBD{Domain: be.Uint32(b), ID: be.Uint16(b[4:]), Time: int64(be.Uint64(b[6:])),
		Backing: Backing(b[14]), Outstanding: be.Uint64(b[15:]),
		ReadReqs: be.Uint64(b[23:]), WriteReqs: be.Uint64(b[31:]),
		ReadSectors: be.Uint64(b[39:]), WriteSectors: be.Uint64(b[47:]),
		Device: string(b[56 : 56+n])}
}
