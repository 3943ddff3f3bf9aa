package agent

import (
	"sync"

	"github.com/mvstack/mvstack/node/nodeclient"
)

// terms holds the highest controller term the node has seen.
type terms struct {
	mu      sync.Mutex
	highest uint64
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
	if term < t.highest {
		return &nodeclient.StaleTermError{Got: term, Highest: t.highest}
	}
	if term > t.highest {
		t.highest = term
		return t.store.saveTerm(term)
	}
	return nil
}

// observe remembers a higher term heard in a broadcast, refusing nothing.
func (t *terms) observe(term uint64) {
	t.admit(term) //nolint:errcheck // a stale broadcast is simply answered
}

func (t *terms) get() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.highest
}
