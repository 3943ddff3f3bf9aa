package target

import (
	"sync"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
)

// span is the sector range of one request in flight.
type span struct {
	id     uint64
	lo, hi uint64
	write  bool
}

func (a span) conflicts(b span) bool {
	return (a.write || b.write) && a.lo < b.hi && b.lo < a.hi
}

// order keeps requests that overlap a write in arrival order while the
// workers run everything else in parallel. Without it a retransmitted
// write could overtake a newer write to the same sectors inside the target.
type order struct {
	mu      sync.Mutex
	next    uint64
	busy    []span
	waiting []job
}

func spanOf(f *aoe.Frame) (span, bool) {
	switch f.ATA.CmdStatus {
	case ata.CmdReadSectors, ata.CmdReadSectorsExt:
	case ata.CmdWriteSectors, ata.CmdWriteSectorsExt:
	default:
		return span{}, false
	}
	lo := f.ATA.Sector()
	write := f.ATA.CmdStatus == ata.CmdWriteSectors || f.ATA.CmdStatus == ata.CmdWriteSectorsExt
	return span{lo: lo, hi: lo + uint64(f.ATA.SectorCount), write: write}, true
}

// admit returns true when j may run now; otherwise j is queued and will be
// returned by a later done.
func (o *order) admit(j *job) bool {
	sp, ok := spanOf(&j.f)
	if !ok {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	sp.id = o.next
	j.span = sp
	if o.blocked(sp, o.waiting) {
		o.waiting = append(o.waiting, *j)
		return false
	}
	o.busy = append(o.busy, sp)
	return true
}

// blocked reports whether sp conflicts with a running request or with one
// of the given waiting ones.
func (o *order) blocked(sp span, waiting []job) bool {
	for _, b := range o.busy {
		if b.conflicts(sp) {
			return true
		}
	}
	for _, w := range waiting {
		if w.span.conflicts(sp) {
			return true
		}
	}
	return false
}

// done retires j and returns the queued jobs that may run now.
func (o *order) done(j *job) []job {
	if j.span.id == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, b := range o.busy {
		if b.id == j.span.id {
			o.busy = append(o.busy[:i], o.busy[i+1:]...)
			break
		}
	}
	var ready, kept []job
	for _, w := range o.waiting {
		if o.blocked(w.span, kept) {
			kept = append(kept, w)
			continue
		}
		o.busy = append(o.busy, w.span)
		ready = append(ready, w)
	}
	o.waiting = kept
	return ready
}
