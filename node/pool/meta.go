package pool

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"unicode"
	"unicode/utf8"
)

// Every metadata block is blockSize bytes and starts with a header:
//
//	[0:4]   magic "MVPL"
//	[4]     block type (super, volume record, chunk table block)
//	[5]     format version
//	[6:8]   reserved, zero
//	[8:12]  crc32c (Castagnoli) of the whole block with these 4 bytes zero
//	[12:16] reserved, zero
//	[16:24] sequence number, grows by one at every rewrite of the block
//	[24:32] index of the block in its table (slot or table block number)
//
// A block of all zero bytes is a valid blank block with sequence 0: a
// freshly formatted table is blank without being written.
const (
	blockSize  = 4096
	headerLen  = 32
	version    = 1
	blankSpan  = 64 << 10 // IsBlank and Format look at this much
	maxIDLen   = 128
	entryLen   = 16
	perBlock   = (blockSize - headerLen) / entryLen // chunk entries per table block
	superCopy0 = 0
	volTableAt = 2 * blockSize // the volume table follows the two superblock copies

	minChunkSize     = 64 << 10
	maxChunkSize     = 1 << 30
	defaultChunkSize = 1 << 20
	defaultVolumes   = 256
	maxVolumes       = 1 << 16
	// maxVolumeChunks bounds a volume's logical chunk count so that chunk
	// numbers fit the in-memory map (uint32) with room to spare.
	maxVolumeChunks = 1 << 31
	// maxChunks bounds the physical chunks of one pool (uint32 map values,
	// 0 meaning unmapped).
	maxChunks = 1<<32 - 2
)

var magic = [4]byte{'M', 'V', 'P', 'L'}

type blockType uint8

const (
	typeSuper  blockType = 1
	typeVolume blockType = 2
	typeChunks blockType = 3
)

func (t blockType) String() string {
	switch t {
	case typeSuper:
		return "superblock"
	case typeVolume:
		return "volume record"
	case typeChunks:
		return "chunk table block"
	}
	return fmt.Sprintf("block type %d", uint8(t))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sealBlock fills in the header of b (blockSize bytes whose payload is set)
// and its checksum.
func sealBlock(b []byte, t blockType, seq, index uint64) {
	copy(b[0:4], magic[:])
	b[4] = byte(t)
	b[5] = version
	clear(b[6:16])
	binary.LittleEndian.PutUint64(b[16:24], seq)
	binary.LittleEndian.PutUint64(b[24:32], index)
	binary.LittleEndian.PutUint32(b[8:12], blockCRC(b))
}

func blockCRC(b []byte) uint32 {
	h := crc32.Update(0, castagnoli, b[:8])
	h = crc32.Update(h, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(h, castagnoli, b[12:])
}

// openBlock checks the header of b. It returns the block's sequence number
// and whether the block is blank (all zero).
func openBlock(b []byte, t blockType, index uint64) (seq uint64, blank bool, err error) {
	if len(b) != blockSize {
		return 0, false, fmt.Errorf("%v of %d bytes, want %d: %w", t, len(b), blockSize, io.ErrUnexpectedEOF)
	}
	if allZero(b) {
		return 0, true, nil
	}
	if !bytes.Equal(b[0:4], magic[:]) {
		return 0, false, fmt.Errorf("%v: magic %q, want %q: %w", t, b[0:4], magic[:], errNoMagic)
	}
	if b[5] != version {
		return 0, false, fmt.Errorf("%v: format version %d, this build reads %d: %w", t, b[5], version, ErrVersion)
	}
	if got, want := binary.LittleEndian.Uint32(b[8:12]), blockCRC(b); got != want {
		return 0, false, fmt.Errorf("%v: checksum %#08x, computed %#08x (torn or damaged): %w", t, got, want, ErrCorrupt)
	}
	if blockType(b[4]) != t {
		return 0, false, fmt.Errorf("%v: holds a %v: %w", t, blockType(b[4]), ErrCorrupt)
	}
	if !allZero(b[6:8]) || !allZero(b[12:16]) {
		return 0, false, fmt.Errorf("%v: reserved header bytes set: %w", t, ErrCorrupt)
	}
	seq = binary.LittleEndian.Uint64(b[16:24])
	if got := binary.LittleEndian.Uint64(b[24:32]); got != index {
		return 0, false, fmt.Errorf("%v: says it is number %d, found at number %d: %w", t, got, index, ErrCorrupt)
	}
	if seq == 0 {
		return 0, false, fmt.Errorf("%v: sequence 0 in a written block: %w", t, ErrCorrupt)
	}
	return seq, false, nil
}

// superblock describes a pool. It is written once, by Format, in two
// copies; everything in it follows from ChunkSize, MaxVolumes and Chunks
// (see layoutFor), which Open checks.
type superblock struct {
	UUID       [16]byte
	ChunkSize  int64
	PoolSize   int64 // bytes of the drive the pool uses: DataOff + Chunks*ChunkSize
	Chunks     int64
	MaxVolumes int
	VolTable   int64
	ChunkTable int64
	DataOff    int64
}

// superblock payload:
//
//	[32:48]  uuid
//	[48:56]  chunk size
//	[56:64]  pool size
//	[64:72]  chunks
//	[72:76]  volume table slots
//	[76:80]  reserved
//	[80:88]  volume table offset
//	[88:96]  chunk table offset
//	[96:104] data offset
//	rest zero
func (s superblock) marshal(copyNo uint64) []byte {
	b := make([]byte, blockSize)
	copy(b[32:48], s.UUID[:])
	binary.LittleEndian.PutUint64(b[48:56], uint64(s.ChunkSize))
	binary.LittleEndian.PutUint64(b[56:64], uint64(s.PoolSize))
	binary.LittleEndian.PutUint64(b[64:72], uint64(s.Chunks))
	binary.LittleEndian.PutUint32(b[72:76], uint32(s.MaxVolumes))
	binary.LittleEndian.PutUint64(b[80:88], uint64(s.VolTable))
	binary.LittleEndian.PutUint64(b[88:96], uint64(s.ChunkTable))
	binary.LittleEndian.PutUint64(b[96:104], uint64(s.DataOff))
	sealBlock(b, typeSuper, 1, copyNo)
	return b
}

func unmarshalSuper(b []byte, copyNo uint64) (superblock, error) {
	var s superblock
	_, blank, err := openBlock(b, typeSuper, copyNo)
	if err != nil {
		return s, err
	}
	if blank {
		return s, fmt.Errorf("superblock copy %d is blank: %w", copyNo, errNoMagic)
	}
	copy(s.UUID[:], b[32:48])
	cs := binary.LittleEndian.Uint64(b[48:56])
	ps := binary.LittleEndian.Uint64(b[56:64])
	n := binary.LittleEndian.Uint64(b[64:72])
	mv := binary.LittleEndian.Uint32(b[72:76])
	if !allZero(b[76:80]) || !allZero(b[104:]) {
		return s, fmt.Errorf("superblock: reserved bytes set: %w", ErrCorrupt)
	}
	if err := checkChunkSize(int64(min(cs, 1<<62))); err != nil {
		return s, fmt.Errorf("superblock: %w: %w", err, ErrCorrupt)
	}
	if mv < 1 || mv > maxVolumes {
		return s, fmt.Errorf("superblock: %d volume slots, want 1 to %d: %w", mv, maxVolumes, ErrCorrupt)
	}
	if n < 1 || n > maxChunks {
		return s, fmt.Errorf("superblock: %d chunks, want 1 to %d: %w", n, uint64(maxChunks), ErrCorrupt)
	}
	want := layoutFor(int64(cs), int(mv), int64(n))
	s.ChunkSize, s.PoolSize, s.Chunks, s.MaxVolumes = int64(cs), int64(ps), int64(n), int(mv)
	s.VolTable = int64(binary.LittleEndian.Uint64(b[80:88]))
	s.ChunkTable = int64(binary.LittleEndian.Uint64(b[88:96]))
	s.DataOff = int64(binary.LittleEndian.Uint64(b[96:104]))
	want.UUID = s.UUID
	if s != want {
		return s, fmt.Errorf("superblock: layout (tables at %d and %d, data at %d, %d bytes) differs from the one its chunk size, slots and chunks give (%d, %d, %d, %d bytes): %w",
			s.VolTable, s.ChunkTable, s.DataOff, s.PoolSize, want.VolTable, want.ChunkTable, want.DataOff, want.PoolSize, ErrCorrupt)
	}
	return s, nil
}

func checkChunkSize(cs int64) error {
	if cs < minChunkSize || cs > maxChunkSize || bits.OnesCount64(uint64(cs)) != 1 {
		return fmt.Errorf("chunk size %d: want a power of two from %d to %d: %w", cs, minChunkSize, maxChunkSize, ErrInvalid)
	}
	return nil
}

// chunkBlocks is the number of chunk table blocks for n chunks.
func chunkBlocks(n int64) int64 { return (n + perBlock - 1) / perBlock }

// layoutFor places the tables and the data area of a pool. Every table
// block has two copies side by side (see writeBlock).
func layoutFor(chunkSize int64, slots int, chunks int64) superblock {
	s := superblock{ChunkSize: chunkSize, Chunks: chunks, MaxVolumes: slots}
	s.VolTable = volTableAt
	s.ChunkTable = s.VolTable + int64(slots)*2*blockSize
	end := s.ChunkTable + chunkBlocks(chunks)*2*blockSize
	s.DataOff = (end + chunkSize - 1) &^ (chunkSize - 1)
	s.PoolSize = s.DataOff + chunks*chunkSize
	return s
}

// fitLayout finds the largest pool that fits size bytes.
func fitLayout(size, chunkSize int64, slots int) (superblock, bool) {
	meta := int64(volTableAt) + int64(slots)*2*blockSize
	if size <= meta {
		return superblock{}, false
	}
	n := min((size-meta)/chunkSize, maxChunks)
	for ; n > 0; n-- {
		if s := layoutFor(chunkSize, slots, n); s.PoolSize <= size {
			return s, true
		}
	}
	return superblock{}, false
}

// Volume record states.
const (
	stateFree     = 0
	stateActive   = 1
	stateCreating = 2 // a thick volume whose chunks are being taken: rolled back by Open
	stateDeleting = 3 // being deleted: finished by Open
)

const (
	flagThick  = 1 << 0
	flagInSync = 1 << 1
	flagsKnown = flagThick | flagInSync
)

// volRecord is one slot of the volume table.
//
//	[32]     state
//	[33]     flags: 1 thick, 2 in sync
//	[34:36]  id length
//	[36:40]  reserved
//	[40:48]  serial: unique per volume in the pool; chunk entries name it
//	[48:56]  size in bytes
//	[56:64]  epoch
//	[64:192] id
//	rest zero
type volRecord struct {
	State  uint8
	Thick  bool
	InSync bool
	Serial uint64
	Size   int64
	Epoch  uint64
	ID     string
}

func (r volRecord) marshal(seq, slot uint64) []byte {
	b := make([]byte, blockSize)
	b[32] = r.State
	if r.Thick {
		b[33] |= flagThick
	}
	if r.InSync {
		b[33] |= flagInSync
	}
	binary.LittleEndian.PutUint16(b[34:36], uint16(len(r.ID)))
	binary.LittleEndian.PutUint64(b[40:48], r.Serial)
	binary.LittleEndian.PutUint64(b[48:56], uint64(r.Size))
	binary.LittleEndian.PutUint64(b[56:64], r.Epoch)
	copy(b[64:64+maxIDLen], r.ID)
	sealBlock(b, typeVolume, seq, slot)
	return b
}

func unmarshalVolRecord(b []byte, slot uint64) (volRecord, uint64, error) {
	var r volRecord
	seq, blank, err := openBlock(b, typeVolume, slot)
	if err != nil || blank {
		return r, seq, err
	}
	r.State = b[32]
	flags := b[33]
	idLen := int(binary.LittleEndian.Uint16(b[34:36]))
	r.Serial = binary.LittleEndian.Uint64(b[40:48])
	size := binary.LittleEndian.Uint64(b[48:56])
	r.Epoch = binary.LittleEndian.Uint64(b[56:64])
	bad := func(format string, a ...any) (volRecord, uint64, error) {
		return volRecord{}, 0, fmt.Errorf("volume record %d: %s: %w", slot, fmt.Sprintf(format, a...), ErrCorrupt)
	}
	if !allZero(b[36:40]) || !allZero(b[64+maxIDLen:]) {
		return bad("reserved bytes set")
	}
	if flags&^flagsKnown != 0 {
		return bad("unknown flags %#x", flags)
	}
	r.Thick, r.InSync = flags&flagThick != 0, flags&flagInSync != 0
	if r.State == stateFree {
		if !allZero(b[33:]) {
			return bad("free record with contents")
		}
		return r, seq, nil
	}
	if r.State > stateDeleting {
		return bad("unknown state %d", r.State)
	}
	if idLen > maxIDLen || !allZero(b[64+idLen:64+maxIDLen]) {
		return bad("id length %d with %d bytes of id", idLen, maxIDLen)
	}
	r.ID = string(b[64 : 64+idLen])
	if err := checkID(r.ID); err != nil {
		return bad("%v", err)
	}
	if r.Serial == 0 {
		return bad("serial 0")
	}
	if size > 1<<62 {
		return bad("size %d", size)
	}
	r.Size = int64(size)
	if r.Size == 0 || r.Size%512 != 0 {
		return bad("size %d is not a positive multiple of 512", size)
	}
	return r, seq, nil
}

// entry is a chunk table entry: which volume (by serial) owns a physical
// chunk and at which logical chunk of the volume. Serial 0 is free.
//
//	[0:8]  serial
//	[8:16] logical chunk
type entry struct {
	Serial  uint64
	Logical uint64
}

// marshalChunkBlock encodes the entries of chunk table block number blk.
func marshalChunkBlock(es []entry, seq, blk uint64) []byte {
	b := make([]byte, blockSize)
	for i, e := range es {
		o := headerLen + i*entryLen
		binary.LittleEndian.PutUint64(b[o:], e.Serial)
		binary.LittleEndian.PutUint64(b[o+8:], e.Logical)
	}
	sealBlock(b, typeChunks, seq, blk)
	return b
}

// unmarshalChunkBlock decodes block number blk holding n entries (the
// rest must be zero).
func unmarshalChunkBlock(b []byte, blk uint64, n int) ([]entry, uint64, error) {
	seq, _, err := openBlock(b, typeChunks, blk)
	if err != nil {
		return nil, 0, err
	}
	if n < 0 || n > perBlock {
		return nil, 0, fmt.Errorf("chunk table block %d: %d entries, at most %d fit: %w", blk, n, perBlock, ErrInvalid)
	}
	es := make([]entry, n)
	for i := range es {
		o := headerLen + i*entryLen
		es[i] = entry{binary.LittleEndian.Uint64(b[o:]), binary.LittleEndian.Uint64(b[o+8:])}
		if es[i].Serial == 0 && es[i].Logical != 0 {
			return nil, 0, fmt.Errorf("chunk table block %d entry %d: free with logical chunk %d: %w", blk, i, es[i].Logical, ErrCorrupt)
		}
		if es[i].Logical >= maxVolumeChunks {
			return nil, 0, fmt.Errorf("chunk table block %d entry %d: logical chunk %d beyond any volume: %w", blk, i, es[i].Logical, ErrCorrupt)
		}
	}
	if !allZero(b[headerLen+n*entryLen:]) {
		return nil, 0, fmt.Errorf("chunk table block %d: bytes set past its %d entries: %w", blk, n, ErrCorrupt)
	}
	return es, seq, nil
}

// checkID says what is wrong with a volume id, if anything.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("volume id is empty: %w", ErrInvalid)
	case len(id) > maxIDLen:
		return fmt.Errorf("volume id %.20q… of %d bytes: at most %d: %w", id, len(id), maxIDLen, ErrInvalid)
	case !utf8.ValidString(id):
		return fmt.Errorf("volume id %q is not UTF-8: %w", id, ErrInvalid)
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("volume id %q holds a space or control character: %w", id, ErrInvalid)
		}
	}
	return nil
}
