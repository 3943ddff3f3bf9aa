package linktest

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/proto"
)

// near reports whether got/n is within tol of want.
func near(got, n int, want, tol float64) bool {
	return math.Abs(float64(got)/float64(n)-want) <= tol
}

func TestFaultsMatchTheirRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20000
		f := Faults{Loss: 0.1, Duplicate: 0.05, Reorder: 0.05, Seed: 42}
		s := NewSwitch(Config{Hook: f.Hook(), QueueLen: 3 * n})
		defer s.Close()
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		var p [4]byte
		for i := range n {
			binary.BigEndian.PutUint32(p[:], uint32(i))
			a.WriteTo(p[:], macB)
		}
		time.Sleep(time.Second) // fake time: let held-back frames arrive
		seen := make(map[uint32]int)
		var got, late, highest int
		buf := make([]byte, 64)
		b.SetReadDeadline(time.Now().Add(time.Nanosecond)) // fake time: passes once the queue is empty
		for {
			_, _, _, err := b.ReadFrom(buf)
			if err != nil {
				break
			}
			got++
			i := int(binary.BigEndian.Uint32(buf))
			seen[uint32(i)]++
			if i < highest {
				late++
			}
			highest = max(highest, i)
		}
		lost := n - len(seen)
		dups := got - len(seen)
		if !near(lost, n, f.Loss, 0.01) {
			t.Errorf("lost %d of %d frames, want about %.0f%%", lost, n, 100*f.Loss)
		}
		if !near(dups, n-lost, f.Duplicate, 0.01) {
			t.Errorf("%d duplicates of %d delivered frames, want about %.0f%%", dups, n-lost, 100*f.Duplicate)
		}
		// A held-back copy arrives after the later ones; its duplicate may not.
		if !near(late, got, f.Reorder, 0.01) {
			t.Errorf("%d of %d frames arrived after a later one, want about %.0f%%", late, got, 100*f.Reorder)
		}
		st := s.Stats()
		if int(st.DroppedHook) != lost || int(st.Duplicated) != dups || int(st.Delivered) != got {
			t.Errorf("stats %+v disagree with what b saw: %d lost, %d duplicates, %d delivered", st, lost, dups, got)
		}
	})
}

func TestSameSeedSameVerdicts(t *testing.T) {
	verdicts := func(seed int64) []Verdict {
		h := Faults{Loss: 0.2, Duplicate: 0.2, Reorder: 0.2, Delay: time.Millisecond, Jitter: time.Millisecond, Seed: seed}.Hook()
		var vs []Verdict
		for range 1000 {
			vs = append(vs, h(Frame{Src: macA, Dst: macB, To: macB}))
		}
		return vs
	}
	if diff := cmp.Diff(verdicts(7), verdicts(7)); diff != "" {
		t.Fatalf("same seed, different verdicts (-first +second):\n%s", diff)
	}
	if cmp.Equal(verdicts(7), verdicts(8)) {
		t.Fatal("seeds 7 and 8 gave the same 1000 verdicts")
	}
}

func TestCorruptFlipsOneBit(t *testing.T) {
	h := Faults{Corrupt: 0.5, Seed: 1}.Hook()
	orig := []byte("0123456789abcdef0123456789abcdef0123456789abcd")
	p := append([]byte(nil), orig...)
	var flipped int
	for range 1000 {
		v := h(Frame{Src: macA, Dst: macB, To: macB, Payload: p})
		if v.Payload == nil {
			continue
		}
		flipped++
		var bits int
		for i := range orig {
			for x := orig[i] ^ v.Payload[i]; x != 0; x &= x - 1 {
				bits++
			}
		}
		if bits != 1 || len(v.Payload) != len(orig) {
			t.Fatalf("corrupted payload differs in %d bits and %d bytes long, want 1 bit, same length", bits, len(v.Payload))
		}
	}
	if !bytes.Equal(p, orig) {
		t.Fatal("the hook modified the shared payload")
	}
	if !near(flipped, 1000, 0.5, 0.05) {
		t.Fatalf("%d of 1000 frames corrupted, want about half", flipped)
	}
}

func TestFaultsValidate(t *testing.T) {
	for _, f := range []Faults{{Corrupt: 2}, {Loss: -0.1}, {Duplicate: 1.5}, {Reorder: math.NaN()}, {Delay: -1}, {Jitter: -1}, {ReorderDelay: -1}} {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v validated, want an error", f)
		}
	}
}

func TestDelayIsHonouredInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSwitch(Config{Hook: Faults{Delay: 10 * time.Millisecond}.Hook()})
		defer s.Close()
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		a.WriteTo([]byte("slow"), macB)
		time.Sleep(10*time.Millisecond - time.Nanosecond)
		if q := b.Stats().Queued; q != 0 {
			t.Fatalf("frame visible %v before its 10ms delay", time.Nanosecond)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait() // the timer's goroutine queues the frame
		if q := b.Stats().Queued; q != 1 {
			t.Fatalf("frame not visible after its 10ms delay")
		}
		// A reader blocked meanwhile wakes when the frame lands.
		start := time.Now()
		a.WriteTo([]byte("slow again"), macB)
		b.ReadFrom(make([]byte, 100))
		n, _, _, err := b.ReadFrom(make([]byte, 100))
		if err != nil || n != proto.MinPayload || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("ReadFrom = %d, %v after %v, want the frame after 10ms", n, err, time.Since(start))
		}
	})
}

func TestDelayedFramesDieWithTheSwitch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSwitch(Config{Hook: Faults{Delay: time.Second}.Hook()})
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		for range 5 {
			a.WriteTo([]byte("in flight"), macB)
		}
		s.Close()
		time.Sleep(2 * time.Second)
		if st := s.Stats(); st.Delivered != 0 || st.DroppedClosed != 5 {
			t.Fatalf("stats %+v, want 5 frames dropped by Close and none delivered", st)
		}
		if _, _, _, err := b.ReadFrom(nil); err != proto.ErrClosed {
			t.Fatalf("ReadFrom = %v, want ErrClosed", err)
		}
	})
}

func TestDelayedFrameMeetsPulledCable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSwitch(Config{Hook: Faults{Delay: time.Second}.Hook()})
		defer s.Close()
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		a.WriteTo([]byte("in flight"), macB)
		b.SetDown(true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if st := s.Stats(); st.Delivered != 0 || st.DroppedDown != 1 {
			t.Fatalf("stats %+v, want the frame lost to the pulled cable", st)
		}
	})
}

func TestPartitionCutsBetweenGroupsOnly(t *testing.T) {
	s := newSwitch(t, Config{Hook: Partition([]proto.MAC{macA}, []proto.MAC{macB})})
	a, b, c := s.Link(macA, proto.EtherTypeControl), s.Link(macB, proto.EtherTypeControl), s.Link(macC, proto.EtherTypeControl)
	a.WriteTo([]byte("to b"), macB)
	a.WriteTo([]byte("all"), proto.Broadcast)
	empty(t, b)
	if got, _, _ := recv(t, c); text(got) != "all" { // c is in no group
		t.Fatalf("c got %q", got)
	}
	b.WriteTo([]byte("to c"), macC)
	recv(t, c)
	s.SetHook(nil) // heal
	a.WriteTo([]byte("to b"), macB)
	recv(t, b)
}

func TestChainCombinesHooks(t *testing.T) {
	dup := func(Frame) Verdict {
		return Verdict{Copies: 2, Delay: []time.Duration{0, time.Second}}
	}
	delay := func(Frame) Verdict { return Verdict{Copies: 1, Delay: []time.Duration{time.Millisecond}} }
	flip := func(f Frame) Verdict {
		p := append([]byte(nil), f.Payload...)
		p[0] ^= 0xff
		return Verdict{Copies: 1, Payload: p}
	}
	f := Frame{Src: macA, Dst: macB, To: macB, Payload: []byte{1, 2}}
	got := Chain(dup, nil, delay, flip)(f)
	want := Verdict{Copies: 2, Delay: []time.Duration{time.Millisecond, time.Second + time.Millisecond}, Payload: []byte{0xfe, 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Chain (-want +got):\n%s", diff)
	}
	if got := Chain(dup, Partition([]proto.MAC{macA}, []proto.MAC{macB}))(f); got.Copies != 0 {
		t.Fatalf("a partition after duplication let %d copies through", got.Copies)
	}
	if got := Chain()(f); got.Copies != 1 || got.Delay != nil {
		t.Fatalf("empty Chain = %+v, want Deliver", got)
	}
}

func TestHookCorruptsPayload(t *testing.T) {
	s := newSwitch(t, Config{Hook: func(f Frame) Verdict {
		return Verdict{Copies: 1, Payload: f.Payload[:1]} // truncate
	}})
	a, b := s.Link(macA, proto.EtherTypeControl), s.Link(macB, proto.EtherTypeControl)
	a.WriteTo([]byte("long"), macB)
	if got, _, _ := recv(t, b); text(got) != "l" {
		t.Fatalf("got %q, want the truncated payload", got)
	}
}
