package statframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Version is the frame version this package writes and reads.
const Version = 1

// HeaderLen is the length of a frame header.
const HeaderLen = 12

// RecordHeaderLen is the length of a record's type and length fields.
const RecordHeaderLen = 3

// MaxDeviceName is the longest VBD device name a record carries.
const MaxDeviceName = 32

// Errors.
var (
	// ErrVersion reports a frame of another version.
	ErrVersion = errors.New("statframe: unknown frame version")
	// ErrMalformed reports a frame that does not decode.
	ErrMalformed = errors.New("statframe: malformed frame")
	// ErrTooBig reports a record that does not fit in an empty frame.
	ErrTooBig = errors.New("statframe: record larger than the frame size")
)

// Type is a record type.
type Type uint8

// Record types, one per metric group of seed 003 §2.6.1.
const (
	TypeHost   Type = 1
	TypePCPU   Type = 2
	TypeNUMA   Type = 3
	TypePool   Type = 4
	TypeDomain Type = 5
	TypeVCPU   Type = 6
	TypeMemory Type = 7
	TypeVIF    Type = 8
	TypeVBD    Type = 9
)

var typeNames = [...]string{TypeHost: "host", TypePCPU: "pcpu", TypeNUMA: "numa", TypePool: "pool",
	TypeDomain: "domain", TypeVCPU: "vcpu", TypeMemory: "memory", TypeVIF: "vif", TypeVBD: "vbd"}

// String names the record type.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Record is one typed record of a frame.
type Record interface {
	// Type is the record's type.
	Type() Type
	// Len is the length of the record's value.
	Len() int
	// marshal writes the value into b, which is Len bytes long.
	marshal(b []byte)
	// unmarshal reads the value from b, at least minLen(Type) bytes.
	unmarshal(b []byte)
}

// Frame is the payload of one stat frame.
type Frame struct {
	// Time is when the sample was taken, in Unix nanoseconds; records
	// without a timestamp of their own (NUMA, pool, domain) are of this
	// time.
	Time    int64
	Records []Record
	// Skipped counts the records of unknown types UnmarshalBinary skipped.
	// MarshalBinary ignores it.
	Skipped int
}

// Len is the length of the marshalled frame.
func (f *Frame) Len() int {
	n := HeaderLen
	for _, r := range f.Records {
		n += RecordHeaderLen + r.Len()
	}
	return n
}

// MarshalBinary encodes the frame.
func (f *Frame) MarshalBinary() ([]byte, error) {
	if len(f.Records) > math.MaxUint16 {
		return nil, fmt.Errorf("%w: %d records, at most 65535", ErrTooBig, len(f.Records))
	}
	for _, r := range f.Records {
		if r.Len() > math.MaxUint16 {
			return nil, fmt.Errorf("%w: %s record of %d bytes", ErrTooBig, r.Type(), r.Len())
		}
	}
	b := make([]byte, f.Len())
	f.marshal(b)
	return b, nil
}

// AppendBinary appends the encoded frame to b.
func (f *Frame) AppendBinary(b []byte) ([]byte, error) {
	out, err := f.MarshalBinary()
	return append(b, out...), err
}

func (f *Frame) marshal(b []byte) {
	putHeader(b, f.Time, len(f.Records))
	off := HeaderLen
	for _, r := range f.Records {
		off += putRecord(b[off:], r)
	}
}

func putHeader(b []byte, t int64, n int) {
	b[0], b[1] = Version, 0
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	binary.BigEndian.PutUint64(b[4:], uint64(t))
}

func putRecord(b []byte, r Record) int {
	n := r.Len()
	b[0] = byte(r.Type())
	binary.BigEndian.PutUint16(b[1:], uint16(n))
	r.marshal(b[RecordHeaderLen : RecordHeaderLen+n])
	return RecordHeaderLen + n
}

// UnmarshalBinary decodes a frame. It fails with io.ErrUnexpectedEOF on
// short input, ErrVersion for another version and ErrMalformed otherwise.
func (f *Frame) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return io.ErrUnexpectedEOF
	}
	if b[0] != Version {
		return fmt.Errorf("%w %d", ErrVersion, b[0])
	}
	if b[1] != 0 {
		return fmt.Errorf("%w: flags %#02x", ErrMalformed, b[1])
	}
	count := int(binary.BigEndian.Uint16(b[2:]))
	*f = Frame{Time: int64(binary.BigEndian.Uint64(b[4:]))}
	if count > 0 {
		f.Records = make([]Record, 0, min(count, len(b)/RecordHeaderLen))
	}
	off := HeaderLen
	for i := 0; i < count; i++ {
		if len(b)-off < RecordHeaderLen {
			return io.ErrUnexpectedEOF
		}
		t := Type(b[off])
		n := int(binary.BigEndian.Uint16(b[off+1:]))
		off += RecordHeaderLen
		if len(b)-off < n {
			return io.ErrUnexpectedEOF
		}
		val := b[off : off+n]
		off += n
		r := newRecord(t)
		if r == nil {
			f.Skipped++
			continue
		}
		if n < minLen(t) {
			return fmt.Errorf("%w: %s record %d of %d bytes, want at least %d", ErrMalformed, t, i, n, minLen(t))
		}
		if err := checkRecord(t, val); err != nil {
			return fmt.Errorf("%w: %s record %d: %v", ErrMalformed, t, i, err)
		}
		r.unmarshal(val)
		f.Records = append(f.Records, r)
	}
	for _, c := range b[off:] {
		if c != 0 {
			return fmt.Errorf("%w: %d bytes after the last record", ErrMalformed, len(b)-off)
		}
	}
	return nil
}

// Pack packs records into as few frames of at most max bytes each as their
// order allows, every frame stamped with time t, and returns the encoded
// frames. A record that does not fit in an empty frame fails with ErrTooBig.
func Pack(t int64, recs []Record, max int) ([][]byte, error) {
	var out [][]byte
	var cur []byte
	n := 0
	flush := func() {
		if cur != nil {
			binary.BigEndian.PutUint16(cur[2:], uint16(n))
			out = append(out, cur)
			cur, n = nil, 0
		}
	}
	for _, r := range recs {
		sz := RecordHeaderLen + r.Len()
		if HeaderLen+sz > max || r.Len() > math.MaxUint16 {
			return nil, fmt.Errorf("%w: %s record of %d bytes, frame of %d", ErrTooBig, r.Type(), sz, max)
		}
		if cur != nil && (len(cur)+sz > max || n == math.MaxUint16) {
			flush()
		}
		if cur == nil {
			cur = make([]byte, HeaderLen, max)
			putHeader(cur, t, 0)
		}
		cur = cur[:len(cur)+sz]
		putRecord(cur[len(cur)-sz:], r)
		n++
	}
	flush()
	return out, nil
}
