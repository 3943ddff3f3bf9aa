package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
)

// The power-loss test runs a random workload on a memDrive and, before
// every operation that reaches the drive, cuts the power: it opens a copy
// of the drive as a crash would leave it (any subset of the writes since
// the last sync, some torn) and checks that Open succeeds, every volume
// holds only data it may hold (what Sync acknowledged, or a later write),
// no volume shows another's data, the chunk accounting adds up, and every
// free chunk reads as zeros. Power fails again during the recovery that
// Open does, too.

const crashBlock = 4096

// sector builds sector s of version ver of block blk of the volume tagged
// tag: a header and a filler derived from it, so that a sector can be
// recognised wherever it shows up.
func sector(tag, blk, ver, s uint32) []byte {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint32(b[0:], tag)
	binary.LittleEndian.PutUint32(b[4:], blk)
	binary.LittleEndian.PutUint32(b[8:], ver)
	binary.LittleEndian.PutUint32(b[12:], s)
	for i := 16; i < 512; i++ {
		b[i] = byte(tag*31 + blk*7 + ver*13 + s + uint32(i))
	}
	return b
}

func blockData(tag, blk, ver uint32) []byte {
	var b []byte
	for s := range uint32(crashBlock / 512) {
		b = append(b, sector(tag, blk, ver, s)...)
	}
	return b
}

type mblock struct {
	acked   uint32   // version a crash must keep; 0 is zeros
	pending []uint32 // versions written or zeroed since, which a crash may show
}

type mvol struct {
	id     string
	tag    uint32
	thick  bool
	live   bool // must exist after a crash
	maybe  bool // may exist (create or delete in progress)
	sizes  []int64
	epochs []uint64
	blocks map[uint32]*mblock
}

func (m *mvol) block(b uint32) *mblock {
	if m.blocks[b] == nil {
		m.blocks[b] = &mblock{}
	}
	return m.blocks[b]
}

type crashModel struct {
	recoveryCrashes int
	vols            map[string]*mvol
	nextTag         uint32
	ver             uint32
}

// check opens a crashed image and compares it with the model.
// When rng is not nil, power also fails before every drive operation of
// the recovery Open makes, and each such image is checked too.
func (cm *crashModel) check(img []byte, rng *rand.Rand) error {
	d := newMemDrive(img)
	var again error
	if rng != nil {
		d.before = func() {
			cm.recoveryCrashes++
			if again == nil {
				if err := cm.check(d.crash(rng), nil); err != nil {
					again = fmt.Errorf("power lost again during recovery: %w", err)
				}
			}
		}
	}
	p, err := open(d, "crashed")
	d.before = nil
	if again != nil {
		return again
	}
	if err != nil {
		return fmt.Errorf("open after crash: %w", err)
	}
	defer p.Close()
	var allocated int64
	for _, info := range p.Volumes() {
		m := cm.vols[info.ID]
		if m == nil || (!m.live && !m.maybe) {
			return fmt.Errorf("volume %q exists and should not", info.ID)
		}
		if !slices.Contains(m.sizes, info.Size) || !slices.Contains(m.epochs, info.Epoch) || info.Thick != m.thick {
			return fmt.Errorf("volume %q: %+v, want size in %v, epoch in %v, thick %v", info.ID, info, m.sizes, m.epochs, m.thick)
		}
		if m.thick && info.Allocated != p.chunksOf(info.Size)<<p.shift {
			return fmt.Errorf("thick volume %q: %d allocated of %d", info.ID, info.Allocated, info.Size)
		}
		allocated += info.Allocated >> p.shift
		v, _ := p.Volume(info.ID)
		buf := make([]byte, crashBlock)
		for blk := uint32(0); int64(blk)*crashBlock < info.Size; blk++ {
			if _, err := v.ReadAt(buf, int64(blk)*crashBlock); err != nil {
				return err
			}
			mb := m.blocks[blk]
			if mb == nil {
				mb = &mblock{}
			}
			ok := append([]uint32{mb.acked}, mb.pending...)
			for s := range uint32(crashBlock / 512) {
				got := buf[s*512 : (s+1)*512]
				if allZero(got) {
					if !slices.Contains(ok, 0) {
						return fmt.Errorf("volume %q block %d sector %d: zeros, want version %v", m.id, blk, s, ok)
					}
					continue
				}
				tag, b, ver := binary.LittleEndian.Uint32(got), binary.LittleEndian.Uint32(got[4:]), binary.LittleEndian.Uint32(got[8:])
				if string(got) != string(sector(tag, b, ver, s)) {
					// A torn write: every piece must come from a version
					// the block may hold.
					if !mixOf(got, m.tag, blk, s, ok) {
						return fmt.Errorf("volume %q block %d sector %d: garbage, want pieces of versions %v", m.id, blk, s, ok)
					}
					continue
				}
				if tag != m.tag {
					return fmt.Errorf("volume %q block %d sector %d: data of volume tag %d (own tag %d)", m.id, blk, s, tag, m.tag)
				}
				if b != blk || !slices.Contains(ok, ver) {
					return fmt.Errorf("volume %q block %d sector %d: block %d version %d, want version in %v", m.id, blk, s, b, ver, ok)
				}
			}
		}
	}
	for id, m := range cm.vols {
		if m.live {
			if _, err := p.Volume(id); err != nil {
				return fmt.Errorf("acknowledged volume lost: %w", err)
			}
		}
	}
	st := p.Stats()
	if allocated+st.FreeChunks != st.Chunks {
		return fmt.Errorf("%d chunks allocated + %d free != %d", allocated, st.FreeChunks, st.Chunks)
	}
	// Every free chunk reads as zeros: take them all into a new volume.
	if st.FreeChunks > 0 && st.Volumes < st.MaxVolumes {
		v, err := p.Create("fill", st.FreeChunks*st.ChunkSize, false)
		if err != nil {
			return fmt.Errorf("create after crash: %w", err)
		}
		buf := make([]byte, st.ChunkSize)
		for c := range st.FreeChunks {
			if _, err := v.WriteAt([]byte{1}, c*st.ChunkSize); err != nil {
				return fmt.Errorf("write after crash: %w", err)
			}
			if _, err := v.ReadAt(buf, c*st.ChunkSize); err != nil {
				return err
			}
			if !allZero(buf[1:]) {
				return fmt.Errorf("a free chunk held data after the crash")
			}
		}
		if _, err := v.WriteAt([]byte{1}, 0); err != nil {
			return err
		}
	}
	return nil
}

// mixOf reports whether every 16-byte piece of got comes from one of the
// versions vers (0: zeros) of the sector.
func mixOf(got []byte, tag, blk, s uint32, vers []uint32) bool {
	var want [][]byte
	for _, v := range vers {
		if v == 0 {
			want = append(want, make([]byte, 512))
		} else {
			want = append(want, sector(tag, blk, v, s))
		}
	}
	for o := 0; o < 512; o += 16 {
		if !slices.ContainsFunc(want, func(w []byte) bool { return string(w[o:o+16]) == string(got[o:o+16]) }) {
			return false
		}
	}
	return true
}

func TestPowerLoss(t *testing.T) {
	seeds, every := []uint64{1, 2, 3}, 1
	if testing.Short() {
		seeds = seeds[:1]
	}
	if raceEnabled {
		seeds, every = seeds[:1], 5
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { powerLoss(t, seed, every) })
	}
}

// powerLoss runs the workload of seed and checks a crash at every
// every-th drive operation.
func powerLoss(t *testing.T, seed uint64, every int) {
	const driveSize = 3 * MiB
	img := make([]byte, driveSize)
	d := newMemDrive(img)
	if err := format(d, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 4}); err != nil {
		t.Fatal(err)
	}
	d.Sync()
	p, err := open(d, "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	rng := rand.New(rand.NewPCG(seed, 99))
	crashRNG := rand.New(rand.NewPCG(seed, 7))
	cm := &crashModel{vols: map[string]*mvol{}, nextTag: 1}
	var crashes int
	d.before = func() {
		crashes++
		if crashes%every != 0 {
			return
		}
		again := crashRNG
		if raceEnabled {
			again = nil // too slow under the race detector
		}
		if err := cm.check(d.crash(crashRNG), again); err != nil {
			t.Fatalf("power loss at drive operation %d: %v", crashes, err)
		}
	}

	create := func(id string, size int64, thick bool) {
		m := &mvol{id: id, tag: cm.nextTag, thick: thick, maybe: true, sizes: []int64{size}, epochs: []uint64{0}, blocks: map[uint32]*mblock{}}
		cm.nextTag++
		old := cm.vols[id]
		if old != nil && (old.live || old.maybe) {
			t.Fatalf("model: %s exists", id)
		}
		cm.vols[id] = m
		_, err := p.Create(id, size, thick)
		m.maybe = false
		switch {
		case err == nil:
			m.live = true
		case errors.Is(err, syscall.ENOSPC) && thick:
			delete(cm.vols, id)
		default:
			t.Fatalf("Create %s: %v", id, err)
		}
	}
	live := func() []*mvol {
		var out []*mvol
		for _, id := range slices.Sorted(maps.Keys(cm.vols)) {
			if cm.vols[id].live {
				out = append(out, cm.vols[id])
			}
		}
		return out
	}
	size := func(m *mvol) int64 { return m.sizes[len(m.sizes)-1] }

	create("a", MiB, false)
	create("b", 512*KiB, true)
	names := 0
	for range 160 {
		vs := live()
		m := vs[rng.IntN(len(vs))]
		v, err := p.Volume(m.id)
		if err != nil {
			t.Fatal(err)
		}
		switch r := rng.IntN(100); {
		case r < 70: // write a block
			blk := uint32(rng.Int64N(size(m) / crashBlock))
			cm.ver++
			mb := m.block(blk)
			mb.pending = append(mb.pending, cm.ver)
			_, err := v.WriteAt(blockData(m.tag, blk, cm.ver), int64(blk)*crashBlock)
			if errors.Is(err, syscall.ENOSPC) {
				mb.pending = mb.pending[:len(mb.pending)-1]
			} else if err != nil {
				t.Fatal(err)
			}
		case r < 82: // sync: the volume's writes are acknowledged
			if err := v.Sync(); err != nil {
				t.Fatal(err)
			}
			for _, mb := range m.blocks {
				if len(mb.pending) > 0 {
					mb.acked, mb.pending = mb.pending[len(mb.pending)-1], nil
				}
			}
		case r < 86:
			e := uint64(rng.IntN(1000))
			m.epochs = append(m.epochs, e)
			if err := v.SetEpoch(e); err != nil {
				t.Fatal(err)
			}
			m.epochs = []uint64{e}
		case r < 90 && !m.thick: // discard some chunks
			cs := int64(64 * KiB)
			first := rng.Int64N(size(m) / cs)
			n := 1 + rng.Int64N(3)
			end := min(size(m), (first+n)*cs)
			var touched []*mblock
			for blk := first * cs / crashBlock; blk < end/crashBlock; blk++ {
				mb := m.block(uint32(blk))
				mb.pending = append(mb.pending, 0)
				touched = append(touched, mb)
			}
			if err := v.Discard(first*cs, end-first*cs); err != nil {
				t.Fatal(err)
			}
			for _, mb := range touched {
				mb.acked, mb.pending = 0, nil
			}
		case r < 93: // grow
			ns := size(m) + int64(1+rng.IntN(4))*crashBlock*8
			m.sizes = append(m.sizes, ns)
			err := p.Resize(m.id, ns)
			switch {
			case err == nil:
				m.sizes = []int64{ns}
			case errors.Is(err, syscall.ENOSPC) && m.thick:
				m.sizes = m.sizes[:1]
			default:
				t.Fatal(err)
			}
		case r < 97: // delete
			if len(vs) == 1 {
				continue
			}
			m.live, m.maybe = false, true
			if err := p.Delete(m.id); err != nil {
				t.Fatal(err)
			}
			m.maybe = false
		default:
			if len(vs) >= 3 {
				continue
			}
			names++
			create(fmt.Sprint("v", names), int64(1+rng.IntN(16))*64*KiB, rng.IntN(3) == 0)
		}
	}
	t.Logf("checked %d power losses and %d during recovery; %d volumes live, %d chunks free", crashes, cm.recoveryCrashes, len(live()), p.Stats().FreeChunks)
}
