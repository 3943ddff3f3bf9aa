package proto

import "time"

// rttEstimator computes the retransmission timeout of RFC 6298 from round
// trip samples, with a floor fit for a LAN instead of the RFC's 1 s, and
// exponential backoff.
type rttEstimator struct {
	srtt, rttvar time.Duration
	sampled      bool
	backoff      uint // doublings since the last good sample
	min, max     time.Duration
	initial      time.Duration
}

func newRTTEstimator(initial, min, max time.Duration) rttEstimator {
	return rttEstimator{initial: initial, min: min, max: max}
}

// sample adds a round-trip measurement of a segment sent once (Karn's rule:
// the caller never samples a retransmitted segment) and clears the backoff.
func (e *rttEstimator) sample(r time.Duration) {
	if r <= 0 {
		r = time.Microsecond
	}
	if !e.sampled {
		// RFC 6298 (2.2)
		e.srtt = r
		e.rttvar = r / 2
		e.sampled = true
	} else {
		// RFC 6298 (2.3), alpha = 1/8, beta = 1/4
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.backoff = 0
}

// rto is the current retransmission timeout, backoff included.
func (e *rttEstimator) rto() time.Duration {
	base := e.initial
	if e.sampled {
		// RFC 6298 (2.3): RTO = SRTT + max(G, K*RTTVAR); the clock is fine-grained.
		base = e.srtt + 4*e.rttvar
	}
	base = max(base, e.min)
	for i := uint(0); i < e.backoff && base < e.max; i++ {
		base *= 2
	}
	return min(base, e.max)
}

// timeout doubles the timeout (RFC 6298 (5.5)).
func (e *rttEstimator) timeout() {
	if e.backoff < 32 {
		e.backoff++
	}
}

// smoothed is SRTT, or the initial timeout before any sample.
func (e *rttEstimator) smoothed() time.Duration {
	if !e.sampled {
		return e.initial
	}
	return e.srtt
}
