package target

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/aoe/internal/batchlink"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

var (
	targetMAC = proto.MAC{2, 0, 0, 0, 0, 1}
	clientMAC = proto.MAC{2, 0, 0, 0, 0, 2}
	otherMAC  = proto.MAC{2, 0, 0, 0, 0, 3}
)

// guarded is a backend that is a window inside a larger buffer, so a test
// can see whether anything touched the bytes around the export.
type guarded struct {
	mu    sync.Mutex
	all   []byte
	off   int
	size  int
	syncs int
}

const guard = 4096

func newGuarded(size int) *guarded {
	g := &guarded{all: make([]byte, size+2*guard), off: guard, size: size}
	for i := range g.all {
		g.all[i] = 0xee
	}
	return g
}

func (g *guarded) ReadAt(p []byte, off int64) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return copy(p, g.all[g.off+int(off):]), nil
}

func (g *guarded) WriteAt(p []byte, off int64) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return copy(g.all[g.off+int(off):], p), nil
}

func (g *guarded) Size() int64 { return int64(g.size) }

// IsDirect says the backend is page-cached, so the reader serves reads.
func (g *guarded) IsDirect() bool { return false }

func (g *guarded) Sync() error {
	g.mu.Lock()
	g.syncs++
	g.mu.Unlock()
	return nil
}

func (g *guarded) guardsIntact() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range append(g.all[:g.off:g.off], g.all[g.off+g.size:]...) {
		if b != 0xee {
			return false
		}
	}
	return true
}

type rig struct {
	t      *testing.T
	sw     *linktest.Switch
	client *linktest.Link
	srv    *Server
	tag    uint32
	done   chan error
	cancel context.CancelFunc
}

// start serves the exports on a switch and waits for the start-up
// announcement.
func start(t *testing.T, mtu int, exports ...ExportConfig) *rig {
	return startOn(t, mtu, false, exports...)
}

// startOn is start, with the target's port reading in batches when batch.
func startOn(t *testing.T, mtu int, batch bool, exports ...ExportConfig) *rig {
	t.Helper()
	sw := linktest.NewSwitch(linktest.Config{MTU: mtu})
	var tl proto.Link = sw.Link(targetMAC, proto.EtherTypeAoE)
	if batch {
		tl = batchlink.New(tl.(*linktest.Link))
	}
	cl := sw.Link(clientMAC, proto.EtherTypeAoE)
	srv, err := NewServer(tl, DefaultConfig(), exports...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, sw: sw, client: cl, srv: srv, done: make(chan error, 1), cancel: cancel}
	go func() { r.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sw.Close()
	})
	for range exports {
		f, ok := r.read()
		if !ok || f.Command != aoe.CmdConfig || !f.IsResponse() {
			t.Fatalf("no start-up Query Config broadcast: %+v", f)
		}
	}
	return r
}

// read returns the next frame, or false after a second of (fake) silence.
func (r *rig) read() (aoe.Frame, bool) {
	buf := make([]byte, 9000)
	r.client.SetReadDeadline(time.Now().Add(time.Second))
	n, _, _, err := r.client.ReadFrom(buf)
	if err != nil {
		return aoe.Frame{}, false
	}
	if n < proto.MinPayload {
		r.t.Errorf("reply of %d bytes is shorter than the 46-byte minimum payload", n)
	}
	var f aoe.Frame
	if err := f.UnmarshalBinary(buf[:n]); err != nil {
		r.t.Fatalf("reply does not decode: %v", err)
	}
	return f, true
}

func (r *rig) do(f aoe.Frame) (aoe.Frame, bool) {
	r.t.Helper()
	r.tag++
	f.Version, f.Tag = aoe.Version, r.tag
	b, err := f.MarshalBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.client.WriteTo(b, targetMAC); err != nil {
		r.t.Fatal(err)
	}
	rep, ok := r.read()
	if ok && rep.Tag != f.Tag {
		r.t.Fatalf("reply tag %d, want %d", rep.Tag, f.Tag)
	}
	return rep, ok
}

func ataReq(cmd uint8, lba uint64, count uint8, data []byte) aoe.Frame {
	fl := aoe.ATAFlagExtended
	if data != nil {
		fl |= aoe.ATAFlagWrite
	}
	return aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdATA},
		ATA: aoe.ATAArg{Flags: fl, SectorCount: count, CmdStatus: cmd, LBA: lba}, Data: data}
}

func export(b Backend) ExportConfig {
	c := DefaultExportConfig()
	c.Shelf, c.Slot, c.Backend = 1, 2, b
	return c
}

func TestQueryConfigAdvertisesBuffersAndSectors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 9000, export(newGuarded(1<<20)))
		rep, ok := r.do(aoe.Frame{Header: aoe.Header{Shelf: aoe.BroadcastShelf, Slot: aoe.BroadcastSlot, Command: aoe.CmdConfig}})
		if !ok {
			t.Fatal("no answer to a broadcast Query Config")
		}
		want := aoe.ConfigArg{BufferCount: DefaultBufferCount, Firmware: 0x4019, SectorCount: 17, Version: 1, Config: []byte{}}
		if diff := cmp.Diff(want, rep.Config); diff != "" || rep.Shelf != 1 || rep.Slot != 2 {
			t.Errorf("config reply from %d.%d (-want +got):\n%s", rep.Shelf, rep.Slot, diff)
		}
	})
}

func TestIdentifyReadWriteRoundTrip(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "frame by frame", true: "batched"}[batch], func(t *testing.T) {
			identifyReadWrite(t, batch)
		})
	}
}

func identifyReadWrite(t *testing.T, batch bool) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuarded(1 << 20)
		r := startOn(t, 9000, batch, export(g))
		rep, _ := r.do(ataReq(ata.CmdIdentify, 0, 1, nil))
		var id ata.Identity
		if err := id.UnmarshalBinary(rep.Data); err != nil || id.Sectors != 2048 {
			t.Fatalf("IDENTIFY: %+v %v; want 2048 sectors", id, err)
		}
		data := make([]byte, 17*512)
		for i := range data {
			data[i] = byte(i * 7)
		}
		rep, _ = r.do(ataReq(ata.CmdWriteSectorsExt, 100, 17, data))
		if rep.ATA.CmdStatus != ata.StatusDRDY || rep.IsError() {
			t.Fatalf("write status %#x error %v", rep.ATA.CmdStatus, rep.Error)
		}
		if g.syncs == 0 {
			t.Error("a write-through export acked a write without syncing the backend")
		}
		rep, _ = r.do(ataReq(ata.CmdReadSectorsExt, 100, 17, nil))
		if !bytes.Equal(rep.Data[:len(data)], data) {
			t.Error("read back differs from what was written")
		}
		// LBA28 with the device nibble set in lba3 reads the same place.
		req := ataReq(ata.CmdReadSectors, 0xe0000000|100, 1, nil)
		req.ATA.Flags = 0
		rep, _ = r.do(req)
		if !bytes.Equal(rep.Data[:512], data[:512]) {
			t.Error("LBA28 read differs")
		}
		rep, _ = r.do(ataReq(ata.CmdCheckPowerMode, 0, 0, nil))
		if rep.ATA.SectorCount != ata.PowerActive {
			t.Errorf("CHECK POWER MODE count %#x", rep.ATA.SectorCount)
		}
		before := g.syncs
		rep, _ = r.do(ataReq(ata.CmdFlushCacheExt, 0, 0, nil))
		if rep.ATA.CmdStatus != ata.StatusDRDY || g.syncs == before {
			t.Errorf("FLUSH CACHE EXT status %#x, synced %v", rep.ATA.CmdStatus, g.syncs > before)
		}
		if !g.guardsIntact() {
			t.Error("bytes outside the export changed")
		}
	})
}

func TestBadInputGetsTheAnswersTheIssueNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuarded(1 << 20)
		ro := newGuarded(1 << 20)
		roCfg := export(ro)
		roCfg.Slot, roCfg.ReadOnly = 3, true
		r := start(t, 1500, export(g), roCfg)

		rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 2047, 2, nil))
		if rep.ATA.CmdStatus&ata.StatusERR == 0 || rep.ATA.ErrFeature != ata.ErrIDNF {
			t.Errorf("read across the end: status %#x error %#x, want ERR and IDNF", rep.ATA.CmdStatus, rep.ATA.ErrFeature)
		}
		rep, _ = r.do(ataReq(ata.CmdWriteSectorsExt, 1<<40, 1, make([]byte, 512)))
		if rep.ATA.ErrFeature != ata.ErrIDNF {
			t.Errorf("write far past the end: error %#x, want IDNF", rep.ATA.ErrFeature)
		}
		rep, _ = r.do(ataReq(ata.CmdReadSectorsExt, 0, 3, nil))
		if !rep.IsError() || rep.Error != aoe.ErrBadArgument {
			t.Errorf("3 sectors at MTU 1500: AoE error %v, want bad argument (2)", rep.Error)
		}
		rep, _ = r.do(ataReq(ata.CmdWriteSectorsExt, 0, 2, make([]byte, 512)))
		if rep.Error != aoe.ErrBadArgument {
			t.Errorf("write with less data than its count: AoE error %v, want 2", rep.Error)
		}
		req := ataReq(ata.CmdWriteSectorsExt, 0, 1, make([]byte, 512))
		req.Slot = 3
		rep, _ = r.do(req)
		if rep.ATA.ErrFeature != ata.ErrABRT || rep.ATA.CmdStatus&ata.StatusERR == 0 {
			t.Errorf("write to a read-only export: status %#x error %#x, want ABRT", rep.ATA.CmdStatus, rep.ATA.ErrFeature)
		}
		rep, _ = r.do(ataReq(0xC8, 0, 1, nil)) // READ DMA: not ours
		if rep.ATA.ErrFeature != ata.ErrABRT {
			t.Errorf("unsupported ATA command: error %#x, want ABRT", rep.ATA.ErrFeature)
		}
		rep, _ = r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: 0x77}, Data: []byte{1}})
		if rep.Error != aoe.ErrUnrecognizedCommand {
			t.Errorf("unknown command: error %v, want 1", rep.Error)
		}
		if !g.guardsIntact() || !ro.guardsIntact() {
			t.Error("bytes outside an export changed")
		}
	})
}

func TestMACMaskSilencesOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := export(newGuarded(1 << 20))
		cfg.MACMask = []proto.MAC{otherMAC}
		r := start(t, 1500, cfg)
		if rep, ok := r.do(ataReq(ata.CmdIdentify, 0, 1, nil)); ok {
			t.Fatalf("a MAC outside the mask got an answer: %+v", rep.Header)
		}
		if _, ok := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdConfig}}); ok {
			t.Fatal("a MAC outside the mask got a config answer")
		}
		e := r.srv.Exports()[0]
		e.mu.Lock()
		e.mask = append(e.mask, clientMAC)
		e.publish()
		e.mu.Unlock()
		rep, ok := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdMACMask},
			MACMask: aoe.MACMaskArg{Cmd: aoe.MaskEdit, Directives: []aoe.Directive{{Cmd: aoe.DirDelete, MAC: otherMAC}, {Cmd: aoe.DirAdd, MAC: targetMAC}}}})
		if !ok {
			t.Fatal("no answer once on the mask")
		}
		want := []aoe.Directive{{Cmd: aoe.DirAdd, MAC: clientMAC}, {Cmd: aoe.DirAdd, MAC: targetMAC}}
		if diff := cmp.Diff(want, rep.MACMask.Directives); diff != "" {
			t.Errorf("mask list after edit (-want +got):\n%s", diff)
		}
		rep, _ = r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdMACMask},
			MACMask: aoe.MACMaskArg{Cmd: aoe.MaskEdit, Directives: []aoe.Directive{{Cmd: 9}}}})
		if rep.MACMask.Error != aoe.MaskErrBadDCmd {
			t.Errorf("bad directive: MError %d, want 2", rep.MACMask.Error)
		}
	})
}

func TestReservationConflictIsError6(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 1500, export(newGuarded(1<<20)))
		rep, _ := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdReserve},
			Reserve: aoe.ReserveArg{Cmd: aoe.ReserveSet, MACs: []proto.MAC{clientMAC}}})
		if rep.IsError() || len(rep.Reserve.MACs) != 1 {
			t.Fatalf("reserve by the first comer: %+v", rep)
		}
		if rep, _ := r.do(ataReq(ata.CmdReadSectorsExt, 0, 1, nil)); rep.IsError() {
			t.Fatalf("the holder got error %v", rep.Error)
		}
		// Now someone else holds it.
		rep, _ = r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdReserve},
			Reserve: aoe.ReserveArg{Cmd: aoe.ReserveForceSet, MACs: []proto.MAC{otherMAC}}})
		if rep.IsError() {
			t.Fatalf("force set: %v", rep.Error)
		}
		for _, req := range []aoe.Frame{
			ataReq(ata.CmdReadSectorsExt, 0, 1, nil),
			ataReq(ata.CmdWriteSectorsExt, 0, 1, make([]byte, 512)),
			{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdReserve}, Reserve: aoe.ReserveArg{Cmd: aoe.ReserveSet}},
			{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdConfig}, Config: aoe.ConfigArg{Cmd: aoe.ConfigForceSet, Config: []byte("x")}},
		} {
			rep, _ := r.do(req)
			if !rep.IsError() || rep.Error != aoe.ErrTargetReserved {
				t.Errorf("command %v from a MAC off the reserve list: error %v, want 6", req.Command, rep.Error)
			}
		}
		if rep, _ := r.do(aoe.Frame{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdReserve}}); rep.IsError() || rep.Reserve.MACs[0] != otherMAC {
			t.Errorf("reading the reserve list: %+v", rep.Reserve)
		}
	})
}

func TestConfigStringOperations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := start(t, 1500, export(newGuarded(1<<20)))
		cfg := func(cmd aoe.ConfigCmd, s string) (aoe.Frame, bool) {
			return r.do(aoe.Frame{Header: aoe.Header{Shelf: aoe.BroadcastShelf, Slot: aoe.BroadcastSlot, Command: aoe.CmdConfig},
				Config: aoe.ConfigArg{Cmd: cmd, Config: []byte(s)}})
		}
		if rep, ok := cfg(aoe.ConfigSet, "vol=one"); !ok || rep.IsError() || string(rep.Config.Config) != "vol=one" {
			t.Fatalf("set on an empty string: %v %+v", ok, rep.Config)
		}
		if rep, _ := cfg(aoe.ConfigSet, "vol=two"); rep.Error != aoe.ErrConfigPresent {
			t.Errorf("set over a present string: error %v, want 4", rep.Error)
		}
		if _, ok := cfg(aoe.ConfigTest, "vol=on"); ok {
			t.Error("exact test with a different string was answered")
		}
		if rep, ok := cfg(aoe.ConfigTest, "vol=one"); !ok || string(rep.Config.Config) != "vol=one" {
			t.Error("exact test with the same string was not answered")
		}
		if _, ok := cfg(aoe.ConfigPrefix, "vol=o"); !ok {
			t.Error("prefix test was not answered")
		}
		if _, ok := cfg(aoe.ConfigPrefix, "x"); ok {
			t.Error("a wrong prefix was answered")
		}
		if rep, _ := cfg(aoe.ConfigForceSet, "vol=two"); string(rep.Config.Config) != "vol=two" || r.srv.Exports()[0].Config() != "vol=two" {
			t.Errorf("force set: %q", rep.Config.Config)
		}
		if rep, _ := cfg(7, ""); rep.Error != aoe.ErrBadArgument {
			t.Errorf("config sub-command 7: error %v, want 2", rep.Error)
		}
	})
}

func TestRandomFramesNeverTouchBytesOutsideTheExport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuarded(64 << 10)
		r := start(t, 9000, export(g))
		rng := rand.New(rand.NewPCG(1, 2))
		valid := [][]byte{}
		for _, f := range []aoe.Frame{
			ataReq(ata.CmdWriteSectorsExt, 120, 8, make([]byte, 8*512)),
			ataReq(ata.CmdReadSectorsExt, 126, 2, nil),
			ataReq(ata.CmdWriteSectors, 0xe000007f, 1, make([]byte, 512)),
			{Header: aoe.Header{Version: 1, Shelf: 1, Slot: 2, Command: aoe.CmdConfig}},
			{Header: aoe.Header{Version: 1, Shelf: 1, Slot: 2, Command: aoe.CmdReserve}},
		} {
			f.Version = 1
			b, _ := f.MarshalBinary()
			valid = append(valid, b)
		}
		for i := 0; i < 5000; i++ {
			b := append([]byte(nil), valid[rng.IntN(len(valid))]...)
			for range 1 + rng.IntN(6) {
				b[rng.IntN(min(len(b), 40))] = byte(rng.Uint32())
			}
			if rng.IntN(10) == 0 {
				b = b[:rng.IntN(len(b))]
			}
			if err := r.client.WriteTo(b, targetMAC); err != nil {
				t.Fatal(err)
			}
			if i%64 == 0 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		// The target still answers.
		for {
			r.client.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, _, _, err := r.client.ReadFrom(make([]byte, 9000)); err != nil {
				break
			}
		}
		if _, ok := r.do(ataReq(ata.CmdIdentify, 0, 1, nil)); !ok {
			t.Fatal("target stopped answering after random frames")
		}
		if !g.guardsIntact() {
			t.Fatal("random frames changed bytes outside the export")
		}
	})
}

func TestFileBackendServesAndSyncs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, make([]byte, 1<<20+100), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != 1<<20 {
		t.Errorf("size %d, want whole sectors only (1 MiB)", f.Size())
	}
	if _, err := f.WriteAt([]byte("hello"), 512); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b[512:517]) != "hello" {
		t.Error("pwrite did not land")
	}
	ro, err := OpenFile(path, FileOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.WriteAt([]byte("x"), 0); err == nil {
		t.Error("a read-only backend accepted a write")
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing"), FileOptions{}); err == nil {
		t.Error("a missing file opened")
	}
}

func TestGroupSyncCoversEveryCaller(t *testing.T) {
	g := newGroupSync()
	var mu sync.Mutex
	calls := 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.sync(func() error { mu.Lock(); calls++; mu.Unlock(); return nil })
		}()
	}
	wg.Wait()
	if calls < 1 || calls > 50 {
		t.Fatalf("%d syncs for 50 callers", calls)
	}
}

func TestDirectBackendReadsAndWritesUnalignedBuffers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, FileOptions{Direct: true})
	if err != nil {
		t.Fatalf("O_DIRECT open in %s: %v", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 1024+22)
	p := buf[22:] // like the data area of a frame buffer
	for i := range p {
		p[i] = byte(i)
	}
	if _, err := f.WriteAt(p, 4096); err != nil {
		t.Fatalf("O_DIRECT write from an unaligned buffer: %v", err)
	}
	q := make([]byte, 1024+22)[22:]
	if _, err := f.ReadAt(q, 4096); err != nil || !bytes.Equal(p, q) {
		t.Fatalf("O_DIRECT read back: %v", err)
	}
}

func TestMappedFileReadsSeeWritesAndSurviveTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.mapped == nil {
		t.Fatal("a page-cached file was not mapped")
	}
	if _, err := f.WriteAt([]byte("mapped"), 4096); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := f.ReadAt(got, 4096); err != nil || string(got) != "mapped" {
		t.Fatalf("read through the mapping = %q, %v; want the write just made", got, err)
	}
	// Someone cuts the file short: a read of the lost part fails instead
	// of killing the process with SIGBUS.
	if err := os.Truncate(path, 8192); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(make([]byte, 4096), 512<<10); err == nil {
		t.Error("a read past the truncated end succeeded")
	}
	if _, err := f.ReadAt(got, 4096); err != nil || string(got) != "mapped" {
		t.Errorf("read inside what is left = %q, %v", got, err)
	}
	f.Close()
	if _, err := f.ReadAt(got, 4096); err == nil {
		t.Error("a read after Close succeeded")
	}
}
