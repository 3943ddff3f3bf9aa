package rrd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// memFile is a file image in memory that records writes and syncs, so a
// test can rebuild what a crash at any point could leave on disk.
type memFile struct {
	b      []byte
	writes []memWrite
}

type memWrite struct {
	off   int64
	data  []byte
	phase int // syncs before this write
}

func (m *memFile) phase() int {
	n := 0
	for _, w := range m.writes {
		if w.data == nil {
			n++
		}
	}
	return n
}

func (m *memFile) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(b, m.b[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write past the end")
	}
	m.writes = append(m.writes, memWrite{off: off, data: append([]byte(nil), b...), phase: m.phase()})
	copy(m.b[off:], b)
	return len(b), nil
}

func (m *memFile) Sync() error {
	m.writes = append(m.writes, memWrite{phase: m.phase()}) // a sync marker
	return nil
}
func (m *memFile) Close() error { return nil }
func (m *memFile) Stat() (os.FileInfo, error) {
	return fakeInfo{size: int64(len(m.b))}, nil
}

type fakeInfo struct {
	os.FileInfo
	size int64
}

func (f fakeInfo) Size() int64 { return f.size }

func testSpec(t testing.TB) Spec {
	return Spec{Step: 10,
		DS:  mustDS(t, "DS:g:GAUGE:30:U:U", "DS:c:COUNTER:30:0:U"),
		RRA: mustRRA(t, "RRA:AVERAGE:0.5:1:20", "RRA:MAX:0.5:3:10", "RRA:LAST:0.5:12:5"),
	}
}

func fetchAll(t testing.TB, fetch func(CF, int64, int64, uint64) (*FetchResult, error), last int64) []*FetchResult {
	t.Helper()
	var out []*FetchResult
	for _, cf := range []CF{Average, Max, Last} {
		for _, res := range []uint64{10, 30, 120} {
			r, err := fetch(cf, last-2000, last, res)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

func sameFetches(a, b []*FetchResult) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d results, want %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Start != b[i].Start || a[i].Step != b[i].Step || len(a[i].Rows) != len(b[i].Rows) {
			return fmt.Errorf("fetch %d shape differs", i)
		}
		for r := range a[i].Rows {
			for d := range a[i].Rows[r] {
				x, y := a[i].Rows[r][d], b[i].Rows[r][d]
				if !(x == y || math.IsNaN(x) && math.IsNaN(y)) {
					return fmt.Errorf("fetch %d row %d DS %d: %v, want %v", i, r, d, x, y)
				}
			}
		}
	}
	return nil
}

// TestFileCrashAtEveryWrite replays every crash a commit can suffer: the
// writes of the sync phase in progress may reach the disk in any subset,
// each whole, torn, or not at all. Every such file must open, and show
// either the state before the commit or the state after it.
//
// Two commit styles: File.Commit (slot, sync, rows, sync) and a Store
// checkpoint (slot plus the previous slot's rows, one sync).
func TestFileCrashAtEveryWrite(t *testing.T) {
	for _, piggyback := range []bool{false, true} {
		t.Run(fmt.Sprintf("store-checkpoint=%v", piggyback), func(t *testing.T) { testCrashAtEveryWrite(t, piggyback) })
	}
}

func testCrashAtEveryWrite(t *testing.T, piggyback bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.rrd")
	spec := testSpec(t)
	start := Time{Sec: 1700000000}
	if err := Create(path, spec, start, &CreateOptions{RedoBytes: 8192}); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := New(spec, start)
	mf := &memFile{b: append([]byte(nil), img...)}
	f, err := openFile(path, mf)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now, ctr := start.Sec, uint64(0)
	crashes := 0
	for round := 0; round < 25; round++ {
		before := ref.Clone()
		base := append([]byte(nil), mf.b...)
		mf.writes = nil
		for k := 0; k < 1+rng.IntN(6); k++ {
			now += 1 + rng.Int64N(40)
			if rng.IntN(10) == 0 {
				now += 500 // several rows in one update
			}
			ctr += rng.Uint64N(5000)
			vals := []Value{Float(rng.Float64() * 100), Uint(ctr)}
			if err := f.Update(Time{Sec: now}, vals...); err != nil {
				t.Fatal(err)
			}
			if err := ref.Update(Time{Sec: now}, vals...); err != nil {
				t.Fatal(err)
			}
		}
		if piggyback {
			rewrote, err := f.writeSlot()
			if err != nil || rewrote {
				t.Fatalf("writeSlot: %v (rewrote %v)", err, rewrote)
			}
			mf.Sync()
			f.slotDurable()
		} else if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
		want := [2][]*FetchResult{fetchAll(t, before.Fetch, now), fetchAll(t, ref.Fetch, now)}
		// Group the writes by sync phase.
		phases := map[int][]memWrite{}
		for _, w := range mf.writes {
			if w.data != nil {
				phases[w.phase] = append(phases[w.phase], w)
			}
		}
		for p := 0; p <= 2; p++ {
			ws := phases[p]
			if len(ws) > 6 {
				ws = ws[:6]
			}
			// Each write: 0 not written, 1 whole, 2 torn (first half).
			combos := 1
			for range ws {
				combos *= 3
			}
			for c := 0; c < combos; c++ {
				im := append([]byte(nil), base...)
				for q := 0; q < p; q++ {
					for _, w := range phases[q] {
						copy(im[w.off:], w.data)
					}
				}
				code := c
				for _, w := range ws {
					switch code % 3 {
					case 1:
						copy(im[w.off:], w.data)
					case 2:
						copy(im[w.off:], w.data[:len(w.data)/2])
					}
					code /= 3
				}
				g, err := openFile(path, &memFile{b: im})
				if err != nil {
					t.Fatalf("round %d, crash in phase %d (combination %d): file does not open: %v", round, p, c, err)
				}
				got := fetchAll(t, g.Fetch, now)
				if e0, e1 := sameFetches(got, want[0]), sameFetches(got, want[1]); e0 != nil && e1 != nil {
					t.Fatalf("round %d, crash in phase %d (combination %d): neither the old state (%v) nor the new (%v)", round, p, c, e0, e1)
				}
				crashes++
			}
		}
	}
	t.Logf("%d crash images checked", crashes)
}

// TestFileRoundTrip: updates committed to a file read back after reopen
// exactly as the in-memory engine has them, including a commit that does
// not fit the redo room and rewrites the file.
func TestFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.rrd")
	spec := testSpec(t)
	start := Time{Sec: 1700000000}
	if err := Create(path, spec, start, &CreateOptions{RedoBytes: 512}); err != nil {
		t.Fatal(err)
	}
	if err := Create(path, spec, start, nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over an existing file: %v, want ErrExist", err)
	}
	ref, _ := New(spec, start)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := start.Sec
	for i := 0; i < 300; i++ {
		now += 7
		if i == 150 {
			now += 100000 // more rows than the redo room holds
		}
		v := []Value{Float(float64(i)), Uint(uint64(i * i))}
		if err := f.Update(Time{Sec: now}, v...); err != nil {
			t.Fatal(err)
		}
		ref.Update(Time{Sec: now}, v...)
		if i%13 == 0 {
			if err := f.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := sameFetches(fetchAll(t, g.Fetch, now), fetchAll(t, ref.Fetch, now)); err != nil {
		t.Fatal(err)
	}
	if g.Last() != ref.Last() {
		t.Fatalf("last update %v, want %v", g.Last(), ref.Last())
	}
}

// TestStoreCommit: a Store commits many files with one sync per phase and
// they read back equal to the in-memory engine.
func TestStoreCommit(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(DefaultStoreConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t)
	start := Time{Sec: 1700000000}
	refs := map[string]*RRD{}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("node%d/cpu.rrd", i)
		if err := s.Create(name, spec, start); err != nil {
			t.Fatal(err)
		}
		refs[name], _ = New(spec, start)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := start.Sec
	for round := 0; round < 30; round++ {
		now += 10
		var batch []Update
		for name, r := range refs {
			v := []Value{Float(float64(round)), Uint(uint64(round * 100))}
			batch = append(batch, Update{Name: name, Time: Time{Sec: now}, Values: v})
			r.Update(Time{Sec: now}, v...)
		}
		if err := s.UpdateBatch(batch); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update("node0/cpu.rrd", Time{Sec: now}, Float(1), Uint(1)); err == nil {
		t.Fatal("an update at the same time as the last was accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(DefaultStoreConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for name, r := range refs {
		got := fetchAll(t, func(cf CF, a, b int64, res uint64) (*FetchResult, error) { return s2.Fetch(name, cf, a, b, res) }, now)
		if err := sameFetches(got, fetchAll(t, r.Fetch, now)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := s2.Fetch("../x.rrd", Average, 0, 1, 0); err == nil {
		t.Fatal("a name outside the store was accepted")
	}
}
