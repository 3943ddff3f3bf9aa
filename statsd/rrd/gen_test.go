package rrd

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

var (
	genSeed  = flag.Uint64("rrd.seed", 20261122, "seed of the generated differential sequences")
	genCount = flag.Int("rrd.n", 1200, "number of generated differential sequences")
)

// genSeq makes a random but reproducible sequence: gaps past the heartbeat,
// unknown values, 32- and 64-bit counter wraps, values outside min/max,
// fractional timestamps and jumps over many steps.
func genSeq(rng *rand.Rand, id int) *seq {
	steps := []uint64{1, 5, 7, 10, 60, 300}
	step := steps[rng.IntN(len(steps))]
	s := &seq{name: fmt.Sprintf("gen-%d", id)}
	s.spec.Step = step
	nds := 1 + rng.IntN(4)
	types := []DSType{Gauge, Counter, Derive, Absolute, DCounter, DDerive}
	for i := 0; i < nds; i++ {
		d := DS{Name: fmt.Sprintf("ds%d", i), Type: types[rng.IntN(len(types))], Min: math.NaN(), Max: math.NaN()}
		d.Heartbeat = max(1, uint64(float64(step)*(0.5+rng.Float64()*3)))
		switch rng.IntN(4) {
		case 0:
			d.Min = float64(rng.IntN(50)) - 10
		case 1:
			d.Max = float64(50 + rng.IntN(1000))
		case 2:
			d.Min, d.Max = 0, float64(100+rng.IntN(1000))
		}
		s.spec.DS = append(s.spec.DS, d)
	}
	cfs := []CF{Average, Min, Max, Last}
	xffs := []float64{0, 0.1, 0.5, 0.5, 0.9, 0.99}
	nrra := 1 + rng.IntN(5)
	for i := 0; i < nrra; i++ {
		a := RRA{CF: cfs[rng.IntN(4)], XFF: xffs[rng.IntN(len(xffs))]}
		a.Steps = []uint64{1, 1, 2, 3, 4, 5, 12}[rng.IntN(7)]
		a.Rows = []uint64{1, 2, 5, 10, 30, 100}[rng.IntN(6)]
		s.spec.RRA = append(s.spec.RRA, a)
	}
	s.start = 1700000000 + rng.Int64N(int64(step)*20)

	// Update times: mostly about a step apart, with fractions, bursts
	// inside a step, gaps past the heartbeat and rare long jumps.
	nup := 10 + rng.IntN(120)
	usec := int64(0) // microseconds since start, kept exact
	state := make([]struct {
		ctr  uint64
		der  int64
		dctr float64
	}, nds)
	for i := range state {
		state[i].ctr = rng.Uint64N(1 << 20)
		state[i].der = rng.Int64N(2000) - 1000
		state[i].dctr = rng.Float64() * 100
		if rng.IntN(4) == 0 {
			state[i].ctr = 1<<32 - rng.Uint64N(5000)
		}
		if rng.IntN(6) == 0 {
			state[i].ctr = math.MaxUint64 - rng.Uint64N(1<<40)
		}
	}
	stepUS := int64(step) * 1e6
	for k := 0; k < nup; k++ {
		var dt int64
		switch r := rng.IntN(100); {
		case r < 50:
			dt = stepUS/2 + rng.Int64N(stepUS+1)
		case r < 65:
			dt = 1 + rng.Int64N(stepUS/3+1)
		case r < 80:
			dt = stepUS * (2 + rng.Int64N(5))
		case r < 90:
			dt = int64(s.spec.DS[0].Heartbeat)*1e6 + rng.Int64N(stepUS*3+1)
		case r < 96:
			dt = stepUS * (10 + rng.Int64N(200))
		default:
			dt = stepUS * (200 + rng.Int64N(3000))
		}
		// Whole seconds most of the time, else a fraction in 1/64 s:
		// exact in binary, so the microseconds do not depend on how a
		// parser rounds (rrdtool's own strtod is not correctly rounded;
		// the hand-written cases cover decimal fractions).
		switch rng.IntN(3) {
		case 0, 1:
			dt = (dt + 999999) / 1e6 * 1e6
		default:
			dt = (dt + 15624) / 15625 * 15625
		}
		if dt <= 0 {
			dt = 1e6
		}
		usec += dt
		ts := s.start + usec/1e6
		frac := usec % 1e6
		u := upd{ts: strconv.FormatInt(ts, 10)}
		if frac != 0 {
			u.ts += fmt.Sprintf(".%06d", frac)
		}
		for i, d := range s.spec.DS {
			st := &state[i]
			if rng.IntN(12) == 0 {
				u.vals = append(u.vals, "U")
				continue
			}
			var v string
			switch d.Type {
			case Gauge:
				x := rng.Float64()*1400 - 200
				if rng.IntN(3) == 0 {
					x = math.Round(x)
				}
				v = strconv.FormatFloat(x, 'g', 8, 64)
			case Absolute:
				v = strconv.FormatFloat(rng.Float64()*float64(step)*100, 'g', 7, 64)
			case Counter:
				switch r := rng.IntN(40); {
				case r == 0:
					st.ctr = rng.Uint64N(1000) // reset
				case r == 1:
					st.ctr = 1<<32 - rng.Uint64N(100) // near a 32-bit wrap
				case r == 2:
					st.ctr = math.MaxUint64 - rng.Uint64N(1000) // near a 64-bit wrap
				default:
					inc := rng.Uint64N(uint64(step) * 200)
					if st.ctr < 1<<32 && st.ctr+inc >= 1<<32 && rng.IntN(2) == 0 {
						st.ctr = st.ctr + inc - 1<<32 // wrap at 32 bits
					} else {
						st.ctr += inc // wraps at 64 bits on its own
					}
				}
				v = strconv.FormatUint(st.ctr, 10)
			case Derive:
				st.der += rng.Int64N(int64(step)*100) - int64(step)*40
				v = strconv.FormatInt(st.der, 10)
			case DCounter:
				if rng.IntN(20) == 0 {
					st.dctr -= rng.Float64() * 10
				} else {
					st.dctr += rng.Float64() * float64(step) * 10
				}
				v = strconv.FormatFloat(st.dctr, 'g', 10, 64)
			case DDerive:
				st.dctr += rng.Float64()*float64(step)*10 - float64(step)*4
				v = strconv.FormatFloat(st.dctr, 'g', 10, 64)
			}
			u.vals = append(u.vals, v)
		}
		s.updates = append(s.updates, u)
	}
	last := s.start + usec/1e6
	s.fetches = fetchesFor(s.spec, s.start, last, rng)
	return s
}

// TestDifferentialGenerated runs at least 1,000 generated sequences
// through rrdtool and our engine (one rrdtool process for all of them).
// On a mismatch it prints the seed and the failing sequence; rerun one
// seed with -rrd.seed.
func TestDifferentialGenerated(t *testing.T) {
	o := newOracle(t)
	seed := *genSeed
	t.Logf("seed %d, %d sequences", seed, *genCount)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	seqs := make([]*seq, *genCount)
	for i := range seqs {
		seqs[i] = genSeq(rng, i)
	}
	runSeqs(t, o, seqs, seed)
}
