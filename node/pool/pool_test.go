package pool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// newDrive makes a sparse file of size bytes standing in for a drive.
func newDrive(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drive")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// newPool formats and opens a pool on a fresh drive of size bytes.
func newPool(t testing.TB, size int64, opts FormatOptions) (*Pool, string) {
	t.Helper()
	path := newDrive(t, size)
	if err := Format(path, opts); err != nil {
		t.Fatal(err)
	}
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, path
}

func reopen(t testing.TB, p *Pool) *Pool {
	t.Helper()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := Open(p.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
		if b[i] == 0 {
			b[i] = seed | 1
		}
	}
	return b
}

func mustWrite(t testing.TB, v *Volume, b []byte, off int64) {
	t.Helper()
	if n, err := v.WriteAt(b, off); err != nil || n != len(b) {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(b), off, n, err)
	}
}

func mustRead(t testing.TB, v *Volume, n int, off int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if got, err := v.ReadAt(b, off); err != nil || got != n {
		t.Fatalf("ReadAt(%d bytes, %d) = %d, %v", n, off, got, err)
	}
	return b
}

func TestFormatOpenEmpty(t *testing.T) {
	p, _ := newPool(t, GiB, FormatOptions{})
	st := p.Stats()
	if st.ChunkSize != MiB || st.Chunks < 1000 || st.Chunks > 1024 || st.FreeChunks != st.Chunks || st.MaxVolumes != 256 {
		t.Errorf("Stats = %+v, want about 1020 free chunks of 1 MiB and 256 slots", st)
	}
	if vs := p.Volumes(); len(vs) != 0 {
		t.Errorf("Volumes = %v, want none", vs)
	}
}

func TestFormatRefuses(t *testing.T) {
	path := newDrive(t, 64*MiB)
	if blank, err := IsBlank(path); err != nil || !blank {
		t.Fatalf("IsBlank(fresh) = %v, %v", blank, err)
	}
	if err := Format(path, FormatOptions{ChunkSize: 64 * KiB}); err != nil {
		t.Fatal(err)
	}
	if blank, err := IsBlank(path); err != nil || blank {
		t.Fatalf("IsBlank(pool) = %v, %v", blank, err)
	}
	if err := Format(path, FormatOptions{}); !errors.Is(err, ErrPoolExists) {
		t.Errorf("Format over a pool: %v, want ErrPoolExists", err)
	}
	if err := Format(path, FormatOptions{Force: true}); err != nil {
		t.Errorf("Format with Force: %v", err)
	}

	other := newDrive(t, 64*MiB)
	f, _ := os.OpenFile(other, os.O_RDWR, 0)
	f.WriteAt([]byte("ext4 or so"), 40000)
	f.Close()
	if err := Format(other, FormatOptions{}); !errors.Is(err, ErrNotBlank) {
		t.Errorf("Format over data: %v, want ErrNotBlank", err)
	}
	if _, err := Open(other); !errors.Is(err, ErrNotPool) {
		t.Errorf("Open of a non-pool: %v, want ErrNotPool", err)
	}

	for _, tc := range []struct {
		desc string
		opts FormatOptions
		size int64
	}{
		{"chunk not a power of two", FormatOptions{ChunkSize: 3 * MiB}, 64 * MiB},
		{"chunk too small", FormatOptions{ChunkSize: 32 * KiB}, 64 * MiB},
		{"chunk too big", FormatOptions{ChunkSize: 2 * GiB}, 64 * MiB},
		{"negative slots", FormatOptions{MaxVolumes: -1}, 64 * MiB},
		{"too many slots", FormatOptions{MaxVolumes: 1<<16 + 1}, 64 * MiB},
		{"drive too small", FormatOptions{}, 2 * MiB},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := newDrive(t, tc.size)
			if err := Format(path, tc.opts); !errors.Is(err, ErrInvalid) {
				t.Errorf("Format: %v, want ErrInvalid", err)
			}
			if blank, _ := IsBlank(path); !blank {
				t.Error("a refused Format changed the drive")
			}
		})
	}
}

func TestThinReadWriteReopen(t *testing.T) {
	p, _ := newPool(t, 64*MiB, FormatOptions{})
	v, err := p.Create("vol-1", 10*GiB, false)
	if err != nil {
		t.Fatal(err)
	}
	if v.Size() != 10*GiB || v.Allocated() != 0 {
		t.Fatalf("Size %d Allocated %d, want 10 GiB and 0", v.Size(), v.Allocated())
	}
	if got := mustRead(t, v, 4096, 5*GiB); !allZero(got) {
		t.Error("unwritten chunk does not read zeros")
	}
	// A write across a chunk boundary, and one at the very end.
	a := pattern(3*MiB/2, 1)
	mustWrite(t, v, a, MiB-512)
	z := pattern(4096, 9)
	mustWrite(t, v, z, 10*GiB-4096)
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := v.Allocated(); got != 4*MiB { // chunks 0, 1, 2 and the last
		t.Errorf("Allocated = %d, want 4 MiB", got)
	}
	if err := v.SetEpoch(7); err != nil {
		t.Fatal(err)
	}
	if err := v.SetInSync(true); err != nil {
		t.Fatal(err)
	}
	p = reopen(t, p)
	v, err = p.Volume("vol-1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, v, len(a), MiB-512), a) || !bytes.Equal(mustRead(t, v, len(z), 10*GiB-4096), z) {
		t.Error("data differs after reopen")
	}
	if got := mustRead(t, v, 512, MiB-1024); !allZero(got) {
		t.Error("bytes before the write are not zero")
	}
	want := []VolumeInfo{{ID: "vol-1", Size: 10 * GiB, Allocated: 4 * MiB, Epoch: 7, InSync: true}}
	if diff := cmp.Diff(want, p.Volumes()); diff != "" {
		t.Errorf("Volumes after reopen (-want +got):\n%s", diff)
	}
}

func TestReadPastEnd(t *testing.T) {
	p, _ := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, _ := p.Create("v", 8192, false)
	mustWrite(t, v, pattern(8192, 3), 0)
	b := make([]byte, 8192)
	if n, err := v.ReadAt(b, 4096); n != 4096 || err != io.EOF {
		t.Errorf("ReadAt over the end = %d, %v; want 4096, io.EOF", n, err)
	}
	if !bytes.Equal(b[:4096], pattern(8192, 3)[4096:]) {
		t.Error("partial read returned wrong data")
	}
	if n, err := v.ReadAt(b, 8192); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := v.ReadAt(b, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReadAt(-1) = %v, want ErrInvalid", err)
	}
}

func TestBadInput(t *testing.T) {
	p, _ := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, err := p.Create("v", MiB, false)
	if err != nil {
		t.Fatal(err)
	}
	before := p.Stats()
	for _, tc := range []struct {
		desc string
		err  error
		want error
	}{
		{"empty id", errOf(p.Create("", MiB, false)), ErrInvalid},
		{"long id", errOf(p.Create(string(bytes.Repeat([]byte("x"), 129)), MiB, false)), ErrInvalid},
		{"id with space", errOf(p.Create("a b", MiB, false)), ErrInvalid},
		{"id not utf-8", errOf(p.Create("\xff", MiB, false)), ErrInvalid},
		{"size not sectors", errOf(p.Create("w", MiB+1, false)), ErrInvalid},
		{"size zero", errOf(p.Create("w", 0, false)), ErrInvalid},
		{"size negative", errOf(p.Create("w", -512, false)), ErrInvalid},
		{"size enormous", errOf(p.Create("w", 1<<62, false)), ErrInvalid},
		{"exists", errOf(p.Create("v", MiB, true)), ErrExists},
		{"thick too big", errOf(p.Create("w", 32*MiB, true)), syscall.ENOSPC},
		{"not found", errOf(p.Volume("nope")), ErrNotFound},
		{"delete not found", p.Delete("nope"), ErrNotFound},
		{"resize not found", p.Resize("nope", 2*MiB), ErrNotFound},
		{"shrink", p.Resize("v", MiB/2), ErrInvalid},
		{"resize odd", p.Resize("v", 2*MiB+100), ErrInvalid},
		{"write negative", errOf(v.WriteAt([]byte{1}, -1)), ErrRange},
		{"write past end", errOf(v.WriteAt(make([]byte, 1024), MiB-512)), ErrRange},
		{"write beyond end", errOf(v.WriteAt([]byte{1}, MiB+1)), ErrRange},
		{"discard negative", v.Discard(-1, 512), ErrRange},
		{"discard past end", v.Discard(0, MiB+512), ErrRange},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("err = %v, want %v", tc.err, tc.want)
			}
		})
	}
	if diff := cmp.Diff(before, p.Stats()); diff != "" {
		t.Errorf("bad input changed the pool (-before +after):\n%s", diff)
	}
	if v.Allocated() != 0 || v.Size() != MiB {
		t.Errorf("bad input changed the volume: size %d allocated %d", v.Size(), v.Allocated())
	}
}

func errOf[T any](_ T, err error) error { return err }

func TestENOSPCOvercommit(t *testing.T) {
	p, _ := newPool(t, 8*MiB, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 4})
	chunks := p.Stats().Chunks
	a, _ := p.Create("a", GiB, false)
	b, _ := p.Create("b", GiB, false)
	// a takes half the chunks, b the rest, each with its own pattern.
	cs := int64(64 * KiB)
	for i := range chunks {
		v, seed := a, byte(1)
		if i%2 == 1 {
			v, seed = b, 2
		}
		mustWrite(t, v, pattern(int(cs), seed+byte(i)), i*cs)
	}
	if st := p.Stats(); st.FreeChunks != 0 {
		t.Fatalf("FreeChunks = %d, want 0", st.FreeChunks)
	}
	// Full: a new chunk fails, a write spanning a mapped and a new chunk
	// writes nothing at all.
	_, err := a.WriteAt([]byte("x"), chunks*cs)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full pool: %v, want ENOSPC", err)
	}
	old := mustRead(t, a, int(cs), (chunks-2)*cs)
	if _, err := a.WriteAt(make([]byte, 2*cs), (chunks-2)*cs+cs); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("spanning write to a full pool: %v, want ENOSPC", err)
	}
	if !bytes.Equal(mustRead(t, a, int(cs), (chunks-2)*cs), old) {
		t.Error("a failed write changed data")
	}
	// Rewrites of mapped chunks still work.
	mustWrite(t, b, []byte("rewrite"), cs)
	// Every chunk of both volumes is intact.
	for i := range chunks {
		v, seed := a, byte(1)
		if i%2 == 1 {
			v, seed = b, 2
		}
		want := pattern(int(cs), seed+byte(i))
		if i == 1 {
			copy(want, "rewrite")
		}
		if got := mustRead(t, v, int(cs), i*cs); !bytes.Equal(got, want) {
			t.Fatalf("chunk %d of %s damaged after ENOSPC", i, v.ID())
		}
	}
	// Freeing space makes writes work again.
	if err := b.Discard(0, GiB); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, a, []byte("x"), chunks*cs)
}

func TestThick(t *testing.T) {
	p, _ := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	total := p.Stats().Chunks
	v, err := p.Create("t", 4*MiB, true)
	if err != nil {
		t.Fatal(err)
	}
	if v.Allocated() != 4*MiB || p.Stats().FreeChunks != total-64 {
		t.Errorf("thick: Allocated %d free %d, want 4 MiB and %d", v.Allocated(), p.Stats().FreeChunks, total-64)
	}
	if got := mustRead(t, v, 4096, 2*MiB); !allZero(got) {
		t.Error("thick volume does not read zeros")
	}
	// Too big: ENOSPC, nothing taken.
	if _, err := p.Create("big", 16*MiB, true); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("thick larger than the pool: %v, want ENOSPC", err)
	}
	if err := p.Resize("t", 64*MiB); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("thick resize larger than the pool: %v, want ENOSPC", err)
	}
	if st := p.Stats(); st.FreeChunks != total-64 || st.Volumes != 1 {
		t.Errorf("failed thick create/resize changed Stats: %+v", st)
	}
	if err := p.Resize("t", 5*MiB); err != nil {
		t.Fatal(err)
	}
	if v.Allocated() != 5*MiB || v.Size() != 5*MiB {
		t.Errorf("after resize: Allocated %d Size %d", v.Allocated(), v.Size())
	}
	// Thin volumes cannot take the thick one's chunks.
	w, _ := p.Create("w", GiB, false)
	free := p.Stats().FreeChunks
	for i := range free {
		mustWrite(t, w, []byte{1}, i*64*KiB)
	}
	if _, err := w.WriteAt([]byte{1}, free*64*KiB); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("thin write with only thick chunks left: %v", err)
	}
	mustWrite(t, v, pattern(5*MiB, 4), 0)
	p = reopen(t, p)
	v, _ = p.Volume("t")
	if !bytes.Equal(mustRead(t, v, 5*MiB, 0), pattern(5*MiB, 4)) || !v.Thick() {
		t.Error("thick volume lost data over reopen")
	}
	// Discard on a thick volume keeps its chunks.
	if err := v.Discard(0, 5*MiB); err != nil || v.Allocated() != 5*MiB {
		t.Errorf("Discard on thick: %v, Allocated %d", err, v.Allocated())
	}
}

func TestDeleteReuseReadsZeros(t *testing.T) {
	p, path := newPool(t, 4*MiB, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 2})
	chunks := p.Stats().Chunks
	a, _ := p.Create("a", chunks*64*KiB, false)
	secret := pattern(int(chunks*64*KiB), 5)
	mustWrite(t, a, secret, 0)
	a.Sync()
	if err := p.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("read of a deleted volume: %v, want ErrNotFound", err)
	}
	if err := a.SetEpoch(3); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetEpoch of a deleted volume: %v, want ErrNotFound", err)
	}
	if st := p.Stats(); st.FreeChunks != chunks || st.Volumes != 0 {
		t.Errorf("Stats after delete = %+v", st)
	}
	// The same id again, and another volume: every chunk they take reads
	// zeros apart from what they write.
	b, _ := p.Create("a", chunks*64*KiB, false)
	for i := range chunks {
		mustWrite(t, b, []byte{0xee}, i*64*KiB)
	}
	got := mustRead(t, b, int(chunks*64*KiB), 0)
	for i := range chunks {
		got[i*64*KiB] = 0
	}
	if !allZero(got) {
		t.Error("a reused chunk shows data of the deleted volume")
	}
	// Nothing of the secret is left on the drive at all.
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, secret[64*KiB:64*KiB+512]) {
		t.Error("the deleted volume's data is still on the drive")
	}
}

func TestDiscard(t *testing.T) {
	p, _ := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, _ := p.Create("v", MiB+512, false)
	data := pattern(int(v.Size()), 6)
	mustWrite(t, v, data, 0)
	free := p.Stats().FreeChunks
	// [1000, 200 KiB+100) holds chunks 1 and 2 wholly.
	if err := v.Discard(1000, 200*KiB+100-1000); err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().FreeChunks; got != free+2 {
		t.Errorf("free chunks %d, want %d", got, free+2)
	}
	want := bytes.Clone(data)
	clear(want[64*KiB : 192*KiB])
	if !bytes.Equal(mustRead(t, v, len(want), 0), want) {
		t.Error("data after discard")
	}
	// Up to the end: the partial last chunk counts.
	if err := v.Discard(MiB, 512); err != nil {
		t.Fatal(err)
	}
	clear(want[MiB:])
	if !bytes.Equal(mustRead(t, v, len(want), 0), want) {
		t.Error("data after discarding the tail")
	}
	p = reopen(t, p)
	v, _ = p.Volume("v")
	if !bytes.Equal(mustRead(t, v, len(want), 0), want) || v.Allocated() != 14*64*KiB {
		t.Errorf("after reopen: data differs or Allocated %d", v.Allocated())
	}
}

func TestResizeThin(t *testing.T) {
	p, _ := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, _ := p.Create("v", 100*KiB, false)
	mustWrite(t, v, pattern(100*KiB, 1), 0)
	if err := p.Resize("v", 3*GiB); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, v, 28*KiB, 100*KiB); !allZero(got) {
		t.Error("grown part of a partial chunk is not zero")
	}
	mustWrite(t, v, []byte("end"), 3*GiB-3)
	p = reopen(t, p)
	v, _ = p.Volume("v")
	if v.Size() != 3*GiB || !bytes.Equal(mustRead(t, v, 3, 3*GiB-3), []byte("end")) {
		t.Error("resize lost over reopen")
	}
}

func TestVolumeTableFull(t *testing.T) {
	p, _ := newPool(t, 8*MiB, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 2})
	p.Create("a", MiB, false)
	p.Create("b", MiB, false)
	if _, err := p.Create("c", MiB, false); !errors.Is(err, ErrTableFull) {
		t.Errorf("third volume in two slots: %v, want ErrTableFull", err)
	}
	p.Delete("a")
	if _, err := p.Create("c", MiB, false); err != nil {
		t.Errorf("after a delete: %v", err)
	}
}

func TestClose(t *testing.T) {
	p, path := newPool(t, 8*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, _ := p.Create("a", MiB, false)
	if _, err := Open(path); !errors.Is(err, ErrBusy) {
		t.Errorf("second Open: %v, want ErrBusy", err)
	}
	p.Close()
	if _, err := v.WriteAt([]byte{1}, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
	if _, err := p.Create("b", MiB, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: %v, want ErrClosed", err)
	}
}

func TestConcurrent(t *testing.T) {
	p, _ := newPool(t, 32*MiB, FormatOptions{ChunkSize: 64 * KiB})
	const vols, writers = 3, 4
	var wg sync.WaitGroup
	for i := range vols {
		v, err := p.Create(fmt.Sprint("v", i), 8*MiB, i == 0)
		if err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			wg.Go(func() {
				// Each writer owns every writers-th 4 KiB block.
				for k := w; k < 8*MiB/4096; k += writers {
					b := pattern(4096, byte(i*16+w))
					if _, err := v.WriteAt(b, int64(k)*4096); err != nil {
						t.Error(err)
						return
					}
					got := make([]byte, 4096)
					if _, err := v.ReadAt(got, int64(k)*4096); err != nil || !bytes.Equal(got, b) {
						t.Errorf("%s block %d: read back %v", v.ID(), k, err)
						return
					}
				}
			})
		}
	}
	wg.Go(func() {
		for range 50 {
			p.Volumes()
			p.Stats()
		}
	})
	wg.Wait()
	for i := range vols {
		v, _ := p.Volume(fmt.Sprint("v", i))
		if v.Allocated() != 8*MiB {
			t.Errorf("%s: Allocated %d, want 8 MiB", v.ID(), v.Allocated())
		}
	}
	if st := p.Stats(); st.FreeChunks != st.Chunks-3*128 {
		t.Errorf("free chunks %d, want %d: a chunk was taken twice", st.FreeChunks, st.Chunks-3*128)
	}
}

// TestConcurrentLifecycle deletes, discards and creates volumes while
// others are being written: I/O to a volume being deleted either happens
// before or fails with ErrNotFound, and no volume ever sees another's data.
func TestConcurrentLifecycle(t *testing.T) {
	p, _ := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 16})
	const size = 2 * MiB
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for round := range 6 {
				id := fmt.Sprint("w", w, "-", round)
				v, err := p.Create(id, size, round%2 == 0)
				if errors.Is(err, syscall.ENOSPC) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				seed := byte(w*16 + round + 1)
				var inner sync.WaitGroup
				for g := range 2 {
					inner.Go(func() {
						for off := int64(g) * 4096; off < size; off += 8192 {
							b := pattern(4096, seed)
							if _, err := v.WriteAt(b, off); errors.Is(err, ErrNotFound) {
								return // deleted under us
							} else if errors.Is(err, syscall.ENOSPC) {
								continue
							} else if err != nil {
								t.Error(err)
								return
							}
							got := make([]byte, 4096)
							if _, err := v.ReadAt(got, off); errors.Is(err, ErrNotFound) {
								return
							} else if err != nil {
								t.Error(err)
								return
							}
							if !bytes.Equal(got, b) && !allZero(got) {
								t.Errorf("%s at %d: data of another volume", id, off)
								return
							}
						}
					})
				}
				inner.Go(func() { v.Discard(size/2, size/4) })
				if round%3 == 2 {
					inner.Go(func() {
						if err := p.Delete(id); err != nil {
							t.Error(err)
						}
					})
				}
				inner.Wait()
				// Whatever survives holds only its own pattern or zeros.
				if v, err := p.Volume(id); err == nil {
					got := mustRead(t, v, size, 0)
					want := pattern(4096, seed)
					for off := 0; off < size; off += 4096 {
						if blk := got[off : off+4096]; !bytes.Equal(blk, want) && !allZero(blk) {
							t.Errorf("%s at %d: foreign data", id, off)
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()
	var allocated int64
	for _, vi := range p.Volumes() {
		allocated += vi.Allocated / (64 * KiB)
	}
	if st := p.Stats(); allocated+st.FreeChunks != st.Chunks {
		t.Errorf("%d allocated + %d free != %d chunks", allocated, st.FreeChunks, st.Chunks)
	}
	p = reopen(t, p)
	if len(p.Volumes()) == 0 {
		t.Error("no volume survived")
	}
}
