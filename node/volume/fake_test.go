package volume_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvstack/mvstack/node/volume"
	"github.com/mvstack/mvstack/proto"
)

var errInjected = errors.New("injected failure")

// memDevice is a replica in memory whose reads or writes can be made to fail.
type memDevice struct {
	mu                    sync.Mutex
	b                     []byte
	failReads, failWrites atomic.Bool
	reads                 atomic.Int64
}

func newMem(n int) *memDevice { return &memDevice{b: make([]byte, n)} }

func (m *memDevice) ReadAtContext(_ context.Context, p []byte, off int64) (int, error) {
	m.reads.Add(1)
	if m.failReads.Load() {
		return 0, errInjected
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(p, m.b[off:]), nil
}

func (m *memDevice) WriteAtContext(_ context.Context, p []byte, off int64) (int, error) {
	if m.failWrites.Load() {
		return 0, errInjected
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.b[off:], p), nil
}

func (m *memDevice) FlushContext(context.Context) error { return nil }
func (m *memDevice) Size() int64                        { return int64(len(m.b)) }

func (m *memDevice) bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.b)
}

func memConfig(devs ...*memDevice) volume.Config {
	cfg := volume.DefaultConfig()
	cfg.Size = int64(len(devs[0].b))
	cfg.BlockSize = 4096
	for _, d := range devs {
		cfg.Replicas = append(cfg.Replicas, volume.Replica{Device: d})
	}
	return cfg
}

func TestValidateNamesTheField(t *testing.T) {
	ok := func() volume.Config {
		c := volume.DefaultConfig()
		c.Links = []proto.Link{nil}
		c.Size = 1 << 20
		c.Replicas = []volume.Replica{{Shelf: 1000, Slot: 0}, {Shelf: 1000, Slot: 1}}
		return c
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		desc, field string
		edit        func(*volume.Config)
	}{
		{"no initiator", "Initiator", func(c *volume.Config) { c.Links = nil }},
		{"no replicas", "Replicas", func(c *volume.Config) { c.Replicas = nil }},
		{"size zero", "Size", func(c *volume.Config) { c.Size = 0 }},
		{"size not sectors", "Size", func(c *volume.Config) { c.Size = 1000 }},
		{"block not a power of two", "BlockSize", func(c *volume.Config) { c.BlockSize = 3000 }},
		{"block below a sector", "BlockSize", func(c *volume.Config) { c.BlockSize = 256 }},
		{"no timeout", "IOTimeout", func(c *volume.Config) { c.IOTimeout = 0 }},
		{"same address twice", "Replicas[1]", func(c *volume.Config) { c.Replicas[1].Slot = 0 }},
		{"broadcast address", "Replicas[0]", func(c *volume.Config) { c.Replicas[0].Slot = 0xff }},
		{"two local", "Local", func(c *volume.Config) { c.Replicas[0].Local, c.Replicas[1].Local = true, true }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := ok()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.field)
			}
			if _, oerr := volume.Open(t.Context(), c); oerr == nil {
				t.Errorf("Open accepted the config")
			}
		})
	}
}

func TestReadFallsBackOnReadError(t *testing.T) {
	a, b := newMem(1<<20), newMem(1<<20)
	cfg := memConfig(a, b)
	cfg.Replicas[0].Local = true
	var calls atomic.Int32
	cfg.OnReplicaFailed = func(int, error) { calls.Add(1) }
	v, err := volume.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	want := bytes.Repeat([]byte("mvstack!"), 512)
	if _, err := v.WriteAt(want, 8192); err != nil {
		t.Fatal(err)
	}
	a.failReads.Store(true)
	got := make([]byte, len(want))
	if _, err := v.ReadAt(got, 8192); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt with the local replica failing reads = %v, data equal %v", err, bytes.Equal(got, want))
	}
	if a.reads.Load() == 0 || b.reads.Load() == 0 {
		t.Errorf("reads: local %d, other %d; want the local tried first, then the other", a.reads.Load(), b.reads.Load())
	}
	if s := v.InSync(); len(s) != 2 || calls.Load() != 0 {
		t.Errorf("a read error changed the in-sync set to %v (%d callbacks); it must not", s, calls.Load())
	}
	b.failReads.Store(true)
	if _, err := v.ReadAt(got, 8192); err == nil || errors.Is(err, volume.ErrNoReplica) {
		t.Errorf("ReadAt with every replica failing reads = %v, want the read error", err)
	}
}

func TestReadPastTheEnd(t *testing.T) {
	v, err := volume.Open(t.Context(), memConfig(newMem(1<<20), newMem(1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p := make([]byte, 1024)
	if n, err := v.ReadAt(p, 1<<20-512); n != 512 || err == nil {
		t.Errorf("ReadAt across the end = %d, %v; want 512, io.EOF", n, err)
	}
	if _, err := v.WriteAt(p, 1<<20-512); !errors.Is(err, volume.ErrOutOfRange) {
		t.Errorf("WriteAt across the end = %v, want ErrOutOfRange", err)
	}
	v.Close()
	if _, err := v.WriteAt(p, 0); !errors.Is(err, volume.ErrClosed) {
		t.Errorf("WriteAt after Close = %v, want ErrClosed", err)
	}
}

// Concurrent writers while a replica starts failing: every write succeeds,
// the callback fires once, and the replicas differ only in dirty blocks.
func TestConcurrentWritesAcrossAFailure(t *testing.T) {
	const size = 1 << 20
	a, b := newMem(size), newMem(size)
	cfg := memConfig(a, b)
	var calls atomic.Int32
	cfg.OnReplicaFailed = func(i int, err error) {
		if i != 1 || !errors.Is(err, errInjected) {
			t.Errorf("OnReplicaFailed(%d, %v), want replica 1 and the injected error", i, err)
		}
		calls.Add(1)
	}
	v, err := volume.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte(w + 1)}, 1536)
			for k := range 200 {
				if w == 0 && k == 100 {
					b.failWrites.Store(true)
				}
				off := int64((k*8+w)*1536) % (size - 1536)
				if _, err := v.WriteAt(p, off); err != nil {
					t.Errorf("WriteAt: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("OnReplicaFailed called %d times, want 1", calls.Load())
	}
	dirty := map[int64]bool{}
	for _, d := range v.Dirty() {
		if d.Updated.Before(start) {
			t.Errorf("block %d updated %v before the test began", d.Off, d.Updated)
		}
		dirty[d.Off] = true
	}
	if len(dirty) == 0 {
		t.Fatal("no dirty block after a replica failed mid-stream")
	}
	ga, gb := a.bytes(), b.bytes()
	for off := int64(0); off < size; off += cfg.BlockSize {
		if !dirty[off] && !bytes.Equal(ga[off:off+cfg.BlockSize], gb[off:off+cfg.BlockSize]) {
			t.Errorf("block at %d differs between the replicas but is not dirty", off)
		}
	}
}

// A replica that failed a read is tried last for a while: a dead replica
// costs one timeout, not one per read.
func TestFailedReadReplicaIsTriedLast(t *testing.T) {
	a, b := newMem(1<<20), newMem(1<<20)
	cfg := memConfig(a, b)
	cfg.Replicas[0].Local = true
	v, err := volume.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	a.failReads.Store(true)
	buf := make([]byte, 4096)
	if _, err := v.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	before := a.reads.Load()
	for i := range 10 {
		if _, err := v.ReadAt(buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.reads.Load() - before; got != 0 {
		t.Errorf("the replica that just failed a read was tried %d more times in 10 reads; want it tried last", got)
	}
}

// gatedDevice holds its first write until gate is closed.
type gatedDevice struct {
	*memDevice
	once    sync.Once
	gate    chan struct{}
	holding chan struct{}
}

func (g *gatedDevice) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.holding)
		<-g.gate
	}
	return g.memDevice.WriteAtContext(ctx, p, off)
}

// Two writes to the same bytes, the second sent while one replica still
// holds the first: every replica ends with the second, as the writer
// ordered them. Without ordering, the slow replica would apply them the
// other way round and the replicas would differ with no failure.
func TestOverlappingWritesReachEveryReplicaInOrder(t *testing.T) {
	a := newMem(1 << 20)
	b := &gatedDevice{memDevice: newMem(1 << 20), gate: make(chan struct{}), holding: make(chan struct{})}
	cfg := volume.DefaultConfig()
	cfg.Size, cfg.BlockSize = 1<<20, 4096
	cfg.Replicas = []volume.Replica{{Device: a}, {Device: b}}
	v, err := volume.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first, second := bytes.Repeat([]byte{1}, 4096), bytes.Repeat([]byte{2}, 4096)
	done := make(chan error, 2)
	go func() { _, err := v.WriteAt(first, 8192); done <- err }()
	<-b.holding // replica b holds the first write; a has it
	go func() { _, err := v.WriteAt(second, 8192); done <- err }()
	time.Sleep(20 * time.Millisecond) // give the second write its chance to overtake
	close(b.gate)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ga, gb := a.bytes()[8192:12288], b.memDevice.bytes()[8192:12288]
	if !bytes.Equal(ga, second) || !bytes.Equal(gb, second) {
		t.Errorf("after two writes to the same bytes: replica a holds %d, b holds %d; want both the second (2)", ga[0], gb[0])
	}
}
