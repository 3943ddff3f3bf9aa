//go:build linux

package rawlink

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mvstack/mvstack/proto"
)

// pair makes a network namespace with a veth pair at MTU 9000 and opens a
// link on each end inside it.
func pair(t *testing.T) (*Link, *Link) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_NET_ADMIN and CAP_NET_RAW: run as root")
	}
	name := fmt.Sprintf("rawlink%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	for _, args := range [][]string{
		{"link", "add", "ra0", "type", "veth", "peer", "name", "rb0"},
		{"link", "set", "ra0", "mtu", "9000"},
		{"link", "set", "rb0", "mtu", "9000"},
		{"link", "set", "ra0", "up"},
		{"link", "set", "rb0", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	var a, b *Link
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread stays in the namespace and dies with it
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		if a, err = Open("ra0", proto.EtherTypeAoE); err != nil {
			errc <- err
			return
		}
		b, err = Open("rb0", proto.EtherTypeAoE)
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestFramesBatchesDeadlineAndClose(t *testing.T) {
	a, b := pair(t)
	if a.MTU() != 9000 || a.Addr() == b.Addr() {
		t.Fatalf("MTU %d, addresses %s %s", a.MTU(), a.Addr(), b.Addr())
	}
	// A short payload is padded to the Ethernet minimum; a long one
	// arrives whole.
	long := bytes.Repeat([]byte{0x5a}, 8000)
	if err := a.WriteTo([]byte("hi"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteBatch([][]byte{long, []byte("x"), []byte("y")}, b.Addr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 9000)
	n, src, dst, err := b.ReadFrom(buf)
	if err != nil || n != proto.MinPayload || string(buf[:2]) != "hi" || src != a.Addr() || dst != b.Addr() {
		t.Fatalf("ReadFrom = %d %s %s %v (%q)", n, src, dst, err, buf[:2])
	}
	frames := make([]proto.Frame, 8)
	for i := range frames {
		frames[i].Payload = make([]byte, 9000)
	}
	got := 0
	var payloads [][]byte
	for got < 3 {
		k, err := b.ReadBatch(frames)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames[:k] {
			payloads = append(payloads, bytes.Clone(f.Payload))
		}
		got += k
		for i := range frames {
			frames[i].Payload = frames[i].Payload[:cap(frames[i].Payload)]
		}
	}
	if !bytes.Equal(payloads[0], long) || payloads[1][0] != 'x' || payloads[2][0] != 'y' {
		t.Errorf("batch arrived as %d frames, first %d bytes", len(payloads), len(payloads[0]))
	}
	// The sender does not read its own frames.
	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, _, err := a.ReadFrom(buf); !proto.IsTimeout(err) {
		t.Errorf("a read with nothing to read: %v, want a timeout", err)
	}
	if err := a.WriteTo(make([]byte, 9001), b.Addr()); !errors.Is(err, proto.ErrTooBig) {
		t.Errorf("payload over the MTU: %v, want ErrTooBig", err)
	}
	// Close unblocks a pending read.
	done := make(chan error, 1)
	b.SetReadDeadline(time.Time{})
	go func() { _, _, _, err := b.ReadFrom(buf); done <- err }()
	time.Sleep(10 * time.Millisecond) // let the read block; not needed for correctness
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, proto.ErrClosed) {
			t.Errorf("read across Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock a pending read")
	}
	if err := b.WriteTo([]byte("z"), a.Addr()); !errors.Is(err, proto.ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
}
