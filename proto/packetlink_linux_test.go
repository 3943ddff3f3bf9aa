//go:build linux

package proto_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// openLinks opens a PacketLink on each of two namespaces joined by a bridge.
func openLinks(t *testing.T, et proto.EtherType) (a, b *proto.PacketLink) {
	t.Helper()
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 1500})
	links := make([]*proto.PacketLink, 2)
	for i, h := range lab.Hosts {
		if err := h.Do(func() (err error) {
			links[i], err = proto.OpenPacketLink(h.Iface, et, nil)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		t.Cleanup(func() { links[i].Close() })
	}
	return links[0], links[1]
}

// A frame that arrives while ReadBatches' handler is busy with the
// previous batch is read once the handler returns, without waiting for
// yet another frame to wake the reader: the readiness it left behind is
// not forgotten between batches.
func TestReadBatchesReadsAFrameThatCameDuringTheHandler(t *testing.T) {
	netns.RequireRoot(t)
	a, b := openLinks(t, 0x88b7)

	got := make(chan []byte, 8)
	inHandler := make(chan struct{})
	proceed := make(chan struct{})
	done := make(chan error, 1)
	frames := make([]proto.Frame, 4)
	for i := range frames {
		frames[i].Payload = make([]byte, b.MTU())
	}
	go func() {
		first := true
		done <- b.ReadBatches(frames, func(fs []proto.Frame) {
			for _, f := range fs {
				got <- bytes.Clone(f.Payload)
			}
			if first {
				first = false
				close(inHandler)
				<-proceed // the second frame is sent meanwhile
			}
		})
	}()

	one := bytes.Repeat([]byte{1}, 64)
	two := bytes.Repeat([]byte{2}, 64)
	if err := a.WriteTo(one, b.Addr()); err != nil {
		t.Fatal(err)
	}
	<-inHandler
	if err := a.WriteTo(two, b.Addr()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the frame land and the poller see it
	close(proceed)

	for _, want := range [][]byte{one, two} {
		select {
		case p := <-got:
			if !bytes.Equal(p[:len(want)], want) {
				t.Fatalf("read % x..., want % x...", p[:4], want[:4])
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d never read: the reader slept through its arrival", want[0])
		}
	}
	b.Close()
	if err := <-done; !errors.Is(err, proto.ErrClosed) {
		t.Fatalf("ReadBatches ended with %v, want ErrClosed", err)
	}
}

// Writers that race with Close see their frames sent or ErrClosed, and
// every write after Close fails with ErrClosed.
func TestWritesRacingCloseEndInErrClosed(t *testing.T) {
	a, b := openLinks(t, proto.EtherTypeControl)
	frame := bytes.Repeat([]byte{0x5a}, 1000)
	errc := make(chan error, 4)
	for range cap(errc) {
		go func() {
			for {
				if err := a.WriteBatch([][]byte{frame, frame}, b.Addr()); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond) // let the writers get going
	a.Close()
	for range cap(errc) {
		if err := <-errc; !errors.Is(err, proto.ErrClosed) {
			t.Errorf("a write racing Close failed with %v, want ErrClosed", err)
		}
	}
	if err := a.WriteTo(frame, b.Addr()); !errors.Is(err, proto.ErrClosed) {
		t.Errorf("WriteTo after Close: %v, want ErrClosed", err)
	}
}
