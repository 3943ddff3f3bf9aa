package leader

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
)

type fakeSource struct {
	mu      sync.Mutex
	leading bool
	term    uint64
	subs    map[chan<- struct{}]bool
}

func (f *fakeSource) Leadership() (bool, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leading, f.term
}

func (f *fakeSource) Notify(ch chan<- struct{}) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[chan<- struct{}]bool{}
	}
	f.subs[ch] = true
	return func() { f.mu.Lock(); delete(f.subs, ch); f.mu.Unlock() }
}

func (f *fakeSource) set(leading bool, term uint64) {
	f.mu.Lock()
	f.leading, f.term = leading, term
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
}

func TestRunStopsOnLeadershipLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{}
		var mu sync.Mutex
		var started []uint64
		active := 0
		loop := func(ctx context.Context) error {
			term, _ := Term(ctx)
			mu.Lock()
			started = append(started, term)
			active++
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			active--
			mu.Unlock()
			return nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { Run(ctx, src, "test", nil, loop); close(done) }()
		synctest.Wait()
		if len(started) != 0 {
			t.Fatal("loop ran on a follower")
		}
		src.set(true, 3)
		synctest.Wait()
		if active != 1 {
			t.Fatalf("leader term 3: %d loops active, want 1", active)
		}
		src.set(false, 3)
		synctest.Wait()
		if active != 0 {
			t.Fatal("loop still running after leadership was lost")
		}
		src.set(true, 5) // re-elected in a later term
		synctest.Wait()
		src.set(true, 6) // term changed under us: restart with the new term
		synctest.Wait()
		if active != 1 {
			t.Fatalf("%d loops active, want 1", active)
		}
		cancel()
		<-done
		if active != 0 {
			t.Fatal("loop still running after Run returned")
		}
		if want := []uint64{3, 5, 6}; len(started) != 3 || started[0] != want[0] || started[1] != want[1] || started[2] != want[2] {
			t.Errorf("loops started in terms %v, want %v", started, want)
		}
	})
}
