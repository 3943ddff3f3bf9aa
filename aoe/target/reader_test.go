package target

import (
	"testing"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
)

// stuck is a disk whose reads of sector 0 wait until release is closed;
// entered has a value for each of them.
type stuck struct {
	*disk
	entered, release chan struct{}
}

func (s *stuck) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.disk.ReadAt(p, off)
}

func TestStuckDiskNeverHoldsUpTheReader(t *testing.T) {
	d := &stuck{disk: &disk{guarded: newGuarded(1 << 20), bad: -1}, entered: make(chan struct{}, 64), release: make(chan struct{})}
	r := startOn(t, 9000, true, export(d))
	// More stuck reads than there are goroutines that could take the
	// reader's role, one at a time so that each is a batch of its own:
	// some are served by readers themselves, the rest wait for workers.
	const n = 2 * standbys
	for i := range n {
		f := ataReq(ata.CmdReadSectorsExt, 0, 1, nil)
		f.Version, f.Tag = aoe.Version, uint32(100+i)
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.client.WriteTo(b, targetMAC); err != nil {
			t.Fatal(err)
		}
		<-d.entered
	}
	// Other requests are still answered, disk ones too.
	if rep, ok := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdConfig}}); !ok || rep.IsError() {
		t.Fatalf("no answer to Query Config while the disk is stuck: %+v", rep)
	}
	if rep, ok := r.do(ataReq(ata.CmdReadSectorsExt, 8, 1, nil)); !ok || rep.ATA.CmdStatus&ata.StatusERR != 0 {
		t.Fatalf("no answer to a read elsewhere while the disk is stuck: %+v", rep)
	}
	close(d.release)
	seen := map[uint32]bool{}
	for len(seen) < n {
		rep, ok := r.read()
		if !ok {
			t.Fatalf("%d of %d stuck reads answered after the disk came back", len(seen), n)
		}
		if rep.Tag >= 100 && rep.ATA.CmdStatus&ata.StatusERR == 0 {
			seen[rep.Tag] = true
		}
	}
}
