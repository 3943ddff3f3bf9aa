package domain

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mvstack/mvstack/node/inventory"
)

// PageSize is the unit "show numa" counts memory in.
const PageSize = 4096

// NUMAInfo is a domain's memory placement, as "show numa" prints it.
type NUMAInfo struct {
	ID int `cbor:"1,keyasint" json:"id"`
	// TotalPages is the domain's memory in 4 KiB pages.
	TotalPages uint64 `cbor:"2,keyasint" json:"total_pages"`
	// Nodes[i] is the number of pages on host NUMA node i; every online
	// node is listed, holding pages or not.
	Nodes []uint64 `cbor:"3,keyasint" json:"nodes"`
	// VCPUs is the domain's vCPU count.
	VCPUs int `cbor:"4,keyasint" json:"vcpus"`
	// VNodes is the guest's virtual NUMA layout; empty without vNUMA.
	VNodes []VNodeLayout `cbor:"5,keyasint,omitempty" json:"vnodes,omitempty"`
}

// VNodeLayout is one vnode: its host node, vCPUs and guest physical ranges.
type VNodeLayout struct {
	// PNode is the host node, -1 when it has none (printed "???").
	PNode  int     `cbor:"1,keyasint" json:"pnode"`
	VCPUs  []int   `cbor:"2,keyasint" json:"vcpus"`
	Ranges []Range `cbor:"3,keyasint" json:"ranges"`
}

// Range is a guest physical address range; End is the last byte (inclusive).
type Range struct {
	Start uint64 `cbor:"1,keyasint" json:"start"`
	End   uint64 `cbor:"2,keyasint" json:"end"`
}

// Size returns the range's length in bytes.
func (r Range) Size() uint64 { return r.End - r.Start + 1 }

// QEMU pc machine memory map constants.
const (
	// pcMaxBelow4G: guests with at least this much RAM get lowmem capped.
	pcMaxBelow4G = 0xe0000000
	// pcLowmemGiBAligned is the gigabyte-aligned cap for such guests.
	pcLowmemGiBAligned = 0xc0000000
	fourGiB            = 1 << 32
)

// Layout returns the guest physical ranges of each vnode as QEMU's pc
// machine maps RAM: memory below 4 GiB ends at 3 GiB when the guest has at
// least 3.5 GiB (else it is all below 4 GiB), the rest starts at 4 GiB;
// vnodes take consecutive slices of RAM in order, and a vnode that
// straddles the hole gets two ranges. Without vnodes the domain is one
// vnode holding all vCPUs on pnode -1.
func Layout(s Spec) []VNodeLayout {
	vnodes := s.VNodes
	if len(vnodes) == 0 {
		all := make([]int, s.VCPUs)
		for i := range all {
			all[i] = i
		}
		vnodes = []VNode{{PNode: -1, Memory: s.Memory, VCPUs: all}}
	}
	below := s.Memory
	if s.Memory >= pcMaxBelow4G {
		below = pcLowmemGiBAligned
	}
	out := make([]VNodeLayout, len(vnodes))
	var ram uint64 // offset into RAM, not into the address space
	for i, v := range vnodes {
		out[i] = VNodeLayout{PNode: v.PNode, VCPUs: append([]int(nil), v.VCPUs...)}
		start, end := ram, ram+v.Memory // [start, end) in RAM offsets
		if start < below {
			e := min(end, below)
			out[i].Ranges = append(out[i].Ranges, Range{Start: start, End: e - 1})
		}
		if end > below {
			s := max(start, below)
			out[i].Ranges = append(out[i].Ranges, Range{Start: s - below + fourGiB, End: end - below + fourGiB - 1})
		}
		ram = end
	}
	return out
}

// ConsolePrefix is the MicroVisor console's line prefix for time t:
// "(NEX) [2019-07-16 09:10:11] ".
func ConsolePrefix(t time.Time) string {
	return "(NEX) [" + t.UTC().Format(time.DateTime) + "] "
}

// FormatNUMA writes domains as the MicroVisor console's "show numa" does,
// each line starting with prefix (see [ConsolePrefix]; "" for none):
//
//	Domain 5 (total: 8384496):
//	    Node 0: 4192248
//	    Node 1: 4192248
//	     2 vnodes, 32 vcpus, guest physical layout:
//	         0: pnode   0, vcpus 0-15
//	           0000000000000000 - 00000003ffffffff
//	         1: pnode   1, vcpus 16-31
//	           0000000400000000 - 000000080fffffff
func FormatNUMA(w io.Writer, prefix string, domains ...NUMAInfo) error {
	bw := bufio.NewWriter(w)
	line := func(format string, a ...any) {
		bw.WriteString(prefix)
		fmt.Fprintf(bw, format, a...)
		bw.WriteByte('\n')
	}
	for _, d := range domains {
		line("Domain %d (total: %d):", d.ID, d.TotalPages)
		for i, p := range d.Nodes {
			line("    Node %d: %d", i, p)
		}
		if len(d.VNodes) == 0 {
			continue
		}
		line("     %d vnodes, %d vcpus, guest physical layout:", len(d.VNodes), d.VCPUs)
		for i, v := range d.VNodes {
			pnode := "???"
			if v.PNode >= 0 {
				pnode = fmt.Sprintf("%3d", v.PNode)
			}
			line("       %3d: pnode %s, vcpus %s", i, pnode, vcpuRuns(v.VCPUs))
			for _, r := range v.Ranges {
				line("           %016x - %016x", r.Start, r.End)
			}
		}
	}
	return bw.Flush()
}

// vcpuRuns writes ascending vCPU numbers as space-separated runs: "0-15 20".
func vcpuRuns(v []int) string { return strings.ReplaceAll(inventory.FormatCPUList(v), ",", " ") }
