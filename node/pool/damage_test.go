package pool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
)

// Tests that damage a closed pool's drive the way a crash or a bad disk
// would, then open it.

func readAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// recordCopies returns the offsets of the two copies of volume slot i and
// which of them is current.
func recordCopies(t *testing.T, path string, i int) (offs [2]int64, cur int, rec volRecord, seq uint64) {
	t.Helper()
	base := int64(volTableAt) + int64(i)*2*blockSize
	offs = [2]int64{base, base + blockSize}
	var recs [2]volRecord
	cur, seq, err := pickCopy("test", readAt(t, path, offs[0], blockSize), readAt(t, path, offs[1], blockSize), func(c int, b []byte) (uint64, error) {
		r, s, err := unmarshalVolRecord(b, uint64(i))
		recs[c] = r
		return s, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return offs, cur, recs[cur], seq
}

// writeRecord writes a new version of slot i as the pool would, in the
// copy that does not hold the current one.
func writeRecord(t *testing.T, path string, i int, change func(*volRecord)) {
	t.Helper()
	offs, _, r, seq := recordCopies(t, path, i)
	change(&r)
	writeAt(t, path, r.marshal(seq+1, uint64(i)), offs[(seq+1)%2])
}

// patchChunks writes a new version of the first chunk table block (its
// first 16 entries) as the pool would.
func patchChunks(t *testing.T, path string, change func([]entry)) {
	t.Helper()
	sb, err := unmarshalSuper(readAt(t, path, 0, blockSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	off := sb.ChunkTable
	var got [2][]entry
	cur, seq, err := pickCopy("test", readAt(t, path, off, blockSize), readAt(t, path, off+blockSize, blockSize), func(c int, b []byte) (uint64, error) {
		es, seq, err := unmarshalChunkBlock(b, 0, 16)
		got[c] = es
		return seq, err
	})
	if err != nil {
		t.Fatal(err)
	}
	change(got[cur])
	writeAt(t, path, marshalChunkBlock(got[cur], seq+1, 0), off+blockSize*int64((seq+1)%2))
}

// epochPool makes a pool with volume "v" (slot 0) holding data, whose
// epoch went 5 then 6, and closes it.
func epochPool(t *testing.T) string {
	p, path := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, _ := p.Create("v", MiB, false)
	mustWrite(t, v, pattern(MiB, 1), 0)
	v.SetEpoch(5)
	v.SetEpoch(6)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openVolume(t *testing.T, path, id string) (*Pool, *Volume) {
	t.Helper()
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	v, err := p.Volume(id)
	if err != nil {
		t.Fatal(err)
	}
	return p, v
}

func TestTornRecordFallsBack(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		damage func(b []byte)
	}{
		{"garbage", func(b []byte) { copy(b[100:], "garbage garbage") }},
		{"the start of a new version", nil},
		{"zeroed", func(b []byte) { clear(b) }},
		{"one bit", func(b []byte) { b[40] ^= 1 }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := epochPool(t)
			offs, cur, r, seq := recordCopies(t, path, 0)
			if r.Epoch != 6 {
				t.Fatalf("current epoch %d, want 6", r.Epoch)
			}
			b := readAt(t, path, offs[cur], blockSize)
			if tc.damage != nil {
				tc.damage(b)
			} else {
				// A crash while the next version was being written: its
				// first 48 bytes are on disk, over the older copy.
				r.Epoch = 7
				nb := r.marshal(seq+1, 0)
				b = readAt(t, path, offs[1-cur], blockSize)
				copy(b[:48], nb)
				cur = 1 - cur
			}
			writeAt(t, path, b, offs[cur])
			_, v := openVolume(t, path, "v")
			want := uint64(5)
			if tc.damage == nil {
				want = 6
			}
			if v.Epoch() != want {
				t.Errorf("epoch after damage = %d, want %d", v.Epoch(), want)
			}
			if !bytes.Equal(mustRead(t, v, MiB, 0), pattern(MiB, 1)) {
				t.Error("data lost")
			}
			// The pool goes on: the next version overwrites the damaged copy.
			if err := v.SetEpoch(8); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		damage func(t *testing.T, path string)
		want   error
		says   string
	}{
		{"truncated", func(t *testing.T, path string) { os.Truncate(path, 8*MiB) }, ErrTruncated, "drive has 8388608 bytes"},
		{"not a pool", func(t *testing.T, path string) { writeAt(t, path, make([]byte, 2*blockSize), 0) }, ErrNotPool, ""},
		{"tiny", func(t *testing.T, path string) { os.Truncate(path, 100) }, ErrNotPool, "too small"},
		{"bad version", func(t *testing.T, path string) {
			for c := range int64(2) {
				b := readAt(t, path, c*blockSize, blockSize)
				b[5] = 9
				binary.LittleEndian.PutUint32(b[8:], blockCRC(b))
				writeAt(t, path, b, c*blockSize)
			}
		}, ErrVersion, "format version 9"},
		{"both superblocks damaged", func(t *testing.T, path string) {
			writeAt(t, path, []byte("xx"), 200)
			writeAt(t, path, []byte("xx"), blockSize+200)
		}, ErrCorrupt, "checksum"},
		{"both record copies damaged", func(t *testing.T, path string) {
			writeAt(t, path, []byte("xx"), volTableAt+200)
			writeAt(t, path, []byte("xx"), volTableAt+blockSize+200)
		}, ErrCorrupt, "volume record 0: both copies unusable"},
		{"chunk of no volume", func(t *testing.T, path string) {
			patchChunks(t, path, func(es []entry) { es[15] = entry{Serial: 77, Logical: 3} })
		}, ErrCorrupt, "serial 77, which no volume record has"},
		{"chunk twice", func(t *testing.T, path string) {
			patchChunks(t, path, func(es []entry) { es[15] = es[0] })
		}, ErrCorrupt, "both hold logical chunk 0"},
		{"thin chunk past the end", func(t *testing.T, path string) {
			writeRecord(t, path, 0, func(r *volRecord) { r.Size = 64 * KiB })
		}, ErrCorrupt, `thin volume "v"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := epochPool(t)
			tc.damage(t, path)
			_, err := Open(path)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want %v saying %q and the path", err, tc.want, tc.says)
			}
		})
	}
}

func TestOpenFinishesDelete(t *testing.T) {
	p, path := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	v, _ := p.Create("v", MiB, false)
	secret := pattern(MiB, 3)
	mustWrite(t, v, secret, 0)
	w, _ := p.Create("w", MiB, false)
	mustWrite(t, w, pattern(MiB, 4), 0)
	free := p.Stats().FreeChunks
	p.Close()
	// A crash right after Delete marked the record.
	writeRecord(t, path, 0, func(r *volRecord) { r.State = stateDeleting })
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Volume("v"); !errors.Is(err, ErrNotFound) {
		t.Errorf("half-deleted volume after Open: %v", err)
	}
	if got := p.Stats().FreeChunks; got != free+16 {
		t.Errorf("free chunks %d, want %d", got, free+16)
	}
	if raw, _ := os.ReadFile(path); bytes.Contains(raw, secret[:4096]) {
		t.Error("the deleted volume's data is still on the drive")
	}
	w, _ = p.Volume("w")
	if !bytes.Equal(mustRead(t, w, MiB, 0), pattern(MiB, 4)) {
		t.Error("the other volume changed")
	}
}

func TestOpenRollsBackThickCreate(t *testing.T) {
	p, path := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	p.Create("t", 2*MiB, true)
	free := p.Stats().FreeChunks
	p.Close()
	writeRecord(t, path, 0, func(r *volRecord) { r.State = stateCreating })
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Volume("t"); !errors.Is(err, ErrNotFound) {
		t.Errorf("half-created volume after Open: %v", err)
	}
	if got := p.Stats().FreeChunks; got != free+32 {
		t.Errorf("free chunks %d, want %d", got, free+32)
	}
}

func TestOpenFreesThickResizeLeftovers(t *testing.T) {
	p, path := newPool(t, 16*MiB, FormatOptions{ChunkSize: 64 * KiB})
	p.Create("t", MiB, true)
	p.Resize("t", 2*MiB)
	free := p.Stats().FreeChunks
	p.Close()
	// A crash before the record grew: the new chunks lie past the end.
	writeRecord(t, path, 0, func(r *volRecord) { r.Size = MiB })
	_, v := openVolume(t, path, "t")
	if v.Size() != MiB || v.Allocated() != MiB || v.p.Stats().FreeChunks != free+16 {
		t.Errorf("size %d allocated %d free %d, want 1 MiB, 1 MiB, %d", v.Size(), v.Allocated(), v.p.Stats().FreeChunks, free+16)
	}
}
