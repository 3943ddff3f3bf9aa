package perfc

import "sync"

// Total names a counter whose owner keeps it as a running total: an
// endpoint's frames, an AoE export's commands.
type Total struct{ Name, Unit, Desc string }

// TotalsSource is a Source over totals kept elsewhere. Each value is the
// owner's total less the total at the last reset of that name, so a reset
// zeroes what the set shows and leaves the owner's totals alone. The totals
// are read only when a dump is taken: nothing is added to the owner's hot
// path. Safe for concurrent use.
type TotalsSource struct {
	defs []Total
	read func(totals []uint64)
	mu   sync.Mutex
	base []uint64 // per def: the total at the last reset
	cur  []uint64
}

var _ Source = (*TotalsSource)(nil)

// NewTotalsSource returns a source whose read fills totals in the order of
// defs.
func NewTotalsSource(defs []Total, read func(totals []uint64)) *TotalsSource {
	return &TotalsSource{defs: defs, read: read, base: make([]uint64, len(defs)), cur: make([]uint64, len(defs))}
}

// Read implements Source.
func (s *TotalsSource) Read(dst []Metric, reset func(name string) bool) []Metric {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.cur)
	s.read(s.cur)
	for i, d := range s.defs {
		dst = append(dst, Metric{Name: d.Name, Kind: KindCounter, Unit: d.Unit, Desc: d.Desc, Value: int64(s.cur[i] - s.base[i])})
		if reset != nil && reset(d.Name) {
			s.base[i] = s.cur[i]
		}
	}
	return dst
}
