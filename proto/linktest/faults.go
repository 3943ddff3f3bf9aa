package linktest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Faults describes an imperfect segment. Its [Faults.Hook] applies the
// faults to every copy of every frame, drawing from a random source seeded
// with Seed, so the same seed gives the same sequence of verdicts.
type Faults struct {
	Loss      float64 // probability that a frame is dropped, 0 to 1
	Duplicate float64 // probability that a delivered frame arrives twice
	Reorder   float64 // probability that a copy is held back by ReorderDelay, so later frames overtake it
	Corrupt   float64 // probability that one random bit of a delivered frame's payload is flipped
	// Delay is added to every copy; Jitter adds a uniform random extra
	// delay in [0, Jitter), which reorders frames closer together than it.
	Delay, Jitter time.Duration
	// ReorderDelay is how long a reordered copy is held back; 0 means
	// 1 ms or Jitter, whichever is longer.
	ReorderDelay time.Duration
	Seed         int64
}

// Validate reports the first field out of range.
func (f Faults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"Loss", f.Loss}, {"Duplicate", f.Duplicate}, {"Reorder", f.Reorder}, {"Corrupt", f.Corrupt}} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("linktest: Faults.%s is %v, want a probability from 0 to 1", r.name, r.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Delay", f.Delay}, {"Jitter", f.Jitter}, {"ReorderDelay", f.ReorderDelay}} {
		if d.v < 0 {
			return fmt.Errorf("linktest: Faults.%s is %v, want 0 or more", d.name, d.v)
		}
	}
	return nil
}

// Hook returns a hook that applies the faults. The hook is safe for
// concurrent use; calls are serialised on its random source. Hook panics if
// [Faults.Validate] fails, since that is a mistake in the test.
func (f Faults) Hook() Hook {
	if err := f.Validate(); err != nil {
		panic(err)
	}
	hold := f.ReorderDelay
	if hold == 0 {
		hold = max(time.Millisecond, f.Jitter)
	}
	var mu sync.Mutex
	seed := uint64(f.Seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(fr Frame) Verdict {
		mu.Lock()
		defer mu.Unlock()
		if f.Loss > 0 && rng.Float64() < f.Loss {
			return Drop()
		}
		v := Deliver()
		if f.Duplicate > 0 && rng.Float64() < f.Duplicate {
			v.Copies = 2
		}
		if f.Corrupt > 0 && rng.Float64() < f.Corrupt && len(fr.Payload) > 0 {
			v.Payload = append([]byte(nil), fr.Payload...)
			bit := rng.IntN(8 * len(v.Payload))
			v.Payload[bit/8] ^= 1 << (bit % 8)
		}
		for i := range v.Copies {
			d := f.Delay
			if f.Jitter > 0 {
				d += time.Duration(rng.Int64N(int64(f.Jitter)))
			}
			if f.Reorder > 0 && rng.Float64() < f.Reorder {
				d += hold
			}
			if d != 0 {
				if v.Delay == nil {
					v.Delay = make([]time.Duration, v.Copies)
				}
				v.Delay[i] = d
			}
		}
		return v
	}
}
