package volume_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/node/volume"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

const (
	volSize   = 4 << 20
	blockSize = 64 << 10
	shelf     = 1000
)

func mac(i byte) proto.MAC { return proto.MAC{2, 0, 0, 0, 0, i} }

// replicaTarget is one replica: a file served by an AoE target on its own
// port of the switch.
type replicaTarget struct {
	path   string
	link   *linktest.Link
	export *target.Export
}

// serveReplica serves a new zeroed file of volSize at shelf.slot on a port
// with MAC mac(10+slot), and stops it at cleanup.
func serveReplica(t *testing.T, sw *linktest.Switch, slot uint8) *replicaTarget {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replica")
	if err := os.WriteFile(path, make([]byte, volSize), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := target.OpenFile(path, target.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ec := target.DefaultExportConfig()
	ec.Shelf, ec.Slot, ec.Backend = shelf, slot, f
	l, export := serveExport(t, sw, ec, f)
	return &replicaTarget{path: path, link: l, export: export}
}

// serveExport serves ec on a new port of sw with MAC mac(10+ec.Slot); at
// cleanup it stops the server, then closes backend.
func serveExport(t *testing.T, sw *linktest.Switch, ec target.ExportConfig, backend io.Closer) (*linktest.Link, *target.Export) {
	t.Helper()
	l := sw.Link(mac(10+ec.Slot), proto.EtherTypeAoE)
	srv, err := target.NewServer(l, target.DefaultConfig(), ec)
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
		backend.Close()
	})
	return l, srv.Exports()[0]
}

// rig is a volume over two replicas on one switch.
type rig struct {
	reps   []*replicaTarget
	vol    *volume.Volume
	mu     sync.Mutex
	failed map[int][]error
}

func (r *rig) failures() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[int]int{}
	for i, errs := range r.failed {
		m[i] = len(errs)
	}
	return m
}

// newRig builds the rig, in a synctest bubble or on real time. local is the index of the
// replica on "this node", or -1.
func newRig(t *testing.T, local int) *rig {
	t.Helper()
	sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
	r := &rig{failed: map[int][]error{}}
	for slot := range uint8(2) {
		r.reps = append(r.reps, serveReplica(t, sw, slot))
	}
	icfg := initiator.DefaultConfig()
	icfg.Links = []proto.Link{sw.Link(mac(1), proto.EtherTypeAoE)}
	icfg.RequestTimeout = 2 * time.Second
	in, err := initiator.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	cfg := volume.DefaultConfig()
	cfg.Initiator = in
	cfg.Size = volSize
	cfg.BlockSize = blockSize
	cfg.IOTimeout = 5 * time.Second
	cfg.Epoch = 1
	for i := range r.reps {
		cfg.Replicas = append(cfg.Replicas, volume.Replica{Shelf: shelf, Slot: uint8(i), MAC: mac(10 + byte(i)), Local: i == local})
	}
	cfg.OnReplicaFailed = func(i int, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.failed[i] = append(r.failed[i], err)
	}
	r.vol, err = volume.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.vol.Close() })
	return r
}

func random(n int, rng *rand.Rand) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRandom writes n random extents (sector aligned, up to 3 blocks long)
// through the volume and into model.
func writeRandom(t *testing.T, v *volume.Volume, model []byte, n int, rng *rand.Rand) {
	t.Helper()
	for range n {
		off := rng.Int64N(volSize/512) * 512
		ln := min(volSize-off, (1+rng.Int64N(3*blockSize/512))*512)
		p := random(int(ln), rng)
		if k, err := v.WriteAt(p, off); err != nil || k != len(p) {
			t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, k, err)
		}
		copy(model[off:], p)
	}
}

// verify reads the whole volume in pieces and compares it with model.
func verify(t *testing.T, v *volume.Volume, model []byte) {
	t.Helper()
	const piece = 256 << 10
	buf := make([]byte, piece)
	for off := int64(0); off < volSize; off += piece {
		if n, err := v.ReadAt(buf, off); err != nil || n != piece {
			t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
		}
		if !bytes.Equal(buf, model[off:off+piece]) {
			t.Fatalf("data at %d differs from what was written", off)
		}
	}
}

func TestWritesReachEveryReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, -1)
		rng := rand.New(rand.NewPCG(1, 2))
		model := make([]byte, volSize)
		writeRandom(t, r.vol, model, 100, rng)
		if err := r.vol.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		verify(t, r.vol, model)
		for i, rep := range r.reps {
			if !bytes.Equal(readFile(t, rep.path), model) {
				t.Errorf("replica %d's file differs from what was written", i)
			}
		}
		if got := r.vol.InSync(); len(got) != 2 {
			t.Errorf("InSync() = %v, want both", got)
		}
		if d := r.vol.Dirty(); len(d) != 0 {
			t.Errorf("Dirty() = %v with every replica in sync, want none", d)
		}
		if f := r.failures(); len(f) != 0 {
			t.Errorf("OnReplicaFailed called: %v", f)
		}
		// Without a local replica reads are spread over both.
		for i, rep := range r.reps {
			if rep.export.Stats().Reads == 0 {
				t.Errorf("replica %d served no read; reads should be spread", i)
			}
		}
	})
}

func TestReadsPreferTheLocalReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1)
		rng := rand.New(rand.NewPCG(3, 4))
		model := make([]byte, volSize)
		writeRandom(t, r.vol, model, 20, rng)
		before := []uint64{r.reps[0].export.Stats().Reads, r.reps[1].export.Stats().Reads}
		verify(t, r.vol, model)
		if got := r.reps[0].export.Stats().Reads - before[0]; got != 0 {
			t.Errorf("remote replica served %d reads, want 0", got)
		}
		if got := r.reps[1].export.Stats().Reads - before[1]; got == 0 {
			t.Errorf("local replica served no read")
		}
		// Once the local replica is gone, reads go to the other one.
		r.reps[1].link.SetDown(true)
		writeRandom(t, r.vol, model, 5, rng)
		if got := r.vol.InSync(); len(got) != 1 || got[0] != 0 {
			t.Fatalf("InSync() = %v after the local replica's link went down, want [0]", got)
		}
		verify(t, r.vol, model)
	})
}

func TestFailedReplicaLeavesAndDirtyListsWhatItMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, -1)
		rng := rand.New(rand.NewPCG(5, 6))
		model := make([]byte, volSize)
		// First half of the blocks written with both replicas in sync.
		perm := rng.Perm(volSize / blockSize)
		writeBlock := func(b int) {
			p := random(blockSize, rng)
			off := int64(b) * blockSize
			if n, err := r.vol.WriteAt(p, off); err != nil || n != len(p) {
				t.Fatalf("WriteAt(block %d) = %d, %v", b, n, err)
			}
			copy(model[off:], p)
		}
		half := len(perm) / 2
		for _, b := range perm[:half] {
			writeBlock(b)
		}
		start := time.Now()
		r.reps[1].link.SetDown(true)
		for _, b := range perm[half:] {
			writeBlock(b)
		}
		if err := r.vol.Flush(); err != nil {
			t.Fatalf("Flush with one replica left: %v", err)
		}
		if f := r.failures(); len(f) != 1 || f[1] != 1 {
			t.Errorf("OnReplicaFailed calls per replica = %v, want exactly one for replica 1", f)
		}
		if got := r.vol.InSync(); len(got) != 1 || got[0] != 0 {
			t.Errorf("InSync() = %v, want [0]", got)
		}
		verify(t, r.vol, model)

		dirty := map[int64]bool{}
		for _, d := range r.vol.Dirty() {
			if d.Len != blockSize || d.Off%blockSize != 0 {
				t.Errorf("dirty block %+v is not one aligned block", d)
			}
			if d.Updated.Before(start) {
				t.Errorf("dirty block at %d updated %v, before the failure at %v", d.Off, d.Updated, start)
			}
			dirty[d.Off] = true
		}
		if len(dirty) != len(perm)-half {
			t.Errorf("%d dirty blocks, want the %d written after the failure", len(dirty), len(perm)-half)
		}
		good, stale := readFile(t, r.reps[0].path), readFile(t, r.reps[1].path)
		if !bytes.Equal(good, model) {
			t.Errorf("in-sync replica's file differs from what was written")
		}
		differ := 0
		for off := int64(0); off < volSize; off += blockSize {
			same := bytes.Equal(good[off:off+blockSize], stale[off:off+blockSize])
			if !same {
				differ++
			}
			if !same && !dirty[off] {
				t.Errorf("block at %d differs between the replicas but is not in Dirty()", off)
			}
		}
		// The write that saw the failure may have reached the stale
		// replica in part or whole; every later one did not.
		if differ < len(dirty)-1 {
			t.Errorf("%d blocks differ, want at least %d of the %d dirty ones", differ, len(dirty)-1, len(dirty))
		}

		// The last replica gone: a typed error.
		r.reps[0].link.SetDown(true)
		if _, err := r.vol.WriteAt(make([]byte, 512), 0); !errors.Is(err, volume.ErrNoReplica) {
			t.Errorf("WriteAt with every replica down = %v, want ErrNoReplica", err)
		}
		if _, err := r.vol.ReadAt(make([]byte, 512), 0); !errors.Is(err, volume.ErrNoReplica) {
			t.Errorf("ReadAt with every replica out = %v, want ErrNoReplica", err)
		}
		if err := r.vol.Flush(); !errors.Is(err, volume.ErrNoReplica) {
			t.Errorf("Flush with every replica out = %v, want ErrNoReplica", err)
		}
		if f := r.failures(); f[0] != 1 || f[1] != 1 {
			t.Errorf("OnReplicaFailed calls per replica = %v, want one each", f)
		}
	})
}
