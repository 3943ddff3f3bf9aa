package target

import "sync"

// groupSync coalesces Sync calls: a caller that arrives while a sync runs
// waits for the next one, which covers every write finished before it
// started, so one fdatasync serves many writers.
type groupSync struct {
	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64 // generations begun
	done    uint64 // last generation finished
	err     error  // result of generation done
}

func newGroupSync() *groupSync {
	g := &groupSync{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// sync returns once a call of f that began after sync was called has
// finished, and returns its error.
func (g *groupSync) sync(f func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := g.started + 1
	for g.done < want {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := f()
		g.mu.Lock()
		g.running = false
		g.done, g.err = gen, err
		g.cond.Broadcast()
	}
	return g.err
}
