package volume

import "sync"

// overlaps holds the byte ranges of the writes in flight, so that two
// writes to overlapping bytes reach the replicas one after the other. Sent
// together, the replicas could apply them in different orders and end up
// holding different data for the same bytes without any replica failing.
// Writes to disjoint ranges still run in parallel.
type overlaps struct {
	mu   sync.Mutex
	cond sync.Cond
	held []span
}

type span struct{ off, end int64 }

// lock waits until no write in flight overlaps [off, off+n), takes the
// range and returns its release.
func (o *overlaps) lock(off, n int64) (unlock func()) {
	s := span{off, off + n}
	o.mu.Lock()
	if o.cond.L == nil {
		o.cond.L = &o.mu
	}
	for o.conflicts(s) {
		o.cond.Wait()
	}
	o.held = append(o.held, s)
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		for i, h := range o.held {
			if h == s {
				o.held[i] = o.held[len(o.held)-1]
				o.held = o.held[:len(o.held)-1]
				break
			}
		}
		o.mu.Unlock()
		o.cond.Broadcast()
	}
}

func (o *overlaps) conflicts(s span) bool {
	for _, h := range o.held {
		if s.off < h.end && h.off < s.end {
			return true
		}
	}
	return false
}
