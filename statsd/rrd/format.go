package rrd

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The file format (all integers little endian; docs/rrd.md has the
// picture):
//
//	header   at 0, padded to a 4 KiB boundary; written once at create
//	slot A   at headerSize, slotSize bytes
//	slot B   at headerSize+slotSize
//	rows     at dataOffset: each archive's ring, row-major, float64 per DS
//
// A slot holds the whole State plus the rows its commit wrote (a redo
// log), under a generation number and a CRC-32C. Commits alternate slots,
// so a torn slot write leaves the other, older slot intact.

var (
	fileMagic  = [8]byte{'M', 'V', 'R', 'R', 'D', 0, '\r', '\n'}
	slotMagic  = [4]byte{'S', 'L', 'O', 'T'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

const (
	formatVersion = 1
	pageSize      = 4096
	dsDefSize     = 48
	rraDefSize    = 32
	headerFixed   = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8 + 8 // magic … redoBytes
	slotHeader    = 4 + 4 + 8 + 4 + 4                 // magic, reserved, gen, payload length, crc
	// DefaultRedoRows is the redo room in each state slot when none is
	// given: the rows one commit (or checkpoint) may write to a file
	// before it falls back to rewriting the whole file.
	DefaultRedoRows = 128
)

// layout is where things are in a file of a given Spec.
type layout struct {
	headerSize int64
	slotSize   int64
	redoBytes  int64
	dataOffset int64
	rraOffset  []int64 // per RRA, absolute
	fileSize   int64
}

func alignPage(n int64) int64 { return (n + pageSize - 1) / pageSize * pageSize }

func (s *Spec) stateFixedSize() int64 {
	nds, nrra := int64(len(s.DS)), int64(len(s.RRA))
	return 16 + nds*40 + nrra*nds*32 + nrra*8 + 8
}

func (s *Spec) redoEntrySize() int64 { return 16 + 8*int64(len(s.DS)) }

// defaultRedoBytes is DefaultRedoRows rows of this definition.
func (s *Spec) defaultRedoBytes() int64 { return DefaultRedoRows * s.redoEntrySize() }

func (s *Spec) layout(redoBytes int64) layout {
	var l layout
	l.headerSize = alignPage(headerFixed + int64(len(s.DS))*dsDefSize + int64(len(s.RRA))*rraDefSize + 4)
	l.redoBytes = redoBytes
	l.slotSize = alignPage(slotHeader + s.stateFixedSize() + redoBytes)
	l.dataOffset = l.headerSize + 2*l.slotSize
	off := l.dataOffset
	for _, a := range s.RRA {
		l.rraOffset = append(l.rraOffset, off)
		off += int64(a.Rows) * int64(len(s.DS)) * 8
	}
	l.fileSize = off
	return l
}

// redoCap is how many rows fit a slot's redo log.
func (s *Spec) redoCap(l layout) int { return int(l.redoBytes / s.redoEntrySize()) }

// header is the immutable first block of a file.
type header struct {
	Spec      Spec
	RedoBytes int64
}

// MarshalBinary encodes the header, padded to its page.
func (h header) MarshalBinary() ([]byte, error) {
	if err := h.Spec.Validate(); err != nil {
		return nil, err
	}
	l := h.Spec.layout(h.RedoBytes)
	b := make([]byte, l.headerSize)
	h.marshal(b, l)
	return b, nil
}

func (h header) marshal(b []byte, l layout) {
	s := &h.Spec
	le := binary.LittleEndian
	copy(b, fileMagic[:])
	le.PutUint32(b[8:], formatVersion)
	le.PutUint32(b[12:], 0) // flags
	le.PutUint64(b[16:], s.Step)
	le.PutUint32(b[24:], uint32(len(s.DS)))
	le.PutUint32(b[28:], uint32(len(s.RRA)))
	le.PutUint64(b[32:], uint64(l.slotSize))
	le.PutUint64(b[40:], uint64(l.dataOffset))
	le.PutUint64(b[48:], uint64(h.RedoBytes))
	p := b[headerFixed:]
	for _, d := range s.DS {
		copy(p[:20], d.Name)
		p[20] = byte(d.Type)
		le.PutUint64(p[24:], d.Heartbeat)
		le.PutUint64(p[32:], math.Float64bits(d.Min))
		le.PutUint64(p[40:], math.Float64bits(d.Max))
		p = p[dsDefSize:]
	}
	for _, a := range s.RRA {
		p[0] = byte(a.CF)
		le.PutUint64(p[8:], math.Float64bits(a.XFF))
		le.PutUint64(p[16:], a.Steps)
		le.PutUint64(p[24:], a.Rows)
		p = p[rraDefSize:]
	}
	n := len(b) - len(p)
	le.PutUint32(p, crc32.Checksum(b[:n], castagnoli))
}

// UnmarshalBinary decodes a header from the start of b.
func (h *header) UnmarshalBinary(b []byte) error {
	le := binary.LittleEndian
	if len(b) < headerFixed {
		return io.ErrUnexpectedEOF
	}
	if [8]byte(b[:8]) != fileMagic {
		return fmt.Errorf("%w: not an mvstack RRD file (magic %q)", ErrCorrupt, b[:8])
	}
	if v := le.Uint32(b[8:]); v != formatVersion {
		return fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, v, formatVersion)
	}
	if f := le.Uint32(b[12:]); f != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, f)
	}
	nds, nrra := int(le.Uint32(b[24:])), int(le.Uint32(b[28:]))
	if nds < 1 || nds > MaxDS || nrra < 1 || nrra > MaxRRA {
		return fmt.Errorf("%w: %d data sources, %d archives", ErrCorrupt, nds, nrra)
	}
	end := headerFixed + nds*dsDefSize + nrra*rraDefSize
	if len(b) < end+4 {
		return io.ErrUnexpectedEOF
	}
	if got, want := crc32.Checksum(b[:end], castagnoli), le.Uint32(b[end:]); got != want {
		return fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	s := Spec{Step: le.Uint64(b[16:])}
	p := b[headerFixed:]
	for i := 0; i < nds; i++ {
		name := p[:20]
		n := 0
		for n < 20 && name[n] != 0 {
			n++
		}
		for _, c := range name[n:] {
			if c != 0 {
				return fmt.Errorf("%w: DS %d name not NUL-padded", ErrCorrupt, i)
			}
		}
		if p[21] != 0 || p[22] != 0 || p[23] != 0 {
			return fmt.Errorf("%w: DS %d reserved bytes", ErrCorrupt, i)
		}
		s.DS = append(s.DS, DS{
			Name: string(name[:n]), Type: DSType(p[20]), Heartbeat: le.Uint64(p[24:]),
			Min: math.Float64frombits(le.Uint64(p[32:])), Max: math.Float64frombits(le.Uint64(p[40:])),
		})
		p = p[dsDefSize:]
	}
	for i := 0; i < nrra; i++ {
		for _, c := range p[1:8] {
			if c != 0 {
				return fmt.Errorf("%w: RRA %d reserved bytes", ErrCorrupt, i)
			}
		}
		s.RRA = append(s.RRA, RRA{CF: CF(p[0]), XFF: math.Float64frombits(le.Uint64(p[8:])), Steps: le.Uint64(p[16:]), Rows: le.Uint64(p[24:])})
		p = p[rraDefSize:]
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	redo := int64(le.Uint64(b[48:]))
	if redo < 0 || redo > 1<<30 {
		return fmt.Errorf("%w: redo room %d", ErrCorrupt, redo)
	}
	l := s.layout(redo)
	if int64(le.Uint64(b[32:])) != l.slotSize || int64(le.Uint64(b[40:])) != l.dataOffset {
		return fmt.Errorf("%w: layout does not match the definition", ErrCorrupt)
	}
	h.Spec, h.RedoBytes = s, redo
	return nil
}

// redoRow is one row a commit writes.
type redoRow struct {
	rra  int
	row  uint64
	vals []float64
}

// slot is one state copy: generation, State and the commit's rows.
type slot struct {
	Gen   uint64
	State State
	Redo  []redoRow
}

// marshalSlot encodes sl into b (len slotSize); it returns the bytes used.
func (s *Spec) marshalSlot(b []byte, sl *slot) int {
	le := binary.LittleEndian
	nds := len(s.DS)
	p := b[slotHeader:]
	st := &sl.State
	le.PutUint64(p[0:], uint64(st.LastUp.Sec))
	le.PutUint64(p[8:], uint64(st.LastUp.Usec))
	p = p[16:]
	for _, d := range st.PDP {
		v := d.LastDS
		p[0] = byte(v.kind)
		p[1] = 0
		if v.neg {
			p[1] = 1
		}
		clear(p[2:8])
		le.PutUint64(p[8:], v.mag)
		le.PutUint64(p[16:], math.Float64bits(v.f))
		le.PutUint64(p[24:], math.Float64bits(d.Value))
		le.PutUint64(p[32:], d.UnknownSec)
		p = p[40:]
	}
	for _, c := range st.CDP {
		le.PutUint64(p[0:], math.Float64bits(c.Value))
		le.PutUint64(p[8:], c.UnknownPDP)
		le.PutUint64(p[16:], math.Float64bits(c.Primary))
		le.PutUint64(p[24:], math.Float64bits(c.Secondary))
		p = p[32:]
	}
	for _, r := range st.CurRow {
		le.PutUint64(p, r)
		p = p[8:]
	}
	le.PutUint64(p, uint64(len(sl.Redo)))
	p = p[8:]
	for _, r := range sl.Redo {
		le.PutUint32(p[0:], uint32(r.rra))
		le.PutUint32(p[4:], 0)
		le.PutUint64(p[8:], r.row)
		for j := 0; j < nds; j++ {
			le.PutUint64(p[16+8*j:], math.Float64bits(r.vals[j]))
		}
		p = p[16+8*nds:]
	}
	n := len(b) - len(p)
	copy(b, slotMagic[:])
	le.PutUint32(b[4:], 0)
	le.PutUint64(b[8:], sl.Gen)
	le.PutUint32(b[16:], uint32(n-slotHeader))
	le.PutUint32(b[20:], crc32.Checksum(b[8:20], castagnoli)^crc32.Checksum(b[slotHeader:n], castagnoli))
	return n
}

// unmarshalSlot decodes a slot; a torn or never-written slot is ErrCorrupt.
func (s *Spec) unmarshalSlot(b []byte) (*slot, error) {
	le := binary.LittleEndian
	if len(b) < slotHeader {
		return nil, io.ErrUnexpectedEOF
	}
	if [4]byte(b[:4]) != slotMagic || le.Uint32(b[4:]) != 0 {
		return nil, fmt.Errorf("%w: state slot magic", ErrCorrupt)
	}
	n := int64(le.Uint32(b[16:]))
	if n > int64(len(b)-slotHeader) {
		return nil, fmt.Errorf("%w: state slot length %d", ErrCorrupt, n)
	}
	payload := b[slotHeader : slotHeader+n]
	if got, want := crc32.Checksum(b[8:20], castagnoli)^crc32.Checksum(payload, castagnoli), le.Uint32(b[20:]); got != want {
		return nil, fmt.Errorf("%w: state slot checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	nds, nrra := len(s.DS), len(s.RRA)
	if n < s.stateFixedSize() {
		return nil, fmt.Errorf("%w: state slot too short", ErrCorrupt)
	}
	sl := &slot{Gen: le.Uint64(b[8:])}
	st := &sl.State
	p := payload
	st.LastUp = Time{Sec: int64(le.Uint64(p[0:])), Usec: int64(le.Uint64(p[8:]))}
	if st.LastUp.Usec < 0 || st.LastUp.Usec > 999999 {
		return nil, fmt.Errorf("%w: last update microseconds %d", ErrCorrupt, st.LastUp.Usec)
	}
	p = p[16:]
	st.PDP = make([]PDPPrep, nds)
	for i := range st.PDP {
		k := valueKind(p[0])
		if k > kindInt || p[1] > 1 {
			return nil, fmt.Errorf("%w: DS %d last value kind", ErrCorrupt, i)
		}
		for _, c := range p[2:8] {
			if c != 0 {
				return nil, fmt.Errorf("%w: DS %d reserved bytes", ErrCorrupt, i)
			}
		}
		st.PDP[i] = PDPPrep{
			LastDS:     Value{kind: k, neg: p[1] == 1, mag: le.Uint64(p[8:]), f: math.Float64frombits(le.Uint64(p[16:]))},
			Value:      math.Float64frombits(le.Uint64(p[24:])),
			UnknownSec: le.Uint64(p[32:]),
		}
		p = p[40:]
	}
	st.CDP = make([]CDPPrep, nrra*nds)
	for i := range st.CDP {
		st.CDP[i] = CDPPrep{
			Value: math.Float64frombits(le.Uint64(p[0:])), UnknownPDP: le.Uint64(p[8:]),
			Primary: math.Float64frombits(le.Uint64(p[16:])), Secondary: math.Float64frombits(le.Uint64(p[24:])),
		}
		p = p[32:]
	}
	st.CurRow = make([]uint64, nrra)
	for i := range st.CurRow {
		st.CurRow[i] = le.Uint64(p)
		if st.CurRow[i] >= s.RRA[i].Rows {
			return nil, fmt.Errorf("%w: RRA %d current row %d of %d", ErrCorrupt, i, st.CurRow[i], s.RRA[i].Rows)
		}
		p = p[8:]
	}
	count := le.Uint64(p)
	p = p[8:]
	es := uint64(s.redoEntrySize())
	if count > uint64(len(p))/es || uint64(len(p)) != count*es {
		return nil, fmt.Errorf("%w: redo log of %d rows in %d bytes", ErrCorrupt, count, len(p))
	}
	vals := make([]float64, int(count)*nds)
	for k := 0; k < int(count); k++ {
		r := redoRow{rra: int(le.Uint32(p[0:])), row: le.Uint64(p[8:]), vals: vals[k*nds : (k+1)*nds]}
		if r.rra >= nrra || le.Uint32(p[4:]) != 0 || r.row >= s.RRA[r.rra].Rows {
			return nil, fmt.Errorf("%w: redo row %d", ErrCorrupt, k)
		}
		for j := range r.vals {
			r.vals[j] = math.Float64frombits(le.Uint64(p[16+8*j:]))
		}
		sl.Redo = append(sl.Redo, r)
		p = p[es:]
	}
	return sl, nil
}
