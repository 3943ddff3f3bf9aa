package proto_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

var (
	macA = proto.MAC{0x02, 0, 0, 0, 0, 0x0a}
	macB = proto.MAC{0x02, 0, 0, 0, 0, 0x0b}
	macC = proto.MAC{0x02, 0, 0, 0, 0, 0x0c}
)

func testKeyring(t testing.TB, id uint8, seed byte) *proto.Keyring {
	t.Helper()
	k := proto.Key{ID: id}
	for i := range k.Secret {
		k.Secret[i] = seed + byte(i)
	}
	r, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rig is a switch with endpoints on it, torn down at the end of the test.
type rig struct {
	t   testing.TB
	sw  *linktest.Switch
	eps []*proto.Endpoint
}

func newRig(t testing.TB, cfg linktest.Config) *rig {
	r := &rig{t: t, sw: linktest.NewSwitch(cfg)}
	t.Cleanup(func() {
		for _, e := range r.eps {
			e.Close()
		}
		r.sw.Close()
	})
	return r
}

func (r *rig) endpoint(mac proto.MAC, keys *proto.Keyring, mod func(*proto.Config)) *proto.Endpoint {
	r.t.Helper()
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	if mod != nil {
		mod(&cfg)
	}
	e, err := proto.NewEndpoint(r.sw.Link(mac, proto.EtherTypeControl), cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.eps = append(r.eps, e)
	return e
}

func echo(ctx context.Context, req *proto.Request) ([]byte, error) { return req.Payload, nil }

func TestCallReturnsTheHandlersResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{MTU: 1500})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		b.Handle("echo", echo)
		b.Handle("who", func(ctx context.Context, req *proto.Request) ([]byte, error) {
			return []byte(req.From.String()), nil
		})
		for _, size := range []int{1, 64, 1400, 1500, 64 << 10, 4 << 20} {
			payload := bytes.Repeat([]byte{byte(size)}, size)
			got, err := a.Call(t.Context(), macB, "echo", payload)
			if err != nil {
				t.Fatalf("Call(%d bytes): %v", size, err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("Call(%d bytes) returned %d bytes, not the payload", size, len(got))
			}
		}
		got, err := a.Call(t.Context(), macB, "who", nil)
		if err != nil || string(got) != macA.String() {
			t.Fatalf("handler saw caller %q, %v; want %s", got, err, macA)
		}
	})
}

func TestRemoteErrorsAreTyped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		b.Handle("fail", func(ctx context.Context, req *proto.Request) ([]byte, error) {
			return nil, errors.New("disk on fire")
		})
		_, err := a.Call(t.Context(), macB, "nosuch", nil)
		if !errors.Is(err, proto.ErrUnknownMethod) {
			t.Fatalf("unknown method: got %v, want ErrUnknownMethod", err)
		}
		_, err = a.Call(t.Context(), macB, "fail", nil)
		var re *proto.RemoteError
		if !errors.As(err, &re) || re.Code != proto.CodeHandler || re.Message != "disk on fire" {
			t.Fatalf("handler error: got %#v", err)
		}
	})
}

func TestTypedCallsRoundTripCBOR(t *testing.T) {
	type req struct{ A, B int }
	type resp struct{ Sum int }
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		proto.HandleTyped(b, "add", func(ctx context.Context, from proto.MAC, q req) (resp, error) {
			return resp{q.A + q.B}, nil
		})
		got, err := proto.CallTyped[resp](t.Context(), a, macB, "add", req{2, 40})
		if err != nil || got.Sum != 42 {
			t.Fatalf("add = %+v, %v", got, err)
		}
		_, err = a.Call(t.Context(), macB, "add", []byte{0xff, 0x00})
		var re *proto.RemoteError
		if !errors.As(err, &re) || re.Code != proto.CodeBadRequest {
			t.Fatalf("bad CBOR: got %v, want a bad-request RemoteError", err)
		}
	})
}

func TestSendDeliversOnewayMessagesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{Hook: linktest.Faults{Loss: 0.1, Duplicate: 0.1, Seed: 3}.Hook()})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		got := make(chan string, 100)
		b.Handle("note", func(ctx context.Context, req *proto.Request) ([]byte, error) {
			if !req.Oneway {
				t.Error("a one-way message arrived as a call")
			}
			got <- string(req.Payload)
			return nil, nil
		})
		for i := range 50 {
			if err := a.Send(t.Context(), macB, "note", fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		seen := map[string]int{}
		for len(got) > 0 {
			seen[<-got]++
		}
		for i := range 50 {
			if n := seen[fmt.Sprintf("m%d", i)]; n != 1 {
				t.Errorf("message m%d delivered %d times, want once", i, n)
			}
		}
	})
}

func TestDiscoverCollectsOneAnswerPerNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{Hook: linktest.Faults{Loss: 0.1, Seed: 5}.Hook()})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		var macs []proto.MAC
		for i := range 20 {
			mac := proto.MAC{0x02, 0, 0, 0, 1, byte(i)}
			macs = append(macs, mac)
			e := r.endpoint(mac, keys, nil)
			e.Handle("info", func(ctx context.Context, req *proto.Request) ([]byte, error) {
				return []byte("node " + mac.NodeID()), nil
			})
		}
		// A node with another key does not answer.
		r.endpoint(macC, testKeyring(t, 1, 99), nil).Handle("info", echo)
		replies, err := a.Discover(t.Context(), "info", nil, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(replies) != len(macs) {
			t.Fatalf("got %d answers, want %d (loss is 10%%, the broadcast goes out five times)", len(replies), len(macs))
		}
		for i, rep := range replies {
			if rep.From != macs[i] || string(rep.Payload) != "node "+macs[i].NodeID() {
				t.Errorf("answer %d = %s %q", i, rep.From, rep.Payload)
			}
		}
	})
}

func TestUnknownPeerIsReportedDeadWithinTolerance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		a := r.endpoint(macA, testKeyring(t, 1, 7), nil)
		cfg := proto.DefaultConfig()
		start := time.Now()
		_, err := a.Call(t.Context(), macB, "echo", []byte("anyone?"))
		took := time.Since(start)
		if !errors.Is(err, proto.ErrPeerDead) {
			t.Fatalf("got %v, want ErrPeerDead", err)
		}
		var oe *proto.OpError
		if !errors.As(err, &oe) || oe.Peer != macB || oe.Method != "echo" {
			t.Fatalf("error %v does not name the peer and method", err)
		}
		if took < cfg.Tolerance || took > cfg.Tolerance+cfg.ProbeInterval {
			t.Fatalf("dead after %v, want within [tolerance %v, tolerance + probe interval %v]", took, cfg.Tolerance, cfg.Tolerance+cfg.ProbeInterval)
		}
	})
}

func TestPeerThatDiesMidCallIsReportedWithinToleranceAndAProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		bl := r.sw.Link(macB, proto.EtherTypeControl)
		cfg := proto.DefaultConfig()
		cfg.Keys = keys
		b, err := proto.NewEndpoint(bl, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		started := make(chan struct{})
		b.Handle("slow", func(ctx context.Context, req *proto.Request) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		var took time.Duration
		done := make(chan error)
		go func() {
			_, err := a.Call(t.Context(), macB, "slow", nil)
			done <- err
		}()
		<-started
		// A long call on a live peer is not declared dead: probes answer.
		time.Sleep(3 * cfg.Tolerance)
		select {
		case err := <-done:
			t.Fatalf("call on a live peer ended after 3 tolerances: %v", err)
		default:
		}
		bl.SetDown(true) // the cable is pulled
		cut := time.Now()
		err = <-done
		took = time.Since(cut)
		if !errors.Is(err, proto.ErrPeerDead) {
			t.Fatalf("got %v, want ErrPeerDead", err)
		}
		if took > cfg.Tolerance+cfg.ProbeInterval {
			t.Fatalf("dead peer reported after %v, want at most tolerance + probe interval = %v", took, cfg.Tolerance+cfg.ProbeInterval)
		}
	})
}

// A request the peer refuses as too large is answered after its first
// segment, while the rest still waits for the window; the caller may
// change its buffer once Call returns (the endpoint sends the rest from a
// copy), and the session goes on.
func TestCallerMayReuseItsBufferAfterARefusalForSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{MTU: 1500})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, func(c *proto.Config) { c.Window = 16 })
		b := r.endpoint(macB, keys, func(c *proto.Config) { c.MaxMessage = 1 << 20 })
		b.Handle("echo", echo)
		buf := bytes.Repeat([]byte{7}, 4<<20)
		_, err := a.Call(context.Background(), macB, "echo", buf)
		var re *proto.RemoteError
		if !errors.As(err, &re) || re.Code != proto.CodeTooLarge {
			t.Fatalf("4 MiB request to a 1 MiB peer: %v, want a remote CodeTooLarge error", err)
		}
		for i := range buf { // the caller's to change now, while the rest drains
			buf[i] = 9
		}
		got, err := a.Call(context.Background(), macB, "echo", []byte("after"))
		if err != nil || string(got) != "after" {
			t.Fatalf("call after the refusal: %q, %v", got, err)
		}
	})
}

// A handler that releases its payloads still sees every message whole and
// nothing of the earlier, larger messages whose memory it reuses.
func TestReleasedPayloadsAreReusedWithoutLeaking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{MTU: 1500})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		b.Handle("sum", func(ctx context.Context, req *proto.Request) ([]byte, error) {
			p := req.Payload
			resp := []byte{byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p)), 0}
			for _, c := range p[:cap(p)] { // all the handler can reach
				resp[3] ^= c
			}
			req.Release()
			if req.Payload != nil {
				return nil, errors.New("Payload not nil after Release")
			}
			req.Release() // twice is fine
			return resp, nil
		})
		ctx := context.Background()
		for i, size := range []int{300 << 10, 200 << 10, 300 << 10, 290<<10 + 1, 64 << 10, 300<<10 + 7, 40 << 10} {
			msg := bytes.Repeat([]byte{byte(i + 1)}, size)
			msg[0] = 0
			want := []byte{byte(size >> 16), byte(size >> 8), byte(size), 0}
			if (size-1)%2 == 1 {
				want[3] = byte(i + 1)
			}
			got, err := a.Call(ctx, macB, "sum", msg)
			if err != nil {
				t.Fatalf("call %d (%d B): %v", i, size, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("call %d (%d B): handler saw length/xor %x, want %x", i, size, got, want)
			}
		}
	})
}

// A handler registered with HandleInline answers like any other, and
// registering the method again with Handle replaces it.
func TestHandleInlineAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, linktest.Config{MTU: 1500})
		keys := testKeyring(t, 1, 7)
		a := r.endpoint(macA, keys, nil)
		b := r.endpoint(macB, keys, nil)
		b.HandleInline("echo", func(_ context.Context, req *proto.Request) ([]byte, error) {
			return append([]byte("re:"), req.Payload...), nil
		})
		for range 3 {
			if got, err := a.Call(t.Context(), macB, "echo", []byte("x")); err != nil || string(got) != "re:x" {
				t.Fatalf("inline echo = %q, %v", got, err)
			}
		}
		if got, err := a.Call(t.Context(), macB, proto.MethodPing, []byte("p")); err != nil || string(got) != "p" {
			t.Fatalf("ping = %q, %v", got, err)
		}
		b.Handle("echo", func(context.Context, *proto.Request) ([]byte, error) { return []byte("slow"), nil })
		if got, err := a.Call(t.Context(), macB, "echo", nil); err != nil || string(got) != "slow" {
			t.Fatalf("echo after Handle = %q, %v", got, err)
		}
	})
}
