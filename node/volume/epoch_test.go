package volume_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/node/volume"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// fakeController keeps one volume's epoch and in-sync set the way the
// controller's raft state does: SetInSync is a compare-and-set on the
// epoch, and a change of the set raises the epoch by one.
type fakeController struct {
	mu     sync.Mutex
	spec   nodeclient.VolumeSpec
	calls  []nodeclient.SetInSyncRequest
	reads  int
	down   bool          // every call fails as if the controller were unreachable
	hold   chan struct{} // when set, SetInSync waits for it to close
	called chan struct{} // receives once per SetInSync call, when not nil
}

var errUnreachable = errors.New("controller unreachable (test)")

func newFakeController(id string, epoch uint64, nodes ...string) *fakeController {
	c := &fakeController{spec: nodeclient.VolumeSpec{ID: id, Epoch: epoch}}
	for _, n := range nodes {
		c.spec.Replicas = append(c.spec.Replicas, nodeclient.SpecReplica{Node: n, InSync: true})
	}
	return c
}

func (c *fakeController) SetInSync(ctx context.Context, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error) {
	c.mu.Lock()
	c.calls = append(c.calls, req)
	hold, called := c.hold, c.called
	c.mu.Unlock()
	if called != nil {
		called <- struct{}{}
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nodeclient.VolumeSpec{}, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nodeclient.VolumeSpec{}, errUnreachable
	}
	if req.Epoch != c.spec.Epoch {
		return nodeclient.VolumeSpec{}, fmt.Errorf("epoch %d, volume at %d: %w", req.Epoch, c.spec.Epoch, nodeclient.ErrStaleEpoch)
	}
	changed := false
	for i, r := range c.spec.Replicas {
		in := slices.Contains(req.InSync, r.Node)
		changed = changed || in != r.InSync
		c.spec.Replicas[i].InSync = in
	}
	if changed {
		c.spec.Epoch++
	}
	return c.cloneLocked(), nil
}

func (c *fakeController) Volume(ctx context.Context, id string) (nodeclient.VolumeSpec, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if c.down {
		return nodeclient.VolumeSpec{}, errUnreachable
	}
	return c.cloneLocked(), nil
}

func (c *fakeController) cloneLocked() nodeclient.VolumeSpec {
	s := c.spec
	s.Replicas = slices.Clone(s.Replicas)
	return s
}

func (c *fakeController) state() (uint64, []string, []nodeclient.SetInSyncRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var in []string
	for _, r := range c.spec.Replicas {
		if r.InSync {
			in = append(in, r.Node)
		}
	}
	return c.spec.Epoch, in, slices.Clone(c.calls)
}

// set changes the volume behind the client's back (a fence, another actor).
func (c *fakeController) set(epoch uint64, inSync ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spec.Epoch = epoch
	for i, r := range c.spec.Replicas {
		c.spec.Replicas[i].InSync = slices.Contains(inSync, r.Node)
	}
}

// backend is a file backend whose writes can be made to fail with ENOSPC.
type backend struct {
	*target.File
	full atomic.Bool
}

func (b *backend) WriteAt(p []byte, off int64) (int, error) {
	if b.full.Load() {
		return 0, fmt.Errorf("test pool full: %w", syscall.ENOSPC)
	}
	return b.File.WriteAt(p, off)
}

// epochReplica is a replica served with an epoch on its own switch port.
type epochReplica struct {
	node    string
	path    string
	link    *linktest.Link
	export  *target.Export
	backend *backend
}

// epochRig is a volume over two replicas with epochs, a fake controller
// and an initiator on the switch. Build it inside a synctest bubble.
type epochRig struct {
	reps []*epochReplica
	ctl  *fakeController
	in   *initiator.Initiator
	vol  *volume.Volume
	cfg  volume.Config
}

const volID = "7"

func serveEpochReplica(t *testing.T, sw *linktest.Switch, slot uint8, epoch uint64, fill byte) *epochReplica {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replica")
	if err := os.WriteFile(path, bytes.Repeat([]byte{fill}, volSize), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := target.OpenFile(path, target.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{File: f}
	ec := target.DefaultExportConfig()
	ec.Shelf, ec.Slot, ec.Backend, ec.Epoch = shelf, slot, b, epoch
	l, export := serveExport(t, sw, ec, f)
	return &epochReplica{node: fmt.Sprintf("n%d", slot), path: path, link: l, export: export, backend: b}
}

// newEpochRig serves two replicas at epoch 1; stale lists replicas that
// start out of the set (filled with 0xee instead of zeros).
func newEpochRig(t *testing.T, stale ...int) *epochRig {
	t.Helper()
	sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
	r := &epochRig{}
	var inSync []string
	for slot := range uint8(2) {
		fill := byte(0)
		if slices.Contains(stale, int(slot)) {
			fill = 0xee
		}
		rep := serveEpochReplica(t, sw, slot, 1, fill)
		r.reps = append(r.reps, rep)
		if fill == 0 {
			inSync = append(inSync, rep.node)
		}
	}
	r.ctl = newFakeController(volID, 1, "n0", "n1")
	r.ctl.set(1, inSync...)
	icfg := initiator.DefaultConfig()
	icfg.Links = []proto.Link{sw.Link(mac(1), proto.EtherTypeAoE)}
	icfg.RequestTimeout = 2 * time.Second
	var err error
	if r.in, err = initiator.New(icfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.in.Close() })
	cfg := volume.DefaultConfig()
	cfg.ID = volID
	cfg.Initiator = r.in
	cfg.Controller = r.ctl
	cfg.Size = volSize
	cfg.BlockSize = blockSize
	cfg.IOTimeout = 5 * time.Second
	cfg.Epoch = 1
	for i, rep := range r.reps {
		cfg.Replicas = append(cfg.Replicas, volume.Replica{Node: rep.node, Shelf: shelf, Slot: uint8(i), MAC: mac(10 + byte(i)),
			Stale: slices.Contains(stale, i)})
	}
	r.cfg = cfg
	if r.vol, err = volume.Open(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.vol.Close() })
	return r
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	return sha256.Sum256(readFile(t, path))
}

func writeBlocks(t *testing.T, v *volume.Volume, model []byte, blocks []int, rng *rand.Rand) {
	t.Helper()
	for _, b := range blocks {
		p := random(blockSize, rng)
		off := int64(b) * blockSize
		if n, err := v.WriteAt(p, off); err != nil || n != len(p) {
			t.Fatalf("WriteAt(block %d) = %d, %v", b, n, err)
		}
		copy(model[off:], p)
	}
}

// The volume registers its epoch at Open: each export knows the client.
func TestOpenRegistersTheEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		for i, rep := range r.reps {
			if got := rep.export.Registered()[mac(1)]; got != 1 {
				t.Errorf("replica %d: the client is registered at %d, want 1", i, got)
			}
		}
		if _, err := r.vol.WriteAt(make([]byte, 4096), 0); err != nil {
			t.Fatalf("WriteAt at the registered epoch: %v", err)
		}
	})
}

// A replica that fails a write is dropped through the controller at the
// epoch the client saw before the write returns; the new epoch is then
// registered on the replica that stays.
func TestFailedReplicaIsDroppedThroughTheControllerBeforeTheAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		hold, called := make(chan struct{}), make(chan struct{}, 1)
		r.ctl.mu.Lock()
		r.ctl.hold, r.ctl.called = hold, called
		r.ctl.mu.Unlock()
		r.reps[1].link.SetDown(true)
		done := make(chan error, 1)
		go func() {
			_, err := r.vol.WriteAt(bytes.Repeat([]byte{1}, 8192), 65536)
			done <- err
		}()
		<-called
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the write returned (%v) before the controller answered", err)
		default:
		}
		_, _, calls := r.ctl.state()
		want := []nodeclient.SetInSyncRequest{{Volume: volID, Epoch: 1, InSync: []string{"n0"}}}
		if !slices.EqualFunc(calls, want, func(a, b nodeclient.SetInSyncRequest) bool {
			return a.Volume == b.Volume && a.Epoch == b.Epoch && slices.Equal(a.InSync, b.InSync)
		}) {
			t.Fatalf("SetInSync calls %+v, want %+v", calls, want)
		}
		close(hold)
		if err := <-done; err != nil {
			t.Fatalf("WriteAt with one replica down: %v", err)
		}
		epoch, in, _ := r.ctl.state()
		if epoch != 2 || !slices.Equal(in, []string{"n0"}) {
			t.Errorf("controller at epoch %d with %v in sync, want 2 and [n0]", epoch, in)
		}
		if got := r.vol.Epoch(); got != 2 {
			t.Errorf("volume epoch %d, want 2", got)
		}
		if got := r.reps[0].export.Epoch(); got != 2 {
			t.Errorf("the remaining replica's export is at epoch %d, want 2 (registered before the ack)", got)
		}
		// Later writes go to n0 only, and need no controller.
		if _, err := r.vol.WriteAt(make([]byte, 4096), 0); err != nil {
			t.Fatal(err)
		}
		if _, _, calls := r.ctl.state(); len(calls) != 1 {
			t.Errorf("%d SetInSync calls after a second write, want still 1", len(calls))
		}
		st := r.vol.Status()
		if !slices.Equal(st.InSync, []string{"n0"}) || !slices.Equal(st.Stale, []string{"n1"}) || st.Dirty != 2 {
			t.Errorf("status %+v, want n0 in sync, n1 stale, 2 dirty blocks", st)
		}
	})
}

// When the controller cannot be reached the write fails (EIO) after
// IOTimeout, and keeps failing until the controller agrees.
func TestWriteFailsWhenTheControllerIsUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		r.ctl.mu.Lock()
		r.ctl.down = true
		r.ctl.mu.Unlock()
		r.reps[1].link.SetDown(true)
		start := time.Now()
		_, err := r.vol.WriteAt(make([]byte, 4096), 0)
		if !errors.Is(err, volume.ErrController) {
			t.Fatalf("WriteAt with the controller down = %v, want ErrController", err)
		}
		if took := time.Since(start); took < r.cfg.IOTimeout {
			t.Errorf("the write failed after %v, before IOTimeout %v", took, r.cfg.IOTimeout)
		}
		if _, err := r.vol.WriteAt(make([]byte, 4096), 0); !errors.Is(err, volume.ErrController) {
			t.Errorf("second WriteAt = %v, want ErrController again", err)
		}
		r.ctl.mu.Lock()
		r.ctl.down = false
		r.ctl.mu.Unlock()
		if _, err := r.vol.WriteAt(make([]byte, 4096), 0); err != nil {
			t.Errorf("WriteAt once the controller is back = %v", err)
		}
		if epoch, in, _ := r.ctl.state(); epoch != 2 || !slices.Equal(in, []string{"n0"}) {
			t.Errorf("controller at %d %v, want 2 [n0]", epoch, in)
		}
	})
}

// ErrStaleEpoch from the controller: the client re-reads the volume. The
// set it asked for (an answer lost on the way) is taken; an epoch that
// moved with the failed replica still listed is a fence.
func TestStaleEpochRereadsAndDecides(t *testing.T) {
	t.Run("already done", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEpochRig(t)
			r.ctl.set(2, "n0") // the change went through, its answer was lost
			r.reps[1].link.SetDown(true)
			if _, err := r.vol.WriteAt(make([]byte, 4096), 0); err != nil {
				t.Fatalf("WriteAt = %v", err)
			}
			if got := r.vol.Epoch(); got != 2 {
				t.Errorf("epoch %d, want 2", got)
			}
			if epoch, _, calls := r.ctl.state(); epoch != 2 || len(calls) != 1 || r.ctl.reads != 1 {
				t.Errorf("controller epoch %d, %d SetInSync calls, %d reads; want 2, 1, 1", epoch, len(calls), r.ctl.reads)
			}
		})
	})
	t.Run("epoch moved by someone else", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newEpochRig(t)
			r.ctl.set(2, "n0", "n1") // a fence: epoch up, nobody dropped
			r.reps[1].link.SetDown(true)
			if _, err := r.vol.WriteAt(make([]byte, 4096), 0); !errors.Is(err, volume.ErrFenced) {
				t.Fatalf("WriteAt = %v, want ErrFenced", err)
			}
			if _, err := r.vol.ReadAt(make([]byte, 4096), 0); !errors.Is(err, volume.ErrFenced) {
				t.Errorf("ReadAt after the fence = %v, want ErrFenced", err)
			}
		})
	})
}

// A replica that holds a newer epoch than the client's refuses its I/O:
// the write fails with ErrFenced, no replica is dropped and the controller
// is not asked; nothing reaches the disk.
func TestFencedWriterIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		for _, rep := range r.reps {
			if _, err := rep.export.RaiseEpoch(5); err != nil {
				t.Fatal(err)
			}
		}
		before := []([32]byte){hashFile(t, r.reps[0].path), hashFile(t, r.reps[1].path)}
		_, err := r.vol.WriteAt(bytes.Repeat([]byte{9}, 4096), 0)
		if !errors.Is(err, volume.ErrFenced) || !errors.Is(err, initiator.ErrStaleEpoch) {
			t.Fatalf("WriteAt after the fence = %v, want ErrFenced and initiator.ErrStaleEpoch", err)
		}
		if err := r.vol.Flush(); !errors.Is(err, volume.ErrFenced) {
			t.Errorf("Flush after the fence = %v, want ErrFenced", err)
		}
		if _, _, calls := r.ctl.state(); len(calls) != 0 {
			t.Errorf("a fenced client asked the controller %+v", calls)
		}
		if got := r.vol.InSync(); len(got) != 2 {
			t.Errorf("InSync %v: a fence must drop no replica", got)
		}
		for i, rep := range r.reps {
			if hashFile(t, rep.path) != before[i] {
				t.Errorf("replica %d changed after the fence", i)
			}
		}
	})
}

// ENOSPC from a replica is the writer's error: it passes through, the
// replica stays in sync, and no replica keeps the failed write.
func TestNoSpacePassesThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		before := bytes.Repeat([]byte{0xaa}, 8192)
		if _, err := r.vol.WriteAt(before, 0); err != nil {
			t.Fatal(err)
		}
		r.reps[1].backend.full.Store(true)
		_, err := r.vol.WriteAt(bytes.Repeat([]byte{0xbb}, 8192), 0)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("WriteAt on a full replica = %v, want ENOSPC", err)
		}
		// The replica with room took the write, the full one did not:
		// the old data is put back so the replicas do not differ.
		for i, rep := range r.reps {
			if got := readFile(t, rep.path)[:8192]; !bytes.Equal(got, before) {
				t.Errorf("replica %d after the failed write holds %x…, want the old data", i, got[:4])
			}
		}
		if got := r.vol.InSync(); len(got) != 2 {
			t.Errorf("InSync %v after ENOSPC, want both", got)
		}
		if _, _, calls := r.ctl.state(); len(calls) != 0 {
			t.Errorf("ENOSPC asked the controller %+v", calls)
		}
		r.reps[1].backend.full.Store(false)
		if _, err := r.vol.WriteAt(make([]byte, 4096), 0); err != nil {
			t.Errorf("WriteAt once there is room: %v", err)
		}
	})
}

// A resync copies exactly the blocks written while the replica was out,
// puts it back through the controller, and the replicas then hash the same.
func TestResyncCopiesTheDirtyBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		rng := rand.New(rand.NewPCG(7, 8))
		model := make([]byte, volSize)
		perm := rng.Perm(volSize / blockSize)
		writeBlocks(t, r.vol, model, perm[:20], rng)
		r.reps[1].link.SetDown(true)
		writeBlocks(t, r.vol, model, perm[20:31], rng)
		// One block written twice, and one write across two blocks.
		writeBlocks(t, r.vol, model, perm[20:21], rng)
		if _, err := r.vol.WriteAt(bytes.Repeat([]byte{3}, 1024), 3*blockSize-512); err != nil {
			t.Fatal(err)
		}
		copy(model[3*blockSize-512:], bytes.Repeat([]byte{3}, 1024))
		dirty := len(r.vol.Dirty())
		r.reps[1].link.SetDown(false)

		rep, err := r.vol.Resync(t.Context(), "n1")
		if err != nil {
			t.Fatalf("Resync: %v", err)
		}
		if rep.Full || rep.Dirty != dirty || rep.Blocks != dirty || rep.Bytes != int64(dirty)*blockSize {
			t.Errorf("report %+v, want not full, %d dirty blocks all copied", rep, dirty)
		}
		if hashFile(t, r.reps[0].path) != hashFile(t, r.reps[1].path) || !bytes.Equal(readFile(t, r.reps[0].path), model) {
			t.Errorf("the replicas differ after the resync")
		}
		epoch, in, _ := r.ctl.state()
		if epoch != 3 || !slices.Equal(in, []string{"n0", "n1"}) || rep.Epoch != 3 {
			t.Errorf("controller at %d with %v, report epoch %d; want 3, both, 3", epoch, in, rep.Epoch)
		}
		for i, x := range r.reps {
			if x.export.Epoch() != 3 {
				t.Errorf("replica %d's export at epoch %d, want 3", i, x.export.Epoch())
			}
		}
		if d := r.vol.Dirty(); len(d) != 0 {
			t.Errorf("%d dirty blocks after the resync, want the bitmap cleared", len(d))
		}
		// Both take writes again.
		writeBlocks(t, r.vol, model, perm[:3], rng)
		if hashFile(t, r.reps[0].path) != hashFile(t, r.reps[1].path) {
			t.Errorf("the replicas differ after writes that follow the resync")
		}
	})
}

// A replica that left before the client opened the volume has no bitmap:
// every block is compared and copied; blocks zero on both sides are not.
func TestFullResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t, 1) // replica 1 starts stale, full of 0xee
		rng := rand.New(rand.NewPCG(9, 10))
		model := make([]byte, volSize)
		writeBlocks(t, r.vol, model, []int{0, 5, 6}, rng)
		rep, err := r.vol.Resync(t.Context(), "n1")
		if err != nil {
			t.Fatalf("Resync: %v", err)
		}
		n := volSize / blockSize
		if !rep.Full || rep.Blocks != n || rep.Skipped != 0 {
			t.Errorf("report %+v, want full, every one of %d blocks copied (the stale one held 0xee everywhere)", rep, n)
		}
		if !bytes.Equal(readFile(t, r.reps[1].path), model) {
			t.Errorf("the stale replica differs from the volume after a full resync")
		}
		// A second resync after the replica drops again: blocks zero on
		// both sides are skipped.
		r.reps[1].link.SetDown(true)
		writeBlocks(t, r.vol, model, []int{7}, rng)
		r.reps[1].link.SetDown(false)
		r.vol.Close()
		cfg := r.cfg
		cfg.Epoch, _, _ = r.ctl.state()
		cfg.Replicas[1].Stale = true
		v, err := volume.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		rep, err = v.Resync(t.Context(), "n1")
		if err != nil {
			t.Fatalf("second Resync: %v", err)
		}
		if !rep.Full || rep.Blocks != 4 || rep.Skipped != n-4 {
			t.Errorf("report %+v, want full with 4 blocks copied and %d skipped", rep, n-4)
		}
		if hashFile(t, r.reps[0].path) != hashFile(t, r.reps[1].path) {
			t.Errorf("the replicas differ after the second full resync")
		}
	})
}

// Writes that run while a resync copies reach the replica too: afterwards
// both replicas hold the same data.
func TestResyncWithConcurrentWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t, 1)
		rng := rand.New(rand.NewPCG(11, 12))
		model := make([]byte, volSize)
		writeBlocks(t, r.vol, model, rng.Perm(volSize / blockSize)[:30], rng)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			wrng := rand.New(rand.NewPCG(13, 14))
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := wrng.Int64N(volSize/512-8) * 512
				if _, err := r.vol.WriteAt(random(4096, wrng), off); err != nil {
					t.Errorf("WriteAt during the resync: %v", err)
					return
				}
				time.Sleep(time.Millisecond) // lets the bubble's clock move

			}
		})
		rep, err := r.vol.Resync(t.Context(), "n1")
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("Resync: %v", err)
		}
		if !rep.Full {
			t.Errorf("report %+v, want full", rep)
		}
		if hashFile(t, r.reps[0].path) != hashFile(t, r.reps[1].path) {
			t.Errorf("the replicas differ after a resync with concurrent writes")
		}
	})
}

// At Open, a replica whose target does not answer yet (its node is just
// setting up the export) is waited for up to IOTimeout; one that never
// answers is dropped through the controller, and the volume opens with
// the rest.
func TestOpenWaitsForAReplicaThenDropsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t)
		r.vol.Close()
		r.reps[1].link.SetDown(true)
		go func() {
			time.Sleep(2 * time.Second)
			r.reps[1].link.SetDown(false)
		}()
		v, err := volume.Open(t.Context(), r.cfg)
		if err != nil {
			t.Fatalf("Open with a replica late to answer: %v", err)
		}
		if got := v.InSync(); len(got) != 2 {
			t.Errorf("InSync %v, want both: the late replica was waited for", got)
		}
		v.Close()
		if _, _, calls := r.ctl.state(); len(calls) != 0 {
			t.Errorf("controller asked %+v, want nothing", calls)
		}

		r.reps[1].link.SetDown(true)
		start := time.Now()
		v, err = volume.Open(t.Context(), r.cfg)
		if err != nil {
			t.Fatalf("Open with a replica that never answers: %v", err)
		}
		defer v.Close()
		if took := time.Since(start); took < r.cfg.IOTimeout {
			t.Errorf("the replica was given up after %v, before IOTimeout %v", took, r.cfg.IOTimeout)
		}
		if got := v.InSync(); len(got) != 1 || got[0] != 0 {
			t.Errorf("InSync %v, want [0]", got)
		}
		if epoch, in, _ := r.ctl.state(); epoch != 2 || !slices.Equal(in, []string{"n0"}) || v.Epoch() != 2 {
			t.Errorf("controller at %d with %v, volume at %d; want 2, [n0], 2", epoch, in, v.Epoch())
		}
	})
}

// The controller does not answer when the resynced replica asks to rejoin:
// the resync fails with ErrController, but the replica, which holds every
// write, keeps taking writes; a later Resync asks the controller again.
func TestRejoinUnconfirmedIsAskedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t, 1)
		rng := rand.New(rand.NewPCG(15, 16))
		model := make([]byte, volSize)
		writeBlocks(t, r.vol, model, []int{1, 2}, rng)
		r.ctl.mu.Lock()
		r.ctl.down = true
		r.ctl.mu.Unlock()
		if _, err := r.vol.Resync(t.Context(), "n1"); !errors.Is(err, volume.ErrController) {
			t.Fatalf("Resync with the controller down = %v, want ErrController", err)
		}
		writeBlocks(t, r.vol, model, []int{3}, rng)
		if !bytes.Equal(readFile(t, r.reps[1].path), model) {
			t.Errorf("the replica whose rejoin is unconfirmed missed a write")
		}
		r.ctl.mu.Lock()
		r.ctl.down = false
		r.ctl.mu.Unlock()
		rep, err := r.vol.Resync(t.Context(), "n1")
		if err != nil {
			t.Fatalf("Resync once the controller is back: %v", err)
		}
		if epoch, in, _ := r.ctl.state(); epoch != 2 || !slices.Equal(in, []string{"n0", "n1"}) || rep.Epoch != 2 {
			t.Errorf("controller at %d with %v (report %+v), want 2 and both", epoch, in, rep)
		}
		for i, x := range r.reps {
			if x.export.Epoch() != 2 {
				t.Errorf("replica %d at epoch %d, want 2", i, x.export.Epoch())
			}
		}
	})
}

// A write the replica fails while it catches up ends the resync with an
// error; the write itself succeeds on the in-sync replica and the replica
// stays out of the set.
func TestResyncEndsWhenTheReplicaFailsAWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEpochRig(t, 1)
		r.reps[1].backend.full.Store(true) // every write to it fails
		done := make(chan error, 1)
		go func() {
			_, err := r.vol.Resync(t.Context(), "n1")
			done <- err
		}()
		// The copy fails on its first block, or a write does: either ends it.
		if _, err := r.vol.WriteAt(make([]byte, 4096), 0); err != nil {
			t.Errorf("WriteAt during a failing resync: %v", err)
		}
		if err := <-done; err == nil {
			t.Fatal("Resync onto a replica that fails every write succeeded")
		}
		if got := r.vol.InSync(); len(got) != 1 || got[0] != 0 {
			t.Errorf("InSync %v, want [0]", got)
		}
		if epoch, in, _ := r.ctl.state(); epoch != 1 || !slices.Equal(in, []string{"n0"}) {
			t.Errorf("controller at %d with %v, want unchanged 1 [n0]", epoch, in)
		}
	})
}
