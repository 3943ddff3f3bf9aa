package rrd

import (
	"fmt"
	"math"
)

// PDPPrep is a data source's primary data point in progress.
type PDPPrep struct {
	LastDS     Value   // the last update value (COUNTER and friends subtract it)
	Value      float64 // integral of the rate over the known seconds so far; NaN: none yet
	UnknownSec uint64  // whole unknown seconds in the PDP so far
}

// CDPPrep is an archive's consolidated data point in progress for one data
// source.
type CDPPrep struct {
	Value      float64 // running consolidation (sum for AVERAGE)
	UnknownPDP uint64  // unknown PDPs in the CDP so far
	Primary    float64 // the last CDP written
	Secondary  float64 // the value of the rows after it when an update spans several
}

// State is everything in an RRD that changes on update, except the rows.
type State struct {
	LastUp Time
	PDP    []PDPPrep // one per DS
	CDP    []CDPPrep // RRA-major: CDP[rra*len(DS)+ds]
	CurRow []uint64  // per RRA: the row written last
}

// dnan is the NaN rrdtool stores for unknown (its sign bit is set, so
// rrdtool prints it "-nan").
var dnan = math.Float64frombits(0xfff8000000000000)

// NewState returns the state of an RRD created with start as its last
// update time: the PDP in progress is unknown from the step boundary to
// start, and each archive's CDP in progress counts the PDPs already
// elapsed in it as unknown.
func (s *Spec) NewState(start Time) State {
	nds := len(s.DS)
	st := State{
		LastUp: start,
		PDP:    make([]PDPPrep, nds),
		CDP:    make([]CDPPrep, len(s.RRA)*nds),
		CurRow: make([]uint64, len(s.RRA)),
	}
	step := int64(s.Step)
	for i := range st.PDP {
		st.PDP[i] = PDPPrep{Value: dnan, UnknownSec: uint64(mod(start.Sec, step))}
	}
	pdpIndex := uint64(floorDiv(start.Sec, step))
	for r, a := range s.RRA {
		for d := 0; d < nds; d++ {
			c := &st.CDP[r*nds+d]
			c.Value = dnan
			if a.Steps > 1 {
				c.UnknownPDP = pdpIndex % a.Steps
			}
		}
		st.CurRow[r] = a.Rows - 1
	}
	return st
}

// Clone returns a deep copy.
func (st *State) Clone() State {
	c := State{LastUp: st.LastUp}
	c.PDP = append([]PDPPrep(nil), st.PDP...)
	c.CDP = append([]CDPPrep(nil), st.CDP...)
	c.CurRow = append([]uint64(nil), st.CurRow...)
	return c
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func floorDiv(a, b int64) int64 { return (a - mod(a, b)) / b }

// RowSink receives the rows an update writes: row is the index in the
// archive's ring, vals one value per DS (only valid during the call).
type RowSink func(rra int, row uint64, vals []float64)

// scratch holds per-update buffers so updates do not allocate.
type scratch struct {
	pdpNew   []float64
	pdpFirst []float64
	pdpRest  []float64
	row      []float64
}

func (sc *scratch) ensure(nds int) {
	if cap(sc.pdpNew) < nds {
		sc.pdpNew = make([]float64, nds)
		sc.pdpFirst = make([]float64, nds)
		sc.pdpRest = make([]float64, nds)
		sc.row = make([]float64, nds)
	}
	sc.pdpNew, sc.pdpFirst, sc.pdpRest = sc.pdpNew[:nds], sc.pdpFirst[:nds], sc.pdpRest[:nds]
	sc.row = sc.row[:nds]
}

// update applies one update to st and hands the rows it completes to sink.
// On error st is unchanged.
func (s *Spec) update(st *State, sc *scratch, t Time, vals []Value, sink RowSink) error {
	nds := len(s.DS)
	if len(vals) != nds {
		return fmt.Errorf("%w: %d values for %d data sources", ErrValue, len(vals), nds)
	}
	if t.Usec < 0 || t.Usec > 999999 {
		return fmt.Errorf("%w: microseconds %d out of range", ErrTime, t.Usec)
	}
	if !st.LastUp.Before(t) {
		return fmt.Errorf("%w: illegal attempt to update using time %s when last update time is %s (minimum one second step)", ErrTime, t, st.LastUp)
	}
	for i, v := range vals {
		if err := v.checkFor(s.DS[i].Type); err != nil {
			return fmt.Errorf("DS %q: %w", s.DS[i].Name, err)
		}
	}
	sc.ensure(nds)
	last := st.LastUp
	interval := float64(t.Sec-last.Sec) + float64(t.Usec-last.Usec)/1e6

	// The integral of each data source's rate over the interval.
	for i, d := range s.DS {
		sc.pdpNew[i] = pdpNew(d, st.PDP[i].LastDS, vals[i], interval)
		st.PDP[i].LastDS = vals[i]
	}

	step := int64(s.Step)
	procSt := last.Sec - mod(last.Sec, step)
	occuSt := t.Sec - mod(t.Sec, step)
	st.LastUp = t
	if occuSt == procSt {
		for i := range s.DS {
			p := &st.PDP[i]
			if math.IsNaN(sc.pdpNew[i]) {
				p.UnknownSec += uint64(math.Floor(interval))
			} else if math.IsNaN(p.Value) {
				p.Value = sc.pdpNew[i]
			} else {
				p.Value += sc.pdpNew[i]
			}
		}
		return nil
	}

	// The update crosses at least one step boundary. rrdtool has two
	// ways to finish the PDPs (found by experiment, see docs/rrd.md):
	//
	// Whole: every elapsed PDP gets the same value, the PDP in progress
	// plus this interval up to the last boundary, over the known part of
	// the time from the previous step boundary. Used when the update
	// crosses one boundary, when the previous update sat on a boundary, or
	// when less than a whole second separates it from the next one.
	//
	// Split: otherwise the first PDP is finished alone with the whole
	// seconds up to its boundary, and the later ones share what is left of
	// this interval's integral before the last boundary.
	diffSt := occuSt - procSt
	elapsed := uint64(diffSt / step)
	toFirst := math.Floor(float64(procSt+step-last.Sec) - float64(last.Usec)/1e6)
	split := elapsed > 1 && toFirst >= 1 && toFirst < float64(step)
	preInt := float64(occuSt-last.Sec) - float64(last.Usec)/1e6
	postInt := float64(t.Sec-occuSt) + float64(t.Usec)/1e6
	pre, span, hbInterval := preInt, float64(diffSt), interval
	if split {
		pre, span, hbInterval = toFirst, float64(step), toFirst
	}
	halfStep := float64(s.Step) / 2
	for i, d := range s.DS {
		p := &st.PDP[i]
		n := sc.pdpNew[i]
		var temp, preUnknown float64
		if math.IsNaN(n) {
			preUnknown = pre
			temp = p.Value
		} else {
			temp = p.Value
			if math.IsNaN(temp) {
				temp = 0
			}
			temp += n / interval * pre
		}
		// A PDP is unknown past the heartbeat, or when more than half its
		// step was unknown before this update.
		if hbInterval > float64(d.Heartbeat) || halfStep < float64(p.UnknownSec) {
			temp = dnan
		} else {
			temp /= span - float64(p.UnknownSec) - preUnknown
		}
		sc.pdpFirst[i] = temp
		if split {
			sc.pdpRest[i] = n / interval * (interval - toFirst - postInt) / float64(diffSt-step)
		}
		if math.IsNaN(n) {
			p.UnknownSec = uint64(math.Floor(postInt))
			p.Value = dnan
		} else {
			p.UnknownSec = 0
			p.Value = n / interval * postInt
		}
	}

	// Each run of equal PDPs is consolidated on its own; a run writes at
	// most a ring's worth of rows, its first CDP first.
	procIndex := uint64(floorDiv(procSt, step))
	for r, a := range s.RRA {
		if split {
			s.consolidate(st, sc, r, a, 1, procIndex, sc.pdpFirst, sink)
			s.consolidate(st, sc, r, a, elapsed-1, procIndex+1, sc.pdpRest, sink)
		} else {
			s.consolidate(st, sc, r, a, elapsed, procIndex, sc.pdpFirst, sink)
		}
	}
	return nil
}

// consolidate feeds n PDPs, pdp[ds] each, to archive r; procIndex is the
// index (time/step) of the PDP before them.
func (s *Spec) consolidate(st *State, sc *scratch, r int, a RRA, n, procIndex uint64, pdp []float64, sink RowSink) {
	nds := len(s.DS)
	cdps := st.CDP[r*nds : (r+1)*nds]
	offset := a.Steps - procIndex%a.Steps // PDPs that complete the CDP in progress
	if n < offset {
		for i := range cdps {
			accumulate(&cdps[i], a.CF, pdp[i], n)
		}
		return
	}
	rows := (n-offset)/a.Steps + 1
	rest := (n - offset) % a.Steps
	limit := float64(a.Steps) * a.XFF
	for i := range cdps {
		c := &cdps[i]
		p := pdp[i]
		if a.Steps == 1 {
			c.Primary = p
			if rows > 1 {
				c.Secondary = p
			}
			sc.row[i] = p
			continue
		}
		unknown := c.UnknownPDP
		if math.IsNaN(p) {
			unknown += offset
		}
		var v float64
		if float64(unknown) > limit {
			v = dnan
		} else {
			accumulate(c, a.CF, p, offset)
			v = c.Value
			switch a.CF {
			case Average:
				v /= float64(a.Steps - unknown)
			case Last:
				v = p
			}
		}
		c.Primary = v
		c.Secondary = p
		sc.row[i] = v
		// Start the next CDP with the PDPs past the last boundary.
		c.UnknownPDP = 0
		switch a.CF {
		case Average:
			c.Value = 0
		case Min:
			c.Value = math.Inf(1)
		case Max:
			c.Value = math.Inf(-1)
		default:
			c.Value = dnan
		}
		accumulate(c, a.CF, p, rest)
	}
	cur := st.CurRow[r]
	k := min(rows, a.Rows)
	for j := uint64(0); j < k; j++ {
		if j == 1 {
			copy(sc.row, pdp)
		}
		sink(r, (cur+1+j)%a.Rows, sc.row)
	}
	st.CurRow[r] = (cur + k) % a.Rows
}

// accumulate adds n PDPs of value pdp to a CDP in progress.
func accumulate(c *CDPPrep, cf CF, pdp float64, n uint64) {
	if n == 0 {
		return
	}
	if math.IsNaN(pdp) {
		c.UnknownPDP += n
		return
	}
	switch cf {
	case Average:
		if math.IsNaN(c.Value) {
			c.Value = 0
		}
		c.Value += pdp * float64(n)
	case Min:
		if math.IsNaN(c.Value) || pdp < c.Value {
			c.Value = pdp
		}
	case Max:
		if math.IsNaN(c.Value) || pdp > c.Value {
			c.Value = pdp
		}
	case Last:
		c.Value = pdp
	}
}

// pdpNew is the integral of a data source's rate over the interval ending
// with the update value cur (NaN when unknown or out of bounds).
func pdpNew(d DS, prev, cur Value, interval float64) float64 {
	if interval > float64(d.Heartbeat) || cur.kind == kindUnknown {
		return dnan
	}
	var n float64
	switch d.Type {
	case Gauge:
		n = cur.f * interval
	case Absolute:
		n = cur.f
	case Counter, Derive:
		if prev.kind != kindInt || prev.neg != cur.neg {
			// rrdtool's exact subtraction gives up on mixed signs.
			return dnan
		}
		a, b := cur.mag, prev.mag
		if cur.neg {
			a, b = b, a
		}
		if a >= b {
			n = digitsToFloat(a - b)
		} else {
			n = -digitsToFloat(b - a)
		}
		if d.Type == Counter {
			if n < 0 {
				n += 4294967295.0
			}
			if n < 0 {
				n += 18446744069414584320.0
			}
		}
	case DCounter, DDerive:
		if prev.kind == kindUnknown {
			return dnan
		}
		n = cur.f - prev.f
		if d.Type == DCounter && n < 0 {
			return dnan
		}
	}
	if math.IsNaN(n) {
		return dnan
	}
	rate := n / interval
	if !math.IsNaN(d.Max) && rate > d.Max || !math.IsNaN(d.Min) && rate < d.Min {
		return dnan
	}
	return n
}

// digitsToFloat converts an exact difference to a float the way rrdtool's
// decimal subtraction does: digit by digit, left to right, rounding at each
// step (exact below 2^53, a few ULPs off above).
func digitsToFloat(m uint64) float64 {
	if m < 1<<53 {
		return float64(m)
	}
	var buf [20]byte
	i := len(buf)
	for m > 0 {
		i--
		buf[i] = byte(m % 10)
		m /= 10
	}
	var f float64
	for _, d := range buf[i:] {
		f = f*10 + float64(d)
	}
	return f
}
