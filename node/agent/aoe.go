package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/perfc"
)

// The node's AoE target serves the disks given with --export, and the
// volume replicas the controller assigns (storage.go), and counts what
// they serve in its perfc set (aoe.target.*).

// Export is one AoE export of the node: "SHELF.SLOT:PATH[,ro][,wb]".
type Export struct {
	Shelf     uint16 `json:"shelf"`
	Slot      uint8  `json:"slot"`
	Path      string `json:"path"`
	ReadOnly  bool   `json:"read_only,omitempty"`
	WriteBack bool   `json:"write_back,omitempty"`
}

// ParseExport parses "SHELF.SLOT:PATH[,ro][,wb]", e.g. "7.1:/srv/disk1.img,ro".
func ParseExport(s string) (Export, error) {
	addr, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Export{}, fmt.Errorf("export %q: want SHELF.SLOT:PATH[,ro][,wb], e.g. 7.1:/srv/disk1.img", s)
	}
	sh, sl, ok := strings.Cut(addr, ".")
	shelf, err1 := strconv.ParseUint(sh, 10, 16)
	slot, err2 := strconv.ParseUint(sl, 10, 8)
	if !ok || err1 != nil || err2 != nil || shelf > 0xfffe || slot > 0xfe {
		return Export{}, fmt.Errorf("export %q: shelf.slot %q must be 0–65534 . 0–254", s, addr)
	}
	parts := strings.Split(rest, ",")
	e := Export{Shelf: uint16(shelf), Slot: uint8(slot), Path: parts[0]}
	for _, o := range parts[1:] {
		switch o {
		case "ro":
			e.ReadOnly = true
		case "wb":
			e.WriteBack = true
		default:
			return Export{}, fmt.Errorf("export %q: unknown option %q (ro, wb)", s, o)
		}
	}
	return e, nil
}

// exportsSource reads the exports' counters into the node's set when a
// dump is taken, summed over the exports.
func exportsSource(srv *target.Server) *perfc.TotalsSource {
	defs := make([]perfc.Total, len(exportDefs))
	for i, d := range exportDefs {
		defs[i] = perfc.Total{Name: d.name, Unit: d.unit, Desc: d.desc}
	}
	return perfc.NewTotalsSource(defs, func(totals []uint64) {
		for _, e := range srv.Exports() {
			st := e.Stats()
			for i, d := range exportDefs {
				totals[i] += d.value(st)
			}
		}
	})
}

var exportDefs = [...]struct {
	name, unit, desc string
	value            func(target.Stats) uint64
}{
	{"aoe.target.cmd.read", "commands", "ATA reads served by this node's AoE targets", func(s target.Stats) uint64 { return s.Reads }},
	{"aoe.target.cmd.write", "commands", "ATA writes served (acknowledged) by this node's AoE targets", func(s target.Stats) uint64 { return s.Writes }},
	{"aoe.target.cmd.flush", "commands", "ATA cache flushes served by this node's AoE targets", func(s target.Stats) uint64 { return s.Flushes }},
	{"aoe.target.read.bytes", "bytes", "Data served by this node's AoE targets", func(s target.Stats) uint64 { return s.ReadBytes }},
	{"aoe.target.write.bytes", "bytes", "Data stored by this node's AoE targets", func(s target.Stats) uint64 { return s.WrittenBytes }},
	{"aoe.target.errors.ata", "commands", "ATA commands answered with ERR (IDNF, aborted)", func(s target.Stats) uint64 { return s.ATAErrors }},
	{"aoe.target.errors.aoe", "commands", "AoE answers with the error flag", func(s target.Stats) uint64 { return s.AoEErrors }},
	{"aoe.target.drops.masked", "frames", "Requests from a MAC outside an export's mask list", func(s target.Stats) uint64 { return s.Masked }},
	{"aoe.target.drops.reserved", "frames", "Requests refused by a reservation", func(s target.Stats) uint64 { return s.ReservationConflicts }},
	{"aoe.target.config.queries", "commands", "Query Config requests answered", func(s target.Stats) uint64 { return s.ConfigQueries }},
}
