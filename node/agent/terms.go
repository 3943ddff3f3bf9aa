package agent

import (
	"sync"

	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// terms holds the highest controller term the node has seen, and the
// controller the node's heartbeats go to: the one that most recently
// discovered or probed it with a current term (zero until one has: then
// the configured one), so that a new leader's first discovery moves the
// heartbeats to it.
type terms struct {
	mu      sync.Mutex
	highest uint64
	leader  proto.MAC
	store   *store
}

func newTerms(highest uint64, s *store) *terms { return &terms{highest: highest, store: s} }

// admit checks a mutating request's term: 0 (an operator) passes and is
// not remembered; below the highest is refused; above is remembered.
func (t *terms) admit(term uint64) error {
	if term == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.admitLocked(term)
}

func (t *terms) admitLocked(term uint64) error {
	if term < t.highest {
		return &nodeclient.StaleTermError{Got: term, Highest: t.highest}
	}
	if term > t.highest {
		t.highest = term
		return t.store.saveTerm(term)
	}
	return nil
}

// follow admits term as admit does and, when it is current (neither 0
// nor below the highest), makes from the controller heartbeats go to. It
// reports whether that controller changed; a stale term changes nothing.
func (t *terms) follow(from proto.MAC, term uint64) (changed bool, err error) {
	if term == 0 {
		return false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if term < t.highest {
		return false, &nodeclient.StaleTermError{Got: term, Highest: t.highest}
	}
	err = t.admitLocked(term) // remembers a higher term; fails only to save it
	changed = t.leader != from
	t.leader = from
	return changed, err
}

// controller is the controller followed (zero: none yet).
func (t *terms) controller() proto.MAC {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leader
}

func (t *terms) get() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.highest
}
