package rrd

import "fmt"

// RRD is an RRD held in memory: definition, state and rows. It is not safe
// for concurrent use.
type RRD struct {
	Spec  Spec
	State State
	// Data holds each archive's ring: Data[rra][row*len(DS)+ds].
	Data [][]float64
	sc   scratch
}

// New creates an RRD whose last update is start, every row unknown.
func New(spec Spec, start Time) (*RRD, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.clone()
	r := &RRD{Spec: spec, State: spec.NewState(start)}
	nds := len(spec.DS)
	r.Data = make([][]float64, len(spec.RRA))
	for i, a := range spec.RRA {
		d := make([]float64, int(a.Rows)*nds)
		for j := range d {
			d[j] = dnan
		}
		r.Data[i] = d
	}
	return r, nil
}

func (s Spec) clone() Spec {
	return Spec{Step: s.Step, DS: append([]DS(nil), s.DS...), RRA: append([]RRA(nil), s.RRA...)}
}

// Update applies one update: a value per DS at time t.
func (r *RRD) Update(t Time, vals ...Value) error {
	return r.Spec.update(&r.State, &r.sc, t, vals, r.putRow)
}

// UpdateUnix applies one update at ts seconds since the epoch; like
// rrdtool, only whole microseconds of the fraction count.
func (r *RRD) UpdateUnix(ts float64, vals ...Value) error {
	return r.Update(TimeOf(ts), vals...)
}

func (r *RRD) putRow(rra int, row uint64, vals []float64) {
	nds := len(r.Spec.DS)
	copy(r.Data[rra][int(row)*nds:], vals)
}

func (r *RRD) readRow(rra int, row uint64, dst []float64) error {
	nds := len(r.Spec.DS)
	copy(dst, r.Data[rra][int(row)*nds:int(row+1)*nds])
	return nil
}

// Fetch returns the values rrdtool fetch would print for cf between start
// and end at resolution res seconds (0: the finest).
func (r *RRD) Fetch(cf CF, start, end int64, res uint64) (*FetchResult, error) {
	return r.Spec.fetch(&r.State, cf, start, end, res, r.readRow)
}

// Last returns the time of the last update.
func (r *RRD) Last() Time { return r.State.LastUp }

// First returns the time of the oldest row of archive rra.
func (r *RRD) First(rra int) (int64, error) { return first(&r.Spec, &r.State, rra) }

func first(s *Spec, st *State, rra int) (int64, error) {
	if rra < 0 || rra >= len(s.RRA) {
		return 0, fmt.Errorf("%w: no RRA %d", ErrFetch, rra)
	}
	a := s.RRA[rra]
	step := int64(s.Step * a.Steps)
	end := st.LastUp.Sec - mod(st.LastUp.Sec, step)
	return end - step*int64(a.Rows-1), nil
}

// Clone returns a deep copy.
func (r *RRD) Clone() *RRD {
	c := &RRD{Spec: r.Spec.clone(), State: r.State.Clone(), Data: make([][]float64, len(r.Data))}
	for i, d := range r.Data {
		c.Data[i] = append([]float64(nil), d...)
	}
	return c
}
