package dbbackup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// HeaderSize is the size of a slot's header: one sector.
const HeaderSize = 512

// Version is the only image version this code writes and reads.
const Version byte = 1

var magic = [8]byte{'M', 'V', 'D', 'B', 'S', 'N', 'A', 'P'}

// Errors of reading an image.
var (
	// ErrNoImage: the slot holds no image (a blank or foreign volume).
	ErrNoImage = errors.New("dbbackup: no snapshot image")
	// ErrCorrupt: the slot's header or payload does not check out.
	ErrCorrupt = errors.New("dbbackup: corrupt snapshot image")
	// ErrVersion: an image of a version this code does not read.
	ErrVersion = errors.New("dbbackup: unknown snapshot image version")
	// ErrTooBig: the snapshot does not fit in a slot of the volume.
	ErrTooBig = errors.New("dbbackup: snapshot larger than a slot of the volume")
)

// MaxWriter bounds Header.Writer.
const MaxWriter = 64

// Header describes one image.
type Header struct {
	// Index and Term are the raft snapshot's.
	Index, Term uint64
	// Length is the payload's length in bytes.
	Length uint64
	// At is when it was written.
	At time.Time
	// Writer is the controller replica that wrote it.
	Writer string
	// Sum is the SHA-256 of the payload.
	Sum [32]byte
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Layout of the header (big-endian):
//
//	0   magic "MVDBSNAP"
//	8   version (1)
//	9   reserved, zero (7)
//	16  index (8)
//	24  term (8)
//	32  length (8)
//	40  at, Unix nanoseconds (8)
//	48  sha256 of the payload (32)
//	80  writer length (1), writer (up to 64)
//	145 zero up to 508
//	508 CRC-32C of bytes 0..507 (4)
const (
	offVersion = 8
	offIndex   = 16
	offTerm    = 24
	offLength  = 32
	offAt      = 40
	offSum     = 48
	offWriter  = 80
	offCRC     = HeaderSize - 4
)

// MarshalBinary encodes the header in its 512 bytes.
func (h Header) MarshalBinary() ([]byte, error) {
	if len(h.Writer) > MaxWriter {
		return nil, fmt.Errorf("dbbackup: writer %q is longer than %d bytes", h.Writer, MaxWriter)
	}
	b := make([]byte, HeaderSize)
	copy(b, magic[:])
	b[offVersion] = Version
	binary.BigEndian.PutUint64(b[offIndex:], h.Index)
	binary.BigEndian.PutUint64(b[offTerm:], h.Term)
	binary.BigEndian.PutUint64(b[offLength:], h.Length)
	binary.BigEndian.PutUint64(b[offAt:], uint64(h.At.UnixNano()))
	copy(b[offSum:], h.Sum[:])
	b[offWriter] = byte(len(h.Writer))
	copy(b[offWriter+1:], h.Writer)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], crcTable))
	return b, nil
}

// UnmarshalBinary decodes a header: ErrNoImage without the magic,
// io.ErrUnexpectedEOF when short, ErrVersion, ErrCorrupt for a bad CRC or
// a reserved byte that is not zero.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("dbbackup: header of %d bytes: %w", len(b), io.ErrUnexpectedEOF)
	}
	b = b[:HeaderSize]
	if !bytes.Equal(b[:8], magic[:]) {
		return ErrNoImage
	}
	if b[offVersion] != Version {
		return fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, b[offVersion], Version)
	}
	if got, want := crc32.Checksum(b[:offCRC], crcTable), binary.BigEndian.Uint32(b[offCRC:]); got != want {
		return fmt.Errorf("%w: header CRC %08x, want %08x", ErrCorrupt, got, want)
	}
	n := int(b[offWriter])
	if n > MaxWriter {
		return fmt.Errorf("%w: writer length %d above %d", ErrCorrupt, n, MaxWriter)
	}
	for _, r := range [][]byte{b[offVersion+1 : offIndex], b[offWriter+1+n : offCRC]} {
		if !isZero(r) {
			return fmt.Errorf("%w: reserved bytes are not zero", ErrCorrupt)
		}
	}
	*h = Header{
		Index:  binary.BigEndian.Uint64(b[offIndex:]),
		Term:   binary.BigEndian.Uint64(b[offTerm:]),
		Length: binary.BigEndian.Uint64(b[offLength:]),
		At:     time.Unix(0, int64(binary.BigEndian.Uint64(b[offAt:]))).UTC(),
		Writer: string(b[offWriter+1 : offWriter+1+n]),
	}
	copy(h.Sum[:], b[offSum:])
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// slotSize is the room of each of the two slots of a volume of size bytes,
// header included, in whole sectors.
func slotSize(size int64) int64 { return size / 2 / HeaderSize * HeaderSize }

// slotOffset is where slot i (0 or 1) begins.
func slotOffset(i int, size int64) int64 { return int64(i) * slotSize(size) }

// readSlot reads and checks slot i of a volume of size bytes.
func readSlot(r io.ReaderAt, size int64, i int) (Header, []byte, error) {
	off := slotOffset(i, size)
	hb := make([]byte, HeaderSize)
	if _, err := r.ReadAt(hb, off); err != nil {
		return Header{}, nil, fmt.Errorf("dbbackup: reading slot %d header: %w", i, err)
	}
	var h Header
	if err := h.UnmarshalBinary(hb); err != nil {
		return Header{}, nil, fmt.Errorf("slot %d: %w", i, err)
	}
	if h.Length > uint64(slotSize(size)-HeaderSize) {
		return Header{}, nil, fmt.Errorf("%w: slot %d: payload of %d bytes does not fit its %d", ErrCorrupt, i, h.Length, slotSize(size)-HeaderSize)
	}
	p := make([]byte, h.Length)
	if _, err := r.ReadAt(p, off+HeaderSize); err != nil {
		return Header{}, nil, fmt.Errorf("dbbackup: reading slot %d payload: %w", i, err)
	}
	if sha256.Sum256(p) != h.Sum {
		return Header{}, nil, fmt.Errorf("%w: slot %d: payload SHA-256 does not match its header (a copy cut short?)", ErrCorrupt, i)
	}
	return h, p, nil
}

// newer reports whether a is a later image than b.
func newer(a, b Header) bool {
	if a.Index != b.Index {
		return a.Index > b.Index
	}
	return a.At.After(b.At)
}

// ReadLatest returns the newest image of a volume of size bytes whose
// header and payload check out. When neither slot holds one the error
// says why for each (ErrNoImage for a blank volume).
func ReadLatest(r io.ReaderAt, size int64) (Header, []byte, error) {
	var (
		best  Header
		data  []byte
		found bool
		errs  []error
	)
	for i := range 2 {
		h, p, err := readSlot(r, size, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !found || newer(h, best) {
			best, data, found = h, p, true
		}
	}
	if !found {
		if errors.Is(errs[0], ErrNoImage) && errors.Is(errs[1], ErrNoImage) {
			return Header{}, nil, ErrNoImage
		}
		return Header{}, nil, errors.Join(errs...)
	}
	return best, data, nil
}

// Write writes payload as an image with h's index, term, time and writer
// to the slot of w (a volume of size bytes) not holding the newest valid
// image: payload first, header last. It returns the slot written.
func Write(rw interface {
	io.ReaderAt
	io.WriterAt
}, size int64, h Header, payload []byte) (int, error) {
	if int64(len(payload)) > slotSize(size)-HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, a slot of this %d-byte volume takes %d", ErrTooBig, len(payload), size, slotSize(size)-HeaderSize)
	}
	slot := 0
	var newest Header
	have := false
	for i := range 2 {
		if sh, _, err := readSlot(rw, size, i); err == nil && (!have || newer(sh, newest)) {
			newest, have, slot = sh, true, 1-i
		}
	}
	h.Length, h.Sum = uint64(len(payload)), sha256.Sum256(payload)
	hb, err := h.MarshalBinary()
	if err != nil {
		return 0, err
	}
	off := slotOffset(slot, size)
	// The payload padded to whole sectors.
	padded := make([]byte, (len(payload)+HeaderSize-1)/HeaderSize*HeaderSize)
	copy(padded, payload)
	if _, err := rw.WriteAt(padded, off+HeaderSize); err != nil {
		return 0, fmt.Errorf("dbbackup: writing slot %d payload: %w", slot, err)
	}
	if f, ok := rw.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return 0, fmt.Errorf("dbbackup: flushing slot %d payload: %w", slot, err)
		}
	}
	if _, err := rw.WriteAt(hb, off); err != nil {
		return 0, fmt.Errorf("dbbackup: writing slot %d header: %w", slot, err)
	}
	return slot, nil
}
