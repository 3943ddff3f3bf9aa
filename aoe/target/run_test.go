package target

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/aoe/internal/batchlink"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// disk is a backend that waits on the disk (so the workers serve it) and
// records its calls; a call that touches sector bad fails with ENOSPC.
type disk struct {
	*guarded
	calls []int // bytes per ReadAt/WriteAt call
	bad   int64 // -1: none
}

func (d *disk) IsDirect() bool { return true }

func (d *disk) call(p []byte, off int64) error {
	d.mu.Lock()
	d.calls = append(d.calls, len(p))
	d.mu.Unlock()
	if d.bad >= 0 && off <= d.bad*aoe.SectorSize && d.bad*aoe.SectorSize < off+int64(len(p)) {
		return syscall.ENOSPC
	}
	return nil
}

func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	if err := d.call(p, off); err != nil {
		return 0, err
	}
	return d.guarded.ReadAt(p, off)
}

func (d *disk) WriteAt(p []byte, off int64) (int, error) {
	if err := d.call(p, off); err != nil {
		return 0, err
	}
	return d.guarded.WriteAt(p, off)
}

func (d *disk) takeCalls() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.calls
	d.calls = nil
	return c
}

// queued sends reqs to a server that is not reading yet, so that its first
// read takes them all as one batch, then serves until every request is
// answered and returns the answers by tag.
func queued(t *testing.T, d *disk, reqs []aoe.Frame) map[uint32]aoe.Frame {
	t.Helper()
	sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
	defer sw.Close()
	tl := batchlink.New(sw.Link(targetMAC, proto.EtherTypeAoE))
	r := &rig{t: t, client: sw.Link(clientMAC, proto.EtherTypeAoE)}
	srv, err := NewServer(tl, DefaultConfig(), export(d))
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		reqs[i].Version, reqs[i].Tag = aoe.Version, uint32(i+1)
		b, err := reqs[i].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.client.WriteTo(b, targetMAC); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	got := map[uint32]aoe.Frame{}
	for len(got) < len(reqs) {
		f, ok := r.read()
		if !ok {
			t.Fatalf("%d of %d requests answered", len(got), len(reqs))
		}
		if f.Command == aoe.CmdATA {
			got[f.Tag] = f
		}
	}
	return got
}

func TestFramesOfOneLargeIOMakeOneBackendCall(t *testing.T) {
	const frames, spf = 8, 17 // sectors per frame at MTU 9000
	d := &disk{guarded: newGuarded(1 << 20), bad: -1}
	data := make([]byte, frames*spf*aoe.SectorSize)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	// A 68 KiB write from sector 100, as an initiator splits it, and one
	// more write elsewhere that joins nothing.
	var reqs []aoe.Frame
	for i := range frames {
		chunk := data[i*spf*aoe.SectorSize : (i+1)*spf*aoe.SectorSize]
		reqs = append(reqs, ataReq(ata.CmdWriteSectorsExt, uint64(100+i*spf), spf, chunk))
	}
	reqs = append(reqs, ataReq(ata.CmdWriteSectorsExt, 1000, 1, make([]byte, aoe.SectorSize)))
	for tag, rep := range queued(t, d, reqs) {
		if rep.IsError() || rep.ATA.CmdStatus&ata.StatusERR != 0 {
			t.Errorf("write %d failed: %+v", tag, rep)
		}
	}
	if calls := d.takeCalls(); !slices.Equal(slices.Sorted(slices.Values(calls)), []int{aoe.SectorSize, len(data)}) {
		t.Errorf("backend writes %v, want one of %d bytes for the joined frames and one of a sector", calls, len(data))
	}
	if d.syncs == 0 {
		t.Error("no sync: the export is not write-back, so a write is acked once durable")
	}
	if !bytes.Equal(d.snapshot()[100*aoe.SectorSize:][:len(data)], data) || !d.guardsIntact() {
		t.Fatal("the backend does not hold the joined write")
	}

	// The same sectors read back: one backend call, every frame its part.
	reqs = reqs[:0]
	for i := range frames {
		reqs = append(reqs, ataReq(ata.CmdReadSectorsExt, uint64(100+i*spf), spf, nil))
	}
	for tag, rep := range queued(t, d, reqs) {
		i := int(tag - 1)
		if want := data[i*spf*aoe.SectorSize : (i+1)*spf*aoe.SectorSize]; rep.IsError() || !bytes.Equal(rep.Data, want) {
			t.Errorf("read %d: error %v, data differs: %v", tag, rep.IsError(), !bytes.Equal(rep.Data, want))
		}
	}
	if calls := d.takeCalls(); len(calls) != 1 || calls[0] != len(data) {
		t.Errorf("backend reads %v, want one of %d bytes", calls, len(data))
	}
}

func TestJoinedCallThatFailsAnswersEachFrameAlone(t *testing.T) {
	const spf = 17
	d := &disk{guarded: newGuarded(1 << 20), bad: 100 + 2*spf} // inside the third frame
	var reqs []aoe.Frame
	for i := range 4 {
		reqs = append(reqs, ataReq(ata.CmdWriteSectorsExt, uint64(100+i*spf), spf, bytes.Repeat([]byte{byte(i + 1)}, spf*aoe.SectorSize)))
	}
	got := queued(t, d, reqs)
	for tag, rep := range got {
		failed := rep.ATA.CmdStatus&ata.StatusERR != 0
		if want := tag == 3; failed != want {
			t.Errorf("write %d: failed %v, want %v (only the frame over the bad sector fails)", tag, failed, want)
		}
	}
	if calls := d.takeCalls(); len(calls) != 5 {
		t.Errorf("backend writes %v, want the joined one, then each frame alone", calls)
	}
	snap := d.snapshot()
	for i := range 4 {
		b := snap[(100+i*spf)*aoe.SectorSize]
		if want := byte(i + 1); i != 2 && b != want {
			t.Errorf("frame %d's sectors hold %#x, want %#x", i+1, b, want)
		}
	}
}
