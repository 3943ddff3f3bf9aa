package proto_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// recorder is a hook that keeps a copy of every frame from one MAC to another.
type recorder struct {
	mu       sync.Mutex
	src, dst proto.MAC
	frames   [][]byte
}

func (r *recorder) hook(f linktest.Frame) linktest.Verdict {
	if f.Src == r.src && f.To == r.dst {
		r.mu.Lock()
		r.frames = append(r.frames, append([]byte(nil), f.Payload...))
		r.mu.Unlock()
	}
	return linktest.Deliver()
}

func (r *recorder) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames...)
}

// countingHandler counts how often any handler ran on the endpoint.
func countingHandler(e *proto.Endpoint, runs *atomic.Int64, methods ...string) {
	for _, m := range methods {
		e.Handle(m, func(ctx context.Context, req *proto.Request) ([]byte, error) {
			runs.Add(1)
			return req.Payload, nil
		})
	}
}

func TestANodeWithoutTheKeyCannotRunAHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		b := r.endpoint(macB, testKeyring(t, 1, 7), nil)
		var runs atomic.Int64
		countingHandler(b, &runs, "echo", "info")
		for _, tc := range []struct {
			desc string
			keys *proto.Keyring
		}{
			{"another secret, same key id", testKeyring(t, 1, 99)},
			{"a key id the node does not have", testKeyring(t, 9, 7)},
		} {
			mallory := r.endpoint(macC, tc.keys, nil)
			_, err := mallory.Call(t.Context(), macB, "echo", []byte("let me in"))
			if !errors.Is(err, proto.ErrUnauthenticated) {
				t.Errorf("%s: call got %v, want ErrUnauthenticated (the node says it refused us)", tc.desc, err)
			}
			if got, _ := mallory.Discover(t.Context(), "info", nil, 100*time.Millisecond); len(got) != 0 {
				t.Errorf("%s: discovery got %d answers", tc.desc, len(got))
			}
			if mallory.Stats().RefusedReceived == 0 {
				t.Errorf("%s: the refused node was not told it was refused", tc.desc)
			}
			mallory.Close()
		}
		if n := runs.Load(); n != 0 {
			t.Fatalf("handlers ran %d times for nodes without the key", n)
		}
		if b.Stats().Dropped(proto.DropAuth) == 0 {
			t.Fatal("frames with the wrong key were not counted")
		}
	})
}

func TestTamperedReplayedAndStaleFramesNeverReachAHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{src: macA, dst: macB}
		r := newRig(t, linktest.Config{Hook: rec.hook})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		var runs atomic.Int64
		countingHandler(b, &runs, "echo", "info")
		if _, err := a.Call(t.Context(), macB, "echo", []byte("a genuine call")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Discover(t.Context(), "info", nil, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		captured := rec.all()
		if len(captured) == 0 {
			t.Fatal("recorded no frames")
		}
		base := runs.Load()
		// Mallory sits on the wire with A's address and replays A's frames.
		mallory := r.sw.Link(macA, proto.EtherTypeControl)
		inject := func(p []byte, dst proto.MAC) {
			if err := mallory.WriteTo(p, dst); err != nil && !errors.Is(err, proto.ErrTooBig) {
				t.Fatal(err)
			}
		}
		check := func(what string, reason proto.DropReason, before uint64) {
			t.Helper()
			synctest.Wait()
			if n := runs.Load(); n != base {
				t.Fatalf("%s: a handler ran (%d runs, want %d)", what, n, base)
			}
			if got := b.Stats().Dropped(reason); got <= before {
				t.Fatalf("%s: no frame counted as %v", what, reason)
			}
		}

		before := b.Stats().Dropped(proto.DropReplay)
		for _, f := range captured {
			inject(f, macB)
			inject(f, proto.Broadcast)
		}
		check("replayed frames", proto.DropReplay, before)

		before = b.Stats().TotalDropped()
		for _, f := range captured {
			for bit := 0; bit < len(f)*8; bit += 7 {
				g := append([]byte(nil), f...)
				g[bit/8] ^= 1 << (bit % 8)
				inject(g, macB)
			}
		}
		synctest.Wait()
		if runs.Load() != base || b.Stats().TotalDropped() <= before {
			t.Fatal("frames with flipped bits reached a handler or were not counted")
		}

		before = b.Stats().Dropped(proto.DropShort) + b.Stats().Dropped(proto.DropAuth)
		for _, f := range captured {
			for n := 0; n < len(f); n += 3 {
				inject(f[:n], macB)
			}
		}
		synctest.Wait()
		if runs.Load() != base || b.Stats().Dropped(proto.DropShort)+b.Stats().Dropped(proto.DropAuth) <= before {
			t.Fatal("truncated frames reached a handler or were not counted")
		}

		// B restarts: A's old frames name an epoch of B's that is gone.
		b.Close()
		b2 := r.endpoint(macB, keys, nil)
		countingHandler(b2, &runs, "echo", "info")
		for _, f := range captured {
			inject(f, macB)
		}
		synctest.Wait()
		if runs.Load() != base {
			t.Fatal("a frame from before the restart ran a handler")
		}
		if b2.Stats().Dropped(proto.DropStaleEpoch) == 0 {
			t.Fatal("frames naming the old epoch were not counted as stale")
		}
	})
}

func TestAuthenticFramesWithImpossibleFieldsAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		keys := testKeyring(t, 1, 7)
		b := r.endpoint(macB, keys, func(c *proto.Config) { c.MaxMessage = 1 << 20 })
		var runs atomic.Int64
		countingHandler(b, &runs, "echo")
		wire := r.sw.Link(macA, proto.EtherTypeControl)
		counter := uint64(0)
		send := func(typ proto.FrameType, flags uint8, dstEpoch uint64, body []byte) {
			counter++
			h := proto.Header{Version: proto.Version, Type: typ, Flags: flags, SrcEpoch: 77, DstEpoch: dstEpoch, Counter: counter}
			if err := wire.WriteTo(proto.SealForTest(keys, h, macA, macB, body), macB); err != nil {
				t.Fatal(err)
			}
		}
		data := func(d proto.Data) []byte { out, _ := d.MarshalBinary(); return out }
		req := proto.EncodeRequestForTest(1, "echo", []byte("x"))
		for _, tc := range []struct {
			desc   string
			typ    proto.FrameType
			body   []byte
			reason proto.DropReason
		}{
			{"segment longer than its message", proto.FrameData,
				data(proto.Data{Stream: 1, Frag: proto.FragFirst | proto.FragLast, MsgLen: 2, Payload: req}), proto.DropMalformed},
			{"stream 0", proto.FrameData,
				data(proto.Data{Stream: 0, Frag: proto.FragFirst | proto.FragLast, MsgLen: uint32(len(req)), Payload: req}), proto.DropMalformed},
			{"message over the limit", proto.FrameData,
				data(proto.Data{Stream: 1, Frag: proto.FragFirst, MsgLen: 2 << 20, Payload: req}), proto.DropTooLarge},
			{"method name past the end", proto.FrameData,
				data(proto.Data{Stream: 2, Frag: proto.FragFirst | proto.FragLast, MsgLen: 11, Payload: []byte{1, 0, 0, 0, 0, 0, 0, 0, 9, 200, 'e'}}), proto.DropMalformed},
			{"200 SACK ranges", proto.FrameAck, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 200}, proto.DropMalformed},
			{"hello with a 10-byte MTU", proto.FrameHello, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 10, 0, 0, 0, 1}, proto.DropMalformed},
		} {
			before := b.Stats().Dropped(tc.reason)
			dst := b.Epoch()
			if tc.typ == proto.FrameHello {
				dst = 0
			}
			send(tc.typ, 0, dst, tc.body)
			synctest.Wait()
			if b.Stats().Dropped(tc.reason) <= before {
				t.Errorf("%s: not counted as %v (stats %+v)", tc.desc, tc.reason, b.Stats().Drops)
			}
		}
		if n := runs.Load(); n != 0 {
			t.Fatalf("a handler ran %d times on impossible frames", n)
		}
	})
}

// FuzzEndpointFrames throws arbitrary frames at a live endpoint: raw bytes,
// and arbitrary bodies sealed with the right key so they get past
// authentication into the decoders and the session. Nothing may panic.
// (That raw bytes never run a handler is TestTamperedReplayedAndStale….)
func FuzzEndpointFrames(f *testing.F) {
	keys := testKeyring(f, 1, 7)
	sw := linktest.NewSwitch(linktest.Config{})
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	b, err := proto.NewEndpoint(sw.Link(macB, proto.EtherTypeControl), cfg)
	if err != nil {
		f.Fatal(err)
	}
	var runs atomic.Int64
	countingHandler(b, &runs, "echo")
	wire := sw.Link(macA, proto.EtherTypeControl)
	f.Cleanup(func() { b.Close(); sw.Close() })
	req := proto.EncodeRequestForTest(1, "echo", []byte("x"))
	seed, _ := proto.Data{Stream: 1, Frag: proto.FragFirst | proto.FragLast, MsgLen: uint32(len(req)), Payload: req}.MarshalBinary()
	f.Add(uint8(proto.FrameData), uint8(0), true, seed)
	f.Add(uint8(proto.FrameAck), uint8(proto.FlagProbe), true, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add(uint8(proto.FrameHello), uint8(0), true, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 5, 0, 0, 0, 0, 1})
	f.Add(uint8(proto.FrameBcast), uint8(0), true, req)
	f.Add(uint8(proto.FrameData), uint8(0), false, seed)
	var counter atomic.Uint64
	f.Fuzz(func(t *testing.T, typ, flags uint8, sealed bool, body []byte) {
		if len(body) > 1400 {
			return
		}
		frame := append([]byte{proto.Version, typ, 1, flags}, body...)
		if sealed {
			h := proto.Header{Version: proto.Version, Type: proto.FrameType(typ), Flags: flags,
				SrcEpoch: 5, DstEpoch: b.Epoch(), Counter: counter.Add(1)}
			frame = proto.SealForTest(keys, h, macA, macB, body)
		}
		if err := wire.WriteTo(frame, macB); err != nil && !errors.Is(err, proto.ErrTooBig) {
			t.Fatal(err)
		}
	})
}
