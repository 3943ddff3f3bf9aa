package batchlink

import (
	"testing"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

func TestReadBatchTakesExactlyTheFramesQueued(t *testing.T) {
	sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
	defer sw.Close()
	a, b := proto.MAC{2, 0, 0, 0, 0, 1}, proto.MAC{2, 0, 0, 0, 0, 2}
	rx := New(sw.Link(a, proto.EtherTypeAoE))
	tx := sw.Link(b, proto.EtherTypeAoE)
	for i := range 5 {
		if err := tx.WriteTo(make([]byte, 60+i), a); err != nil {
			t.Fatal(err)
		}
	}
	frames := make([]proto.Frame, 8)
	for i := range frames {
		frames[i].Payload = make([]byte, 1500)
	}
	n, err := rx.ReadBatch(frames[:3])
	if err != nil || n != 3 {
		t.Fatalf("ReadBatch of 3 with 5 queued: %d, %v", n, err)
	}
	n, err = rx.ReadBatch(frames)
	if err != nil || n != 2 {
		t.Fatalf("ReadBatch of 8 with 2 queued: %d, %v; want the 2 without waiting for more", n, err)
	}
	for i, f := range frames[:n] {
		if len(f.Payload) != 63+i || f.Src != b {
			t.Errorf("frame %d: %d bytes from %s, want %d from %s, in order", i, len(f.Payload), f.Src, 63+i, b)
		}
	}
}
