package pool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Seeds: real blocks as Format and the pool write them.

func seedSuper() []byte {
	s := layoutFor(MiB, 256, 1020)
	s.UUID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return s.marshal(0)
}

func seedRecords() [][]byte {
	return [][]byte{
		volRecord{State: stateActive, Serial: 1, Size: 10 * GiB, Epoch: 7, InSync: true, ID: "vol-1"}.marshal(3, 0),
		volRecord{State: stateCreating, Thick: true, Serial: 9, Size: 4 * MiB, ID: "t"}.marshal(2, 0),
		volRecord{State: stateDeleting, Serial: 2, Size: 512, ID: "z"}.marshal(5, 0),
		volRecord{}.marshal(4, 0),
		make([]byte, blockSize),
	}
}

func seedChunkBlocks() [][]byte {
	es := make([]entry, perBlock)
	es[0], es[1], es[200] = entry{1, 0}, entry{1, 5}, entry{2, 1 << 20}
	return [][]byte{marshalChunkBlock(es, 1, 0), marshalChunkBlock(es[:3], 2, 0), make([]byte, blockSize)}
}

func FuzzSuperblock(f *testing.F) {
	f.Add(seedSuper())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := unmarshalSuper(b, 0)
		if err != nil {
			return
		}
		if got := s.marshal(0); !bytes.Equal(got, b) {
			t.Fatalf("round trip differs:\n%x\n%x", got, b)
		}
		if s.DataOff%s.ChunkSize != 0 || s.PoolSize != s.DataOff+s.Chunks*s.ChunkSize || s.ChunkTable < s.VolTable {
			t.Fatalf("accepted a bad layout: %+v", s)
		}
	})
}

func FuzzVolumeRecord(f *testing.F) {
	for _, b := range seedRecords() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, seq, err := unmarshalVolRecord(b, 0)
		if err != nil {
			return
		}
		if allZero(b) {
			if seq != 0 || r != (volRecord{}) {
				t.Fatalf("blank block gave %+v seq %d", r, seq)
			}
			return
		}
		if got := r.marshal(seq, 0); !bytes.Equal(got, b) {
			t.Fatalf("round trip of %+v differs", r)
		}
		if r.State != stateFree && (checkID(r.ID) != nil || r.Size <= 0 || r.Size%512 != 0 || r.Serial == 0) {
			t.Fatalf("accepted a bad record: %+v", r)
		}
	})
}

func FuzzChunkBlock(f *testing.F) {
	for _, b := range seedChunkBlocks() {
		f.Add(b, uint16(perBlock))
		f.Add(b, uint16(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, n uint16) {
		es, seq, err := unmarshalChunkBlock(b, 0, int(n))
		if err != nil {
			return
		}
		if allZero(b) {
			return
		}
		if got := marshalChunkBlock(es, seq, 0); !bytes.Equal(got, b) {
			t.Fatalf("round trip differs")
		}
	})
}

// fuzzImage is a small pool with a thin volume holding data, a thick
// volume, and a deleted one.
func fuzzImage(t testing.TB) []byte {
	d := newMemDrive(make([]byte, MiB))
	if err := format(d, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 3}); err != nil {
		t.Fatal(err)
	}
	p, err := open(d, "fuzz")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Create("a", 4*MiB, false)
	p.Create("b", 128*KiB, true)
	c, _ := p.Create("c", MiB, false)
	a.WriteAt([]byte("data"), 3*64*KiB)
	a.SetEpoch(4)
	c.WriteAt([]byte("gone"), 0)
	p.Delete("c")
	d.Sync()
	return d.durable
}

// FuzzOpen patches the metadata of a real pool and opens it: Open either
// refuses with an error or gives a pool whose accounting adds up.
func FuzzOpen(f *testing.F) {
	f.Add(uint32(volTableAt+16), []byte{1})
	f.Add(uint32(volTableAt+blockSize+32), []byte{3})
	f.Add(uint32(volTableAt+3*2*blockSize+40), []byte{0xff, 0xff})
	f.Add(uint32(0), []byte("MVPL\x03"))
	img := fuzzImage(f)
	sb, _ := unmarshalSuper(img[:blockSize], 0)
	f.Fuzz(func(t *testing.T, at uint32, patch []byte) {
		b := bytes.Clone(img)
		off := int(at) % int(sb.DataOff)
		copy(b[off:sb.DataOff], patch)
		// Reseal the patched block, so that patches get past the checksum.
		blk := off / blockSize * blockSize
		if bytes.Equal(b[blk:blk+4], magic[:]) {
			binary.LittleEndian.PutUint32(b[blk+8:], blockCRC(b[blk:blk+blockSize]))
		}
		p, err := open(newMemDrive(b), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotPool) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error matching no sentinel: %v", err)
			}
			return
		}
		var allocated int64
		for _, v := range p.Volumes() {
			allocated += v.Allocated / p.sb.ChunkSize
		}
		if st := p.Stats(); allocated+st.FreeChunks != st.Chunks {
			t.Fatalf("%d allocated + %d free != %d chunks", allocated, st.FreeChunks, st.Chunks)
		}
	})
}

// TestWriteFuzzSeeds writes the seeds above into testdata/fuzz when
// MVPOOL_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MVPOOL_WRITE_SEEDS") != "1" {
		t.Skip("set MVPOOL_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target, name string, args ...any) {
		var buf bytes.Buffer
		buf.WriteString("go test fuzz v1\n")
		for _, a := range args {
			if b, ok := a.([]byte); ok {
				fmt.Fprintf(&buf, "[]byte(%q)\n", b)
			} else {
				fmt.Fprintf(&buf, "%T(%v)\n", a, a)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("FuzzSuperblock", "format-1MiB-chunks", seedSuper())
	for i, b := range seedRecords() {
		write("FuzzVolumeRecord", fmt.Sprint("record-", i), b)
	}
	for i, b := range seedChunkBlocks() {
		write("FuzzChunkBlock", fmt.Sprint("block-", i), b, uint16(perBlock))
	}
	write("FuzzOpen", "volume-state", uint32(volTableAt+32), []byte{stateDeleting})
	write("FuzzOpen", "chunk-owner", uint32(volTableAt+3*2*blockSize+32), []byte{9})
	write("FuzzOpen", "super-version", uint32(5), []byte{2})
}
