package initiator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/aoe/internal/batchlink"
	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// mem is an in-memory backend.
type mem struct {
	mu sync.Mutex
	b  []byte
}

func (m *mem) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(p, m.b[off:]), nil
}

func (m *mem) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.b[off:], p), nil
}

func (m *mem) Size() int64 { return int64(len(m.b)) }
func (m *mem) Sync() error { return nil }

func mac(i byte) proto.MAC { return proto.MAC{2, 0, 0, 0, 0, i} }

// serve runs a target with the exports on a new port of sw and stops it at
// cleanup. It returns the target's link.
func serve(t *testing.T, sw *linktest.Switch, m proto.MAC, exports ...target.ExportConfig) *linktest.Link {
	t.Helper()
	l := sw.Link(m, proto.EtherTypeAoE)
	serveOn(t, l, exports...)
	return l
}

// serveOn runs a target with the exports on l and stops it at cleanup.
func serveOn(t *testing.T, l proto.Link, exports ...target.ExportConfig) {
	t.Helper()
	srv, err := target.NewServer(l, target.DefaultConfig(), exports...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func exportOf(shelf uint16, slot uint8, b target.Backend) target.ExportConfig {
	c := target.DefaultExportConfig()
	c.Shelf, c.Slot, c.Backend = shelf, slot, b
	return c
}

func newInitiator(t *testing.T, links ...proto.Link) *Initiator {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Links = links
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestDiscoverFindsEveryExport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
		t.Cleanup(func() { sw.Close() })
		a := exportOf(1, 1, &mem{b: make([]byte, 1<<20)})
		a.Config = "vol=a"
		serve(t, sw, mac(1), a, exportOf(1, 2, &mem{b: make([]byte, 1<<20)}))
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE))
		found, err := in.Discover(context.Background(), 0xffff, 0xff)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 2 {
			t.Fatalf("found %d targets, want 2: %+v", len(found), found)
		}
		got := found[0]
		if got.Shelf != 1 || got.Slot != 1 || got.MAC != mac(1) || got.BufferCount != target.DefaultBufferCount || got.SectorsPerFrame != 17 || got.Config != "vol=a" {
			t.Errorf("first target: %+v", got)
		}
		if _, err := in.Open(context.Background(), 5, 5); !errors.Is(err, ErrNoTarget) {
			t.Errorf("opening an address nobody serves: %v, want ErrNoTarget", err)
		}
	})
}

func writeReadVerify(t *testing.T, d *Device, size int, seed uint64) {
	t.Helper()
	data := random(size, seed)
	if n, err := d.WriteAt(data, 0); err != nil || n != size {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if err := d.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got := make([]byte, size)
	if n, err := d.ReadAt(got, 0); err != nil || n != size {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data read back differs from data written")
	}
}

func TestWriteReadVerifyAtBothMTUs(t *testing.T) {
	for _, c := range []struct {
		name  string
		mtu   int
		batch bool
	}{{"1500", 1500, false}, {"9000", 9000, false}, {"9000 batched", 9000, true}} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sw := linktest.NewSwitch(linktest.Config{MTU: c.mtu})
				t.Cleanup(func() { sw.Close() })
				backend := &mem{b: make([]byte, 4<<20)}
				var tl, il proto.Link = sw.Link(mac(1), proto.EtherTypeAoE), sw.Link(mac(9), proto.EtherTypeAoE)
				if c.batch {
					tl, il = batchlink.New(tl.(*linktest.Link)), batchlink.New(il.(*linktest.Link))
				}
				serveOn(t, tl, exportOf(3, 4, backend))
				in := newInitiator(t, il)
				d, err := in.Open(context.Background(), 3, 4)
				if err != nil {
					t.Fatal(err)
				}
				if d.Size() != 4<<20 || d.Identity().Sectors != 8192 {
					t.Fatalf("size %d, identity %+v", d.Size(), d.Identity())
				}
				writeReadVerify(t, d, 4<<20, 1)
				if !bytes.Equal(backend.b, random(4<<20, 1)) {
					t.Fatal("the backend does not hold what was written")
				}
				p := d.Paths()[0]
				if p.Window < 2 || p.Window > target.DefaultBufferCount {
					t.Errorf("window after 4 MiB is %d, want it grown and at most the buffer count %d", p.Window, target.DefaultBufferCount)
				}
			})
		})
	}
}

func TestLossDuplicationAndReorderingLoseNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hook := linktest.Faults{Loss: 0.05, Duplicate: 0.03, Reorder: 0.05, Jitter: 200 * time.Microsecond, Seed: 42}.Hook()
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000, Hook: hook})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: make([]byte, 4<<20)}
		serve(t, sw, mac(1), exportOf(3, 4, backend))
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE))
		var d *Device
		var err error
		for range 5 { // discovery itself may be lost
			if d, err = in.Open(context.Background(), 3, 4); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		writeReadVerify(t, d, 4<<20, 2)
		// Overwrite part of it and check the newest data wins.
		newer := random(1<<20, 3)
		if _, err := d.WriteAt(newer, 1<<20); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1<<20)
		if _, err := d.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, newer) {
			t.Fatalf("after an overwrite under loss: equal=%v err=%v", bytes.Equal(got, newer), err)
		}
	})
}

func TestUnalignedIOAndTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: random(64<<10, 4)}
		serve(t, sw, mac(1), exportOf(0, 0, backend))
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE))
		d, err := in.Open(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := random(64<<10, 4)
		got := make([]byte, 1000)
		if n, err := d.ReadAt(got, 700); err != nil || n != 1000 || !bytes.Equal(got, want[700:1700]) {
			t.Fatalf("unaligned read: %d %v", n, err)
		}
		patch := []byte("hello, sector boundary")
		if _, err := d.WriteAt(patch, 510); err != nil {
			t.Fatal(err)
		}
		copy(want[510:], patch)
		if !bytes.Equal(backend.b, want) {
			t.Fatal("unaligned write changed the wrong bytes")
		}
		n, err := d.ReadAt(make([]byte, 4096), 64<<10-1024)
		if n != 1024 || !errors.Is(err, io.EOF) {
			t.Errorf("read across the end = %d, %v; want 1024, io.EOF", n, err)
		}
		if _, err := d.WriteAt(make([]byte, 1024), 64<<10-512); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("write across the end: %v, want ErrOutOfRange", err)
		}
		// The target itself answers IDNF past the end.
		err = d.rw(context.Background(), make([]byte, 1024), 127, false)
		var e *Error
		if !errors.Is(err, ErrOutOfRange) || !errors.As(err, &e) || e.ErrReg != 0x10 {
			t.Errorf("read of sectors 127-128 of 128: %v, want ErrOutOfRange with IDNF", err)
		}
	})
}

func TestTargetErrorsMapToSentinels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
		t.Cleanup(func() { sw.Close() })
		ro := exportOf(0, 1, &mem{b: make([]byte, 64<<10)})
		ro.ReadOnly = true
		serve(t, sw, mac(1), ro)
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE))
		d, err := in.Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.WriteAt(make([]byte, 512), 0); !errors.Is(err, ErrAborted) {
			t.Errorf("write to a read-only export: %v, want ErrAborted", err)
		}
		if err := d.rw(context.Background(), make([]byte, 3*512), 0, false); !errors.Is(err, ErrBadArgument) {
			// One request of 3 sectors is more than a 1500-byte frame holds.
			d.in.mu.Lock()
			d.paths[0].info.SectorsPerFrame = 3
			d.in.mu.Unlock()
			if err := d.rw(context.Background(), make([]byte, 3*512), 0, false); !errors.Is(err, ErrBadArgument) {
				t.Errorf("3 sectors at MTU 1500: %v, want ErrBadArgument", err)
			}
		}
	})
}

func TestReservationIsError6(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
		t.Cleanup(func() { sw.Close() })
		serve(t, sw, mac(1), exportOf(0, 1, &mem{b: make([]byte, 64<<10)}))
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE))
		other := newInitiator(t, sw.Link(mac(8), proto.EtherTypeAoE))
		d, err := in.Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		od, err := other.Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if list, err := od.Reserve(context.Background(), []proto.MAC{mac(8)}, false); err != nil || len(list) != 1 {
			t.Fatalf("reserve: %v %v", list, err)
		}
		if _, err := d.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrReserved) {
			t.Errorf("read from a MAC off the reserve list: %v, want ErrReserved", err)
		}
		if _, err := d.Reserve(context.Background(), nil, false); !errors.Is(err, ErrReserved) {
			t.Errorf("release by a stranger: %v, want ErrReserved", err)
		}
		if _, err := d.Reserve(context.Background(), nil, true); err != nil {
			t.Errorf("forced release: %v", err)
		}
		if _, err := d.ReadAt(make([]byte, 512), 0); err != nil {
			t.Errorf("read after release: %v", err)
		}
	})
}

func TestMultipathSurvivesALostPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: make([]byte, 4<<20)}
		// Two targets serve the same backend at the same address, as two
		// NICs of one storage node would.
		t1 := serve(t, sw, mac(1), exportOf(2, 2, backend))
		serve(t, sw, mac(2), exportOf(2, 2, backend))
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE), sw.Link(mac(10), proto.EtherTypeAoE))
		d, err := in.Open(context.Background(), 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(d.Paths()); n != 4 {
			t.Fatalf("%d paths, want 4 (2 targets × 2 links)", n)
		}
		writeReadVerify(t, d, 1<<20, 5)
		t1.SetDown(true)
		writeReadVerify(t, d, 4<<20, 6)
		for _, p := range d.Paths() {
			if p.MAC == mac(1) && p.InFlight != 0 {
				t.Errorf("dead path still holds %d requests", p.InFlight)
			}
		}
	})
}

func TestTimeoutWhenTheTargetIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
		t.Cleanup(func() { sw.Close() })
		tl := serve(t, sw, mac(1), exportOf(0, 1, &mem{b: make([]byte, 64<<10)}))
		cfg := DefaultConfig()
		cfg.Links = []proto.Link{sw.Link(mac(9), proto.EtherTypeAoE)}
		cfg.RequestTimeout = 3 * time.Second
		in, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		d, err := in.Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		tl.SetDown(true)
		start := time.Now()
		_, err = d.ReadAt(make([]byte, 512), 0)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("read from a silent target: %v, want ErrTimeout", err)
		}
		if el := time.Since(start); el < 3*time.Second || el > 5*time.Second {
			t.Errorf("gave up after %v, want about RequestTimeout (3s)", el)
		}
		// A target that comes back within the timeout loses nothing.
		go func() { time.Sleep(time.Second); tl.SetDown(false) }()
		if _, err := d.WriteAt(bytes.Repeat([]byte{1}, 1024), 0); err != nil {
			t.Fatalf("write across a 1 s outage: %v", err)
		}
	})
}

func TestAnnouncementAddsAPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: make([]byte, 1<<20)}
		serve(t, sw, mac(1), exportOf(2, 2, backend))
		in := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE))
		d, err := in.Open(context.Background(), 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(d.Paths()); n != 1 {
			t.Fatalf("%d paths, want 1", n)
		}
		// A second target for the same address starts: its start-up
		// Query Config broadcast gives the open device a second path.
		serve(t, sw, mac(2), exportOf(2, 2, backend))
		synctest.Wait()
		paths := d.Paths()
		if len(paths) != 2 || paths[1].MAC != mac(2) {
			t.Fatalf("paths after the announcement: %+v", paths)
		}
		writeReadVerify(t, d, 1<<20, 8)
	})
}
