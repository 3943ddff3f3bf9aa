package target

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/proto"
)

// do from another source MAC on the same switch.
func (r *rig) doFrom(l interface {
	WriteTo([]byte, proto.MAC) error
}, f aoe.Frame) {
	r.t.Helper()
	r.tag++
	f.Version, f.Tag = aoe.Version, r.tag
	b, err := f.MarshalBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := l.WriteTo(b, targetMAC); err != nil {
		r.t.Fatal(err)
	}
}

func epochReq(op aoe.EpochOp, e uint64) aoe.Frame {
	return aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdEpoch}, Epoch: aoe.EpochArg{Op: op, Epoch: e}}
}

// snapshot returns the export's bytes.
func (g *guarded) snapshot() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Clone(g.all[g.off : g.off+g.size])
}

func TestEpochRegistrationFencesOlderEpochs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuarded(1 << 20)
		var mu sync.Mutex
		var persisted []uint64
		cfg := export(g)
		cfg.Epoch = 3
		cfg.OnEpoch = func(e uint64) error {
			mu.Lock()
			defer mu.Unlock()
			persisted = append(persisted, e)
			return nil
		}
		r := start(t, 9000, cfg)
		e := r.srv.Exports()[0]

		// Not registered: reads and writes are refused, IDENTIFY is not.
		before := g.snapshot()
		rep, _ := r.do(ataReq(ata.CmdWriteSectorsExt, 0, 1, bytes.Repeat([]byte{1}, 512)))
		if !rep.IsError() || rep.Error != aoe.ErrEpochUnregistered {
			t.Fatalf("write before registering: error flag %v code %v, want %v", rep.IsError(), rep.Error, aoe.ErrEpochUnregistered)
		}
		if !bytes.Equal(g.snapshot(), before) {
			t.Error("a refused write changed the backend")
		}
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.Error != aoe.ErrEpochUnregistered {
			t.Errorf("read before registering: error %v, want %v", rep.Error, aoe.ErrEpochUnregistered)
		}
		if rep, _ := r.do(ataReq(ata.CmdIdentify, 0, 1, nil)); rep.IsError() {
			t.Errorf("IDENTIFY before registering: error %v, want an answer", rep.Error)
		}
		// Query Config works for everyone.
		if rep, ok := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdConfig}}); !ok || rep.IsError() {
			t.Errorf("Query Config from an unregistered source: %v %v", ok, rep.Error)
		}

		// An older epoch is stale; reading the epoch changes nothing.
		if rep, _ := r.do(epochReq(aoe.EpochRegister, 2)); rep.Epoch.Status != aoe.EpochStale || rep.Epoch.Epoch != 3 {
			t.Errorf("register at 2 on an export at 3: %+v, want stale at 3", rep.Epoch)
		}
		if rep, _ := r.do(epochReq(aoe.EpochRead, 0)); rep.Epoch.Status != aoe.EpochOK || rep.Epoch.Epoch != 3 {
			t.Errorf("read epoch: %+v, want ok at 3", rep.Epoch)
		}
		// The current epoch registers without a raise.
		if rep, _ := r.do(epochReq(aoe.EpochRegister, 3)); rep.IsError() || rep.Epoch.Status != aoe.EpochOK || rep.Epoch.Epoch != 3 {
			t.Fatalf("register at 3: %+v", rep.Epoch)
		}
		if len(persisted) != 0 {
			t.Errorf("OnEpoch called %v without a raise", persisted)
		}
		data := bytes.Repeat([]byte{7}, 512)
		if rep, _ := r.do(ataReq(ata.CmdWriteSectorsExt, 0, 1, data)); rep.IsError() || rep.ATA.CmdStatus != ata.StatusDRDY {
			t.Fatalf("write once registered: %v %#x", rep.Error, rep.ATA.CmdStatus)
		}
		if !bytes.Equal(g.snapshot()[:512], data) {
			t.Fatal("a registered write did not land")
		}

		// Another node raises the epoch to 5: we are fenced.
		other := r.sw.Link(otherMAC, proto.EtherTypeAoE)
		r.doFrom(other, epochReq(aoe.EpochRegister, 5))
		synctest.Wait()
		if e.Epoch() != 5 || len(persisted) != 1 || persisted[0] != 5 {
			t.Fatalf("after a register at 5: epoch %d, persisted %v", e.Epoch(), persisted)
		}
		before = g.snapshot()
		rep, _ = r.do(ataReq(ata.CmdWriteSectorsExt, 8, 1, bytes.Repeat([]byte{9}, 512)))
		if rep.Error != aoe.ErrEpochStale {
			t.Errorf("write at a stale epoch: error %v, want %v", rep.Error, aoe.ErrEpochStale)
		}
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.Error != aoe.ErrEpochStale || len(rep.Data) > 24 {
			t.Errorf("read at a stale epoch: error %v with %d data bytes", rep.Error, len(rep.Data))
		}
		if rep, _ := r.do(ataReq(ata.CmdFlushCacheExt, 0, 0, nil)); rep.Error != aoe.ErrEpochStale {
			t.Errorf("flush at a stale epoch: error %v", rep.Error)
		}
		if !bytes.Equal(g.snapshot(), before) {
			t.Error("a refused write changed the backend")
		}
		if got := e.Stats().EpochRefusals; got != 5 {
			t.Errorf("EpochRefusals = %d, want 5", got)
		}
		// Reserve/Release still works for the fenced source.
		if rep, _ := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdReserve}}); rep.IsError() {
			t.Errorf("reserve read from a fenced source: %v", rep.Error)
		}

		// A local raise is monotonic and calls OnEpoch.
		if got, err := e.RaiseEpoch(4); err != nil || got != 5 {
			t.Errorf("RaiseEpoch(4) = %d, %v; want 5 (no-op)", got, err)
		}
		if got, err := e.RaiseEpoch(9); err != nil || got != 9 || e.Epoch() != 9 || persisted[len(persisted)-1] != 9 {
			t.Errorf("RaiseEpoch(9) = %d, %v; epoch %d, persisted %v", got, err, e.Epoch(), persisted)
		}
		if got := e.Registered(); got[clientMAC] != 3 || got[otherMAC] != 5 {
			t.Errorf("Registered() = %v", got)
		}
	})
}

func TestOnEpochErrorRefusesTheRaise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := export(newGuarded(1 << 20))
		cfg.Epoch = 1
		boom := errors.New("disk full")
		cfg.OnEpoch = func(uint64) error { return boom }
		r := start(t, 1500, cfg)
		e := r.srv.Exports()[0]
		if rep, _ := r.do(epochReq(aoe.EpochRegister, 2)); rep.Epoch.Status != aoe.EpochRefused || rep.Epoch.Epoch != 1 {
			t.Errorf("register at 2 when OnEpoch fails: %+v, want refused at 1", rep.Epoch)
		}
		if _, err := e.RaiseEpoch(2); !errors.Is(err, boom) || !errors.Is(err, ErrEpochRefused) {
			t.Errorf("RaiseEpoch when OnEpoch fails: %v", err)
		}
		if e.Epoch() != 1 {
			t.Errorf("epoch %d after refused raises, want 1", e.Epoch())
		}
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.Error != aoe.ErrEpochUnregistered {
			t.Errorf("read after a refused registration: error %v", rep.Error)
		}
	})
}

func TestEpochsOffBehavesAsAStandardTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 1500, export(newGuarded(1<<20)))
		e := r.srv.Exports()[0]
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.IsError() {
			t.Errorf("read from an unregistered source without epochs: %v", rep.Error)
		}
		if rep, _ := r.do(epochReq(aoe.EpochRegister, 4)); rep.IsError() || rep.Epoch.Status != aoe.EpochOff || rep.Epoch.Epoch != 0 {
			t.Errorf("register on an export without epochs: %+v", rep.Epoch)
		}
		if _, err := e.RaiseEpoch(3); !errors.Is(err, ErrEpochsOff) {
			t.Errorf("RaiseEpoch without epochs: %v, want ErrEpochsOff", err)
		}
		bad := export(newGuarded(1 << 20))
		bad.OnEpoch = func(uint64) error { return nil }
		if err := bad.Validate(); err == nil {
			t.Error("OnEpoch with Epoch 0 validated")
		}
	})
}

// full is a backend whose writes fail with ENOSPC, as a thin pool's do
// when it runs out of chunks.
type full struct{ *guarded }

func (full) WriteAt([]byte, int64) (int, error) {
	return 0, &pathError{fmt.Errorf("write: %w", syscall.ENOSPC)}
}

type pathError struct{ err error }

func (p *pathError) Error() string { return p.err.Error() }
func (p *pathError) Unwrap() error { return p.err }

func TestNoSpaceIsAVendorErrorOnlyForRegisteredSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 1500, export(full{newGuarded(1 << 20)}))
		rep, _ := r.do(ataReq(ata.CmdWriteSectorsExt, 0, 1, make([]byte, 512)))
		if rep.IsError() || rep.ATA.CmdStatus&ata.StatusERR == 0 || rep.ATA.ErrFeature != ata.ErrABRT {
			t.Errorf("ENOSPC to a standard initiator: E=%v status %#x error %#x, want ATA ABRT", rep.IsError(), rep.ATA.CmdStatus, rep.ATA.ErrFeature)
		}
		r.do(epochReq(aoe.EpochRegister, 0))
		rep, _ = r.do(ataReq(ata.CmdWriteSectorsExt, 0, 1, make([]byte, 512)))
		if !rep.IsError() || rep.Error != aoe.ErrNoSpace {
			t.Errorf("ENOSPC to a registered initiator: E=%v error %v, want %v", rep.IsError(), rep.Error, aoe.ErrNoSpace)
		}
		if got := r.srv.Exports()[0].Stats().NoSpace; got != 2 {
			t.Errorf("NoSpace = %d, want 2", got)
		}
	})
}

func TestExportsComeAndGoWhileServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 1500) // no exports at all
		if rep, ok := r.do(ataReq(ata.CmdIdentify, 0, 1, nil)); ok {
			t.Fatalf("a server without exports answered: %+v", rep.Header)
		}
		g := newGuarded(1 << 20)
		e, err := r.srv.AddExport(export(g))
		if err != nil {
			t.Fatal(err)
		}
		// The new export announces itself.
		if f, ok := r.read(); !ok || f.Command != aoe.CmdConfig || f.Shelf != 1 || f.Slot != 2 {
			t.Fatalf("no announcement of the added export: %v %+v", ok, f.Header)
		}
		if _, err := r.srv.AddExport(export(newGuarded(1 << 20))); !errors.Is(err, ErrExportExists) || !bytes.Contains([]byte(err.Error()), []byte("1.2")) {
			t.Errorf("adding 1.2 twice: %v, want ErrExportExists naming 1.2", err)
		}
		data := bytes.Repeat([]byte{3}, 512)
		if rep, ok := r.do(ataReq(ata.CmdWriteSectorsExt, 4, 1, data)); !ok || rep.IsError() {
			t.Fatalf("write to the added export: %v %v", ok, rep.Error)
		}
		if err := r.srv.RemoveExport(1, 2); err != nil {
			t.Fatal(err)
		}
		if r.srv.Export(1, 2) != nil || len(r.srv.Exports()) != 0 {
			t.Error("the removed export is still listed")
		}
		if rep, ok := r.do(ataReq(ata.CmdReadSectorsExt, 4, 1, nil)); ok {
			t.Fatalf("a removed export answered: %+v", rep.Header)
		}
		if err := r.srv.RemoveExport(1, 2); !errors.Is(err, ErrNoExport) {
			t.Errorf("removing it again: %v, want ErrNoExport", err)
		}
		if !bytes.Equal(g.snapshot()[4*512:5*512], data) || e.Stats().Writes != 1 {
			t.Error("the write before removal is missing")
		}
		// The address may be served again.
		if _, err := r.srv.AddExport(export(g)); err != nil {
			t.Fatalf("re-adding 1.2: %v", err)
		}
		r.read()
		if rep, ok := r.do(ataReq(ata.CmdReadSectorsExt, 4, 1, nil)); !ok || !bytes.Equal(rep.Data[:512], data) {
			t.Errorf("read from the re-added export: %v", ok)
		}
	})
}

func TestSetReserveFencesOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 1500, export(newGuarded(1<<20)))
		e := r.srv.Exports()[0]
		if err := e.SetReserve([]proto.MAC{otherMAC}); err != nil {
			t.Fatal(err)
		}
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.Error != aoe.ErrTargetReserved {
			t.Errorf("read off the reserve list: error %v, want 6", rep.Error)
		}
		if rep, _ := r.do(epochReq(aoe.EpochRegister, 1)); rep.Error != aoe.ErrTargetReserved {
			t.Errorf("register off the reserve list: error %v, want 6", rep.Error)
		}
		if err := e.SetReserve(nil); err != nil || len(e.Reserved()) != 0 {
			t.Fatalf("release: %v %v", err, e.Reserved())
		}
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.IsError() {
			t.Errorf("read after release: %v", rep.Error)
		}
	})
}

// A writer moving to the epoch it was given keeps its own requests admitted
// at the old one; another source's are refused.
func TestRegistrantKeepsItsRequestsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f fence
		f.init(1, nil)
		for _, src := range []proto.MAC{clientMAC, otherMAC} {
			if rep := f.register(src, aoe.EpochArg{Op: aoe.EpochRegister, Epoch: 1}); rep.Status != aoe.EpochOK {
				t.Fatalf("register %v at 1: %+v", src, rep)
			}
		}
		mine, code := f.admit(clientMAC)
		theirs, code2 := f.admit(otherMAC)
		if code != 0 || code2 != 0 {
			t.Fatalf("admit at 1: %v %v", code, code2)
		}
		done := make(chan aoe.EpochArg, 1)
		go func() { done <- f.register(clientMAC, aoe.EpochArg{Op: aoe.EpochRegister, Epoch: 2}) }()
		synctest.Wait() // the registration waits for the requests admitted at 1
		if !f.still(clientMAC, mine) {
			t.Error("the registrant's own request admitted at epoch 1 was refused while it moved to epoch 2")
		}
		if f.still(otherMAC, theirs) {
			t.Error("another source's request admitted at epoch 1 still runs after the raise to 2")
		}
		f.leave(mine)
		f.leave(theirs)
		if rep := <-done; rep.Status != aoe.EpochOK || rep.Epoch != 2 {
			t.Errorf("register at 2: %+v", rep)
		}
	})
}
