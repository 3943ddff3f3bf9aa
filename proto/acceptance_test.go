package proto_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// mixedSizes returns n message sizes: 99% from 64 B to 64 KiB, 1% up to 4 MiB.
func mixedSizes(n int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, seed))
	sizes := make([]int, n)
	for i := range sizes {
		if rng.IntN(100) == 0 {
			sizes[i] = 64<<10 + rng.IntN(4<<20-64<<10+1)
		} else {
			sizes[i] = 64 + rng.IntN(64<<10-64+1)
		}
	}
	return sizes
}

// runCalls makes one call per size from a to b, 32 at a time, each with a
// distinct payload, and checks every response and that every request ran
// exactly once.
func runCalls(t *testing.T, a, b *proto.Endpoint, sizes []int) {
	t.Helper()
	ran := make([]atomic.Int32, len(sizes))
	b.Handle("echo", func(ctx context.Context, req *proto.Request) ([]byte, error) {
		ran[binary.BigEndian.Uint32(req.Payload)].Add(1)
		return req.Payload, nil
	})
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				payload := make([]byte, sizes[i])
				for j := range payload {
					payload[j] = byte(i*7 + j)
				}
				binary.BigEndian.PutUint32(payload, uint32(i))
				got, err := a.Call(context.Background(), b.Addr(), "echo", payload)
				if err != nil {
					t.Errorf("call %d (%d bytes): %v", i, sizes[i], err)
					failed.Add(1)
					continue
				}
				if !bytes.Equal(got, payload) {
					t.Errorf("call %d (%d bytes): wrong response of %d bytes", i, sizes[i], len(got))
				}
			}
		}()
	}
	for i := range sizes {
		if failed.Load() > 10 {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	synctest.Wait()
	for i := range ran {
		if n := ran[i].Load(); n != 1 && failed.Load() == 0 {
			t.Errorf("request %d ran %d times, want exactly once", i, n)
		}
	}
}

func TestTenThousandCallsUnderLossDuplicationAndReordering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		faults := linktest.Faults{Loss: 0.05, Duplicate: 0.05, Reorder: 0.05, ReorderDelay: 2 * time.Millisecond,
			Delay: 20 * time.Microsecond, Jitter: 20 * time.Microsecond, Seed: 42}
		r := newRig(t, linktest.Config{MTU: 9000, Hook: faults.Hook(), QueueLen: 1 << 16})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		runCalls(t, a, b, mixedSizes(10000, 1))
		st := a.Stats()
		t.Logf("caller: %d frames out, %d retransmits (%d fast), %d timeouts, %d duplicates received",
			st.FramesOut, st.Retransmits, st.FastRetransmits, st.Timeouts, st.Duplicates)
		if st.Retransmits == 0 || b.Stats().Duplicates == 0 {
			t.Error("no retransmission or duplicate seen: the faults did not bite")
		}
	})
}

func TestCallsCompleteUnderThirtyPercentLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		faults := linktest.Faults{Loss: 0.30, Duplicate: 0.05, Reorder: 0.05, ReorderDelay: 2 * time.Millisecond, Seed: 30}
		r := newRig(t, linktest.Config{MTU: 9000, Hook: faults.Hook(), QueueLen: 1 << 16})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		runCalls(t, a, b, mixedSizes(10000, 2))
	})
}

func TestPeerRestartFailsTheCallWithinTwoTolerances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		keys := testKeyring(t, 1, 7)
		cfg := proto.DefaultConfig()
		a := r.endpoint(macA, keys, nil)
		b1 := r.endpoint(macB, keys, nil)
		started := make(chan struct{})
		b1.Handle("slow", func(ctx context.Context, req *proto.Request) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		done := make(chan error)
		go func() {
			_, err := a.Call(context.Background(), macB, "slow", nil)
			done <- err
		}()
		<-started
		b1.Close() // the node process dies …
		restart := time.Now()
		b2 := r.endpoint(macB, keys, nil) // … and starts again: a new epoch
		b2.Handle("slow", echo)
		err := <-done
		if !errors.Is(err, proto.ErrPeerRestarted) {
			t.Fatalf("got %v, want ErrPeerRestarted", err)
		}
		if took := time.Since(restart); took > 2*cfg.Tolerance {
			t.Fatalf("restart reported after %v, want within 2 × tolerance = %v", took, 2*cfg.Tolerance)
		}
		// The next call reaches the new incarnation.
		if got, err := a.Call(context.Background(), macB, "slow", []byte("again")); err != nil || string(got) != "again" {
			t.Fatalf("call after restart: %q, %v", got, err)
		}
		if n := a.Stats().PeerRestarts; n != 1 {
			t.Errorf("PeerRestarts = %d, want 1", n)
		}
	})
}
