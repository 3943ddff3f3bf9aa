package initiator

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// running is a target that a test may stop and start again on its link.
type running struct {
	t      *testing.T
	link   proto.Link
	srv    *target.Server
	cancel context.CancelFunc
	done   chan error
}

func startTarget(t *testing.T, l proto.Link, exports ...target.ExportConfig) *running {
	t.Helper()
	srv, err := target.NewServer(l, target.DefaultConfig(), exports...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, link: l, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("Serve: %v", err)
	}
}

// epochExport is an export at epoch e whose raises are recorded, as a node
// persists them.
type epochStore struct {
	mu    sync.Mutex
	epoch uint64
}

func (s *epochStore) save(e uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = e
	return nil
}

func (s *epochStore) load() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

func epochExport(b target.Backend, st *epochStore) target.ExportConfig {
	c := exportOf(1, 1, b)
	c.Epoch = max(st.load(), 1)
	c.OnEpoch = st.save
	return c
}

func TestEpochFencesTheOlderWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: make([]byte, 1<<20)}
		st := &epochStore{}
		tg := startTarget(t, sw.Link(mac(1), proto.EtherTypeAoE), epochExport(backend, st))
		ctx := context.Background()

		a, err := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE)).Open(ctx, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Before registering, I/O is refused as unregistered.
		if _, err := a.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrEpochUnregistered) {
			t.Fatalf("read before SetEpoch: %v, want ErrEpochUnregistered", err)
		}
		if err := a.SetEpoch(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if tg.srv.Exports()[0].Epoch() != 2 || st.load() != 2 || a.Paths()[0].Epoch != 2 {
			t.Fatalf("after SetEpoch(2): target at %d, persisted %d, path %+v", tg.srv.Exports()[0].Epoch(), st.load(), a.Paths()[0])
		}
		writeReadVerify(t, a, 64<<10, 1)

		// A new owner takes the volume at epoch 3.
		b, err := newInitiator(t, sw.Link(mac(8), proto.EtherTypeAoE)).Open(ctx, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SetEpoch(ctx, 3); err != nil {
			t.Fatal(err)
		}
		before := bytes.Clone(backend.b)
		was := a.Paths()[0]
		_, err = a.WriteAt(bytes.Repeat([]byte{0xaa}, 8192), 0)
		if !errors.Is(err, ErrStaleEpoch) {
			t.Fatalf("write by the fenced owner: %v, want ErrStaleEpoch", err)
		}
		if _, err := a.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("read by the fenced owner: %v, want ErrStaleEpoch", err)
		}
		if !bytes.Equal(backend.b, before) {
			t.Error("the fenced owner's write reached the backend")
		}
		// One frame per request: 8 KiB is one request at MTU 9000 and
		// the read one more.
		if p := a.Paths()[0]; p.Retransmits != was.Retransmits || p.Sent-was.Sent != 2 {
			t.Errorf("refused requests were retried: %d frames sent, %d retransmitted; want 2 and 0", p.Sent-was.Sent, p.Retransmits-was.Retransmits)
		}
		// Registering at the old epoch again is refused too.
		if err := a.SetEpoch(ctx, 2); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("SetEpoch(2) with the target at 3: %v, want ErrStaleEpoch", err)
		}
		if got, err := a.TargetEpoch(ctx); err != nil || got != 3 {
			t.Errorf("TargetEpoch = %d, %v; want 3", got, err)
		}
		writeReadVerify(t, b, 64<<10, 2)
	})
}

func TestDeviceRegistersAgainWithARestartedTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: make([]byte, 1<<20)}
		st := &epochStore{}
		tl := sw.Link(mac(1), proto.EtherTypeAoE)
		tg := startTarget(t, tl, epochExport(backend, st))
		ctx := context.Background()
		d, err := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE)).Open(ctx, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.SetEpoch(ctx, 5); err != nil {
			t.Fatal(err)
		}
		writeReadVerify(t, d, 256<<10, 1)

		// The target process restarts: it keeps the persisted epoch and
		// forgets who registered.
		tg.stop()
		tg = startTarget(t, tl, epochExport(backend, st))
		if got := tg.srv.Exports()[0].Registered(); len(got) != 0 {
			t.Fatalf("a restarted target knows %v", got)
		}
		writeReadVerify(t, d, 256<<10, 2)
		if got := tg.srv.Exports()[0].Registered()[mac(9)]; got != 5 {
			t.Errorf("after the restart the device is registered at %d, want 5", got)
		}

		// Restarted at a newer epoch (another owner came and went): the
		// re-registration is stale and the I/O fails with ErrStaleEpoch.
		tg.stop()
		st.save(6)
		startTarget(t, tl, epochExport(backend, st))
		if _, err := d.ReadAt(make([]byte, 4096), 0); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("read after a restart at a newer epoch: %v, want ErrStaleEpoch", err)
		}
	})
}

// full is a backend out of space, as a thin pool without free chunks.
type full struct{ mem }

func (*full) WriteAt([]byte, int64) (int, error) { return 0, syscall.ENOSPC }

func TestNoSpaceMatchesENOSPCOnceRegistered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 1500})
		t.Cleanup(func() { sw.Close() })
		serve(t, sw, mac(1), exportOf(1, 1, &full{mem{b: make([]byte, 1<<20)}}))
		ctx := context.Background()
		d, err := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE)).Open(ctx, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.WriteAt(make([]byte, 4096), 0)
		if !errors.Is(err, ErrAborted) || errors.Is(err, syscall.ENOSPC) {
			t.Errorf("ENOSPC before registering: %v, want ErrAborted (as a standard initiator sees it)", err)
		}
		// A target without epochs accepts the registration.
		if err := d.SetEpoch(ctx, 1); err != nil {
			t.Fatal(err)
		}
		_, err = d.WriteAt(make([]byte, 4096), 0)
		if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrNoSpace) {
			t.Errorf("ENOSPC once registered: %v, want an error matching syscall.ENOSPC", err)
		}
		if _, err := d.ReadAt(make([]byte, 4096), 0); err != nil {
			t.Errorf("read from a full backend: %v", err)
		}
	})
}

func TestSetEpochOnEveryPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
		t.Cleanup(func() { sw.Close() })
		backend := &mem{b: make([]byte, 1<<20)}
		st1, st2 := &epochStore{}, &epochStore{}
		st2.save(7)
		startTarget(t, sw.Link(mac(1), proto.EtherTypeAoE), epochExport(backend, st1))
		t2 := startTarget(t, sw.Link(mac(2), proto.EtherTypeAoE), epochExport(backend, st2))
		d, err := newInitiator(t, sw.Link(mac(9), proto.EtherTypeAoE)).Open(context.Background(), 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Paths()) != 2 {
			t.Fatalf("%d paths, want 2", len(d.Paths()))
		}
		if err := d.SetEpoch(context.Background(), 4); !errors.Is(err, ErrStaleEpoch) {
			t.Errorf("SetEpoch(4) with one target at 7: %v, want ErrStaleEpoch", err)
		}
		if st1.load() != 4 || t2.srv.Exports()[0].Epoch() != 7 {
			t.Errorf("epochs after SetEpoch(4): %d and %d, want 4 and 7", st1.load(), t2.srv.Exports()[0].Epoch())
		}
		if err := d.SetEpoch(context.Background(), 8); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Paths() {
			if p.Epoch != 8 {
				t.Errorf("path %s at epoch %d, want 8", p.MAC, p.Epoch)
			}
		}
	})
}
