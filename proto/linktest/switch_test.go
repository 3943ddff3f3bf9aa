package linktest

import (
	"bytes"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/mvstack/mvstack/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	macA = proto.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = proto.MAC{0x02, 0, 0, 0, 0, 0xb}
	macC = proto.MAC{0x02, 0, 0, 0, 0, 0xc}
)

// newSwitch makes a switch closed at the end of the test.
func newSwitch(t testing.TB, cfg Config) *Switch {
	t.Helper()
	s := NewSwitch(cfg)
	t.Cleanup(s.Close)
	return s
}

// recv reads one frame, failing the test if none is queued.
func recv(t *testing.T, l *Link) (payload []byte, src, dst proto.MAC) {
	t.Helper()
	if l.Stats().Queued == 0 {
		t.Fatalf("%v: no frame queued", l.Addr())
	}
	buf := make([]byte, 65536)
	n, src, dst, err := l.ReadFrom(buf)
	if err != nil {
		t.Fatalf("%v: ReadFrom: %v", l.Addr(), err)
	}
	return buf[:n], src, dst
}

// text is a received payload without the padding short frames get.
func text(p []byte) string { return string(bytes.TrimRight(p, "\x00")) }

// empty fails the test if l has a frame queued.
func empty(t *testing.T, l *Link) {
	t.Helper()
	if q := l.Stats().Queued; q != 0 {
		t.Fatalf("%v (EtherType %#04x) has %d frames queued, want none", l.Addr(), uint16(l.EtherType()), q)
	}
}

func TestUnicastReachesOnlyTheDestination(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b, c := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE), s.Link(macC, proto.EtherTypeAoE)
	buf := []byte("hello b")
	if err := a.WriteTo(buf, macB); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXX") // the caller reuses its buffer at once
	got, src, dst := recv(t, b)
	if text(got) != "hello b" || src != macA || dst != macB {
		t.Fatalf("b got %q from %v to %v, want \"hello b\" from %v to %v", got, src, dst, macA, macB)
	}
	empty(t, a)
	empty(t, c)
}

func TestBroadcastReachesEveryoneButTheSender(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b, c := s.Link(macA, proto.EtherTypeControl), s.Link(macB, proto.EtherTypeControl), s.Link(macC, proto.EtherTypeControl)
	multicast := proto.MAC{0x01, 0x80, 0xc2, 0, 0, 0x0e}
	for _, dst := range []proto.MAC{proto.Broadcast, multicast} {
		if err := a.WriteTo([]byte("who is there"), dst); err != nil {
			t.Fatal(err)
		}
		for _, l := range []*Link{b, c} {
			got, src, gotDst := recv(t, l)
			if text(got) != "who is there" || src != macA || gotDst != dst {
				t.Fatalf("%v got %q from %v to %v", l.Addr(), got, src, gotDst)
			}
		}
		empty(t, a)
	}
}

func TestUnknownUnicastIsFloodedUntilLearned(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	a.WriteTo([]byte("1"), macB) // b has not spoken yet: flooded
	recv(t, b)
	if st := s.Stats(); st.Flooded != 1 {
		t.Fatalf("Flooded = %d after a frame to a silent station, want 1", st.Flooded)
	}
	b.WriteTo([]byte("2"), macA) // a is known: not flooded; b is learned now
	recv(t, a)
	a.WriteTo([]byte("3"), macB)
	recv(t, b)
	if st := s.Stats(); st.Flooded != 1 || st.Sent != 3 || st.Delivered != 3 {
		t.Fatalf("stats %+v, want Sent 3, Delivered 3, Flooded 1", st)
	}
	// A frame to an address nobody has is flooded and lost.
	a.WriteTo([]byte("4"), macC)
	empty(t, b)
	if st := s.Stats(); st.Flooded != 2 || st.Delivered != 3 {
		t.Fatalf("stats %+v, want Flooded 2, Delivered 3", st)
	}
}

func TestFrameToOwnAddressIsNotEchoed(t *testing.T) {
	s := newSwitch(t, Config{})
	a := s.Link(macA, proto.EtherTypeAoE)
	a2 := s.Link(macA, proto.EtherTypeAoE) // a second socket on the same station
	a.WriteTo([]byte("me"), macA)
	a.WriteTo([]byte("all"), proto.Broadcast)
	empty(t, a)
	empty(t, a2)
}

func TestEtherTypesAreIsolated(t *testing.T) {
	s := newSwitch(t, Config{})
	aoeA, ctlA := s.Link(macA, proto.EtherTypeAoE), s.Link(macA, proto.EtherTypeControl)
	aoeB, ctlB := s.Link(macB, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeControl)
	ctlA.WriteTo([]byte("control"), macB)
	aoeA.WriteTo([]byte("aoe"), proto.Broadcast)
	if got, _, _ := recv(t, ctlB); text(got) != "control" {
		t.Fatalf("control link of b got %q", got)
	}
	if got, _, _ := recv(t, aoeB); text(got) != "aoe" {
		t.Fatalf("AoE link of b got %q", got)
	}
	empty(t, ctlB)
	empty(t, aoeB)
}

func TestLinksSharingAnAddressEachGetACopy(t *testing.T) {
	s := newSwitch(t, Config{})
	a := s.Link(macA, proto.EtherTypeAoE)
	b1, b2 := s.Link(macB, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	a.WriteTo([]byte("x"), macB)
	recv(t, b1)
	recv(t, b2)
}

func TestMTUIsEnforced(t *testing.T) {
	for _, mtu := range []int{1500, 9000} {
		s := newSwitch(t, Config{MTU: mtu})
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		if a.MTU() != mtu {
			t.Fatalf("MTU() = %d, want %d", a.MTU(), mtu)
		}
		if err := a.WriteTo(make([]byte, mtu), macB); err != nil {
			t.Fatalf("MTU %d: a %d-byte payload: %v", mtu, mtu, err)
		}
		if got, _, _ := recv(t, b); len(got) != mtu {
			t.Fatalf("got %d bytes, want %d", len(got), mtu)
		}
		if err := a.WriteTo(make([]byte, mtu+1), macB); !errors.Is(err, proto.ErrTooBig) {
			t.Fatalf("MTU %d: a %d-byte payload: err = %v, want ErrTooBig", mtu, mtu+1, err)
		}
		empty(t, b)
	}
	if got := newSwitch(t, Config{}).Link(macA, 1).MTU(); got != DefaultMTU {
		t.Fatalf("default MTU = %d, want %d", got, DefaultMTU)
	}
}

func TestShortPayloadsArePaddedLikeOnTheWire(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	for _, size := range []int{0, 1, proto.MinPayload - 1, proto.MinPayload, proto.MinPayload + 1, 1000} {
		p := bytes.Repeat([]byte{0xee}, size)
		a.WriteTo(p, macB)
		want := append(p, make([]byte, max(0, proto.MinPayload-size))...)
		if got, _, _ := recv(t, b); !bytes.Equal(got, want) {
			t.Errorf("%d-byte payload arrived as %d bytes %x, want %x", size, len(got), got, want)
		}
	}
}

func TestShortBufferTruncates(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	a.WriteTo([]byte("0123456789"), macB)
	p := make([]byte, 4)
	n, _, _, err := b.ReadFrom(p)
	if err != nil || n != 4 || string(p) != "0123" {
		t.Fatalf("ReadFrom = %d %q %v, want 4 \"0123\"", n, p[:n], err)
	}
}

func TestReadDeadlineFollowsFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSwitch(Config{})
		defer s.Close()
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		start := time.Now()
		b.SetReadDeadline(start.Add(3 * time.Second))
		_, _, _, err := b.ReadFrom(make([]byte, 100))
		if !proto.IsTimeout(err) || !errors.Is(err, proto.ErrDeadline) {
			t.Fatalf("ReadFrom after deadline: %v, want a timeout", err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Fatalf("ReadFrom returned after %v, want 3s", waited)
		}
		// Passed deadline: fails at once, even with a frame queued.
		a.WriteTo([]byte("late"), macB)
		if _, _, _, err := b.ReadFrom(make([]byte, 100)); !proto.IsTimeout(err) {
			t.Fatalf("ReadFrom with a passed deadline: %v, want a timeout", err)
		}
		// Clearing it lets the queued frame through.
		b.SetReadDeadline(time.Time{})
		if n, _, _, err := b.ReadFrom(make([]byte, 100)); err != nil || n != proto.MinPayload {
			t.Fatalf("ReadFrom = %d, %v", n, err)
		}
		// A deadline set while a reader waits applies to that reader.
		done := make(chan error)
		go func() {
			_, _, _, err := b.ReadFrom(make([]byte, 100))
			done <- err
		}()
		synctest.Wait()
		start = time.Now()
		b.SetReadDeadline(start.Add(time.Second))
		if err := <-done; !proto.IsTimeout(err) || time.Since(start) != time.Second {
			t.Fatalf("blocked ReadFrom: %v after %v, want a timeout after 1s", err, time.Since(start))
		}
		// Extending the deadline while a reader waits moves it.
		b.SetReadDeadline(time.Now().Add(time.Second))
		go func() {
			_, _, _, err := b.ReadFrom(make([]byte, 100))
			done <- err
		}()
		synctest.Wait()
		start = time.Now()
		b.SetReadDeadline(start.Add(5 * time.Second))
		if err := <-done; !proto.IsTimeout(err) || time.Since(start) != 5*time.Second {
			t.Fatalf("extended deadline: %v after %v, want a timeout after 5s", err, time.Since(start))
		}
		// A frame that arrives before the deadline is read.
		b.SetReadDeadline(time.Now().Add(time.Second))
		go func() {
			_, _, _, err := b.ReadFrom(make([]byte, 100))
			done <- err
		}()
		time.Sleep(500 * time.Millisecond) // fake time: the reader waits meanwhile
		a.WriteTo([]byte("in time"), macB)
		if err := <-done; err != nil {
			t.Fatalf("frame before the deadline: %v", err)
		}
	})
}

func TestCloseUnblocksReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSwitch(Config{})
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		done := make(chan error, 2)
		for _, l := range []*Link{a, b} {
			go func() {
				_, _, _, err := l.ReadFrom(make([]byte, 100))
				done <- err
			}()
		}
		synctest.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, proto.ErrClosed) {
			t.Fatalf("ReadFrom on a closed link: %v, want ErrClosed", err)
		}
		if err := a.WriteTo([]byte("x"), macB); !errors.Is(err, proto.ErrClosed) {
			t.Fatalf("WriteTo on a closed link: %v, want ErrClosed", err)
		}
		if err := a.Close(); !errors.Is(err, proto.ErrClosed) {
			t.Fatalf("second Close: %v, want ErrClosed", err)
		}
		// The closed link is detached: frames to it are not delivered.
		b.WriteTo([]byte("to a"), macA)
		if st := s.Stats(); st.Delivered != 0 {
			t.Fatalf("a detached link received: %+v", st)
		}
		s.Close()
		if err := <-done; !errors.Is(err, proto.ErrClosed) {
			t.Fatalf("ReadFrom after switch Close: %v, want ErrClosed", err)
		}
		if _, _, _, err := s.Link(macC, 1).ReadFrom(nil); !errors.Is(err, proto.ErrClosed) {
			t.Fatalf("link of a closed switch: %v, want ErrClosed", err)
		}
	})
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	s := newSwitch(t, Config{QueueLen: 10})
	a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	for i := range 25 {
		if err := a.WriteTo([]byte{byte(i)}, macB); err != nil {
			t.Fatal(err) // a writer never blocks or fails on a slow reader
		}
	}
	for i := range 10 {
		if got, _, _ := recv(t, b); got[0] != byte(i) {
			t.Fatalf("frame %d is %d: the queue keeps the oldest frames in order", i, got[0])
		}
	}
	empty(t, b)
	if st := s.Stats(); st.Delivered != 10 || st.DroppedQueueFull != 15 {
		t.Fatalf("stats %+v, want Delivered 10, DroppedQueueFull 15", st)
	}
	if st := b.Stats(); st.Received != 10 || st.DroppedQueueFull != 15 {
		t.Fatalf("link stats %+v, want Received 10, DroppedQueueFull 15", st)
	}
}

func TestPulledCableLosesFramesBothWays(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b := s.Link(macA, proto.EtherTypeControl), s.Link(macB, proto.EtherTypeControl)
	b.SetDown(true)
	a.WriteTo([]byte("to b"), macB)
	a.WriteTo([]byte("all"), proto.Broadcast)
	if err := b.WriteTo([]byte("from b"), macA); err != nil {
		t.Fatalf("WriteTo on a pulled cable: %v, want nil (the frame is just lost)", err)
	}
	empty(t, a)
	empty(t, b)
	if st := s.Stats(); st.DroppedDown != 3 || st.Delivered != 0 {
		t.Fatalf("stats %+v, want DroppedDown 3", st)
	}
	b.SetDown(false)
	a.WriteTo([]byte("back"), macB)
	if got, _, _ := recv(t, b); text(got) != "back" {
		t.Fatalf("after replug got %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{MTU: -1}, {MTU: MaxMTU + 1}, {QueueLen: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated, want an error", c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
