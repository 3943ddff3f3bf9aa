package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the control protocol version this package speaks.
const Version = 1

// FrameType says what a control frame carries.
type FrameType uint8

// Control frame types.
const (
	FrameData  FrameType = 1 // one segment of a message in a session
	FrameAck   FrameType = 2 // cumulative + selective acknowledgement; with FlagProbe, a keepalive probe
	FrameHello FrameType = 3 // session handshake; with FlagReply, its answer
	FrameReset FrameType = 4 // "I do not know your session": the sender has restarted
	FrameBcast FrameType = 5 // a broadcast request (discovery); one segment, unreliable
	FrameDgram FrameType = 6 // an unreliable reply to a broadcast request; one segment
	// FrameRefused is the only frame sent in the clear: it tells a sender
	// whose frame failed authentication that it was refused, never why.
	FrameRefused FrameType = 7
)

func (t FrameType) String() string {
	switch t {
	case FrameData:
		return "data"
	case FrameAck:
		return "ack"
	case FrameHello:
		return "hello"
	case FrameReset:
		return "reset"
	case FrameBcast:
		return "bcast"
	case FrameDgram:
		return "dgram"
	case FrameRefused:
		return "refused"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Header flags.
const (
	FlagReply  uint8 = 1 << 0 // HELLO: this is the answer
	FlagProbe  uint8 = 1 << 1 // ACK: please answer with an ACK now (keepalive)
	flagsKnown       = FlagReply | FlagProbe
)

// HeaderLen is the length of the cleartext header that starts every control
// frame. The header is authenticated (it is the AEAD's additional data); the
// body after it is sealed.
const HeaderLen = 28

// TagLen is the length of the AEAD tag that ends every sealed frame.
const TagLen = 16

// Header is the cleartext start of every control frame.
//
//	off len
//	  0   1  version (1)
//	  1   1  type
//	  2   1  key id: which cluster key sealed the frame
//	  3   1  flags
//	  4   8  sender's epoch (random per process start)
//	 12   8  receiver's epoch as the sender knows it (0 in HELLO, BCAST, REFUSED)
//	 20   8  frame counter: unique per frame per sender epoch; the AEAD nonce and
//	         the replay-window index
type Header struct {
	Version  uint8
	Type     FrameType
	KeyID    uint8
	Flags    uint8
	SrcEpoch uint64
	DstEpoch uint64
	Counter  uint64
}

// Errors of the frame decoders.
var (
	ErrBadVersion = errors.New("proto: unsupported protocol version")
	ErrBadType    = errors.New("proto: unknown frame type")
	ErrBadFlags   = errors.New("proto: reserved flags set")
	ErrBadLength  = errors.New("proto: impossible length")
)

// MarshalBinary implements encoding.BinaryMarshaler.
func (h Header) MarshalBinary() ([]byte, error) {
	b := make([]byte, HeaderLen)
	h.marshal(b)
	return b, nil
}

func (h Header) marshal(b []byte) {
	b[0] = h.Version
	b[1] = uint8(h.Type)
	b[2] = h.KeyID
	b[3] = h.Flags
	binary.BigEndian.PutUint64(b[4:], h.SrcEpoch)
	binary.BigEndian.PutUint64(b[12:], h.DstEpoch)
	binary.BigEndian.PutUint64(b[20:], h.Counter)
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. It checks the
// version, the type and the reserved flags.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return io.ErrUnexpectedEOF
	}
	*h = Header{
		Version:  b[0],
		Type:     FrameType(b[1]),
		KeyID:    b[2],
		Flags:    b[3],
		SrcEpoch: binary.BigEndian.Uint64(b[4:]),
		DstEpoch: binary.BigEndian.Uint64(b[12:]),
		Counter:  binary.BigEndian.Uint64(b[20:]),
	}
	if h.Version != Version {
		return fmt.Errorf("%w %d", ErrBadVersion, h.Version)
	}
	if h.Type < FrameData || h.Type > FrameRefused {
		return fmt.Errorf("%w %d", ErrBadType, uint8(h.Type))
	}
	if h.Flags&^flagsKnown != 0 {
		return fmt.Errorf("%w: %#x", ErrBadFlags, h.Flags)
	}
	return nil
}

// Fragment flags of a DATA segment.
const (
	FragFirst uint8 = 1 << 0 // the first segment of a message
	FragLast  uint8 = 1 << 1 // the last segment of a message
	fragKnown       = FragFirst | FragLast
)

// DataHeaderLen is the length of a DATA body before the segment's bytes.
const DataHeaderLen = 26

// Data is the sealed body of a DATA frame: one segment of a message on the
// sender's stream, with a piggybacked acknowledgement of the reverse stream.
//
// Each direction between two endpoints is a stream with its own id and
// sequence numbers from 0. A sender starts a new stream, with a higher id,
// when it gives up on the old one (peer declared dead); the receiver then
// drops what it had of the old stream.
//
//	off len
//	  0   4  stream id of the sender (counts up from 1 per sender epoch)
//	  4   4  sequence number of this segment in the stream
//	  8   4  stream id acknowledged (the receiver's own stream), 0 = no ack
//	 12   4  cumulative ack: the next sequence number expected on that stream
//	 16   4  receive window: segments the sender can buffer past that ack
//	 20   1  fragment flags (first, last)
//	 21   1  reserved, zero
//	 22   4  length of the whole message (same in every segment of it)
//	 26   …  the segment's bytes
type Data struct {
	Stream    uint32
	Seq       uint32
	AckStream uint32
	Ack       uint32
	Window    uint32
	Frag      uint8
	MsgLen    uint32
	Payload   []byte // aliases the decoded buffer
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (d Data) MarshalBinary() ([]byte, error) {
	b := make([]byte, DataHeaderLen+len(d.Payload))
	d.marshal(b)
	return b, nil
}

func (d Data) marshal(b []byte) int {
	binary.BigEndian.PutUint32(b[0:], d.Stream)
	binary.BigEndian.PutUint32(b[4:], d.Seq)
	binary.BigEndian.PutUint32(b[8:], d.AckStream)
	binary.BigEndian.PutUint32(b[12:], d.Ack)
	binary.BigEndian.PutUint32(b[16:], d.Window)
	b[20] = d.Frag
	b[21] = 0
	binary.BigEndian.PutUint32(b[22:], d.MsgLen)
	return DataHeaderLen + copy(b[DataHeaderLen:], d.Payload)
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. Payload aliases b.
func (d *Data) UnmarshalBinary(b []byte) error {
	if len(b) < DataHeaderLen {
		return io.ErrUnexpectedEOF
	}
	*d = Data{
		Stream:    binary.BigEndian.Uint32(b[0:]),
		Seq:       binary.BigEndian.Uint32(b[4:]),
		AckStream: binary.BigEndian.Uint32(b[8:]),
		Ack:       binary.BigEndian.Uint32(b[12:]),
		Window:    binary.BigEndian.Uint32(b[16:]),
		Frag:      b[20],
		MsgLen:    binary.BigEndian.Uint32(b[22:]),
		Payload:   b[DataHeaderLen:],
	}
	if d.Stream == 0 {
		return fmt.Errorf("%w: stream id 0", ErrBadLength)
	}
	if d.Frag&^fragKnown != 0 || b[21] != 0 {
		return fmt.Errorf("%w in data segment", ErrBadFlags)
	}
	if len(d.Payload) == 0 {
		return fmt.Errorf("%w: empty segment", ErrBadLength)
	}
	if uint32(len(d.Payload)) > d.MsgLen {
		return fmt.Errorf("%w: %d-byte segment of a %d-byte message", ErrBadLength, len(d.Payload), d.MsgLen)
	}
	return nil
}

// MaxSACK is the most SACK ranges one ACK carries.
const MaxSACK = 16

// SACKRange is a run of received sequence numbers [Start, End).
type SACKRange struct{ Start, End uint32 }

// AckHeaderLen is the length of an ACK body without SACK ranges.
const AckHeaderLen = 13

// Ack is the sealed body of an ACK frame.
//
//	off len
//	  0   4  stream id acknowledged (the receiver's view of the sender's stream), 0 = none
//	  4   4  cumulative ack: the next sequence number expected
//	  8   4  receive window
//	 12   1  number of SACK ranges n (at most 16)
//	 13  8n  ranges: start, end (exclusive), above the cumulative ack
type Ack struct {
	Stream uint32
	Ack    uint32
	Window uint32
	SACK   []SACKRange
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (a Ack) MarshalBinary() ([]byte, error) {
	if len(a.SACK) > MaxSACK {
		return nil, fmt.Errorf("%w: %d SACK ranges (max %d)", ErrBadLength, len(a.SACK), MaxSACK)
	}
	b := make([]byte, AckHeaderLen+8*len(a.SACK))
	a.marshal(b)
	return b, nil
}

func (a Ack) marshal(b []byte) int {
	binary.BigEndian.PutUint32(b[0:], a.Stream)
	binary.BigEndian.PutUint32(b[4:], a.Ack)
	binary.BigEndian.PutUint32(b[8:], a.Window)
	b[12] = uint8(len(a.SACK))
	off := AckHeaderLen
	for _, r := range a.SACK {
		binary.BigEndian.PutUint32(b[off:], r.Start)
		binary.BigEndian.PutUint32(b[off+4:], r.End)
		off += 8
	}
	return off
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (a *Ack) UnmarshalBinary(b []byte) error {
	if len(b) < AckHeaderLen {
		return io.ErrUnexpectedEOF
	}
	n := int(b[12])
	if n > MaxSACK {
		return fmt.Errorf("%w: %d SACK ranges (max %d)", ErrBadLength, n, MaxSACK)
	}
	if len(b) < AckHeaderLen+8*n {
		return io.ErrUnexpectedEOF
	}
	if len(b) != AckHeaderLen+8*n {
		return fmt.Errorf("%w: %d trailing bytes after ack", ErrBadLength, len(b)-AckHeaderLen-8*n)
	}
	a.Stream = binary.BigEndian.Uint32(b[0:])
	a.Ack = binary.BigEndian.Uint32(b[4:])
	a.Window = binary.BigEndian.Uint32(b[8:])
	a.SACK = a.SACK[:0]
	for i := 0; i < n; i++ {
		off := AckHeaderLen + 8*i
		r := SACKRange{binary.BigEndian.Uint32(b[off:]), binary.BigEndian.Uint32(b[off+4:])}
		if !seqLess(r.Start, r.End) {
			return fmt.Errorf("%w: empty SACK range [%d,%d)", ErrBadLength, r.Start, r.End)
		}
		a.SACK = append(a.SACK, r)
	}
	return nil
}

// HelloLen is the length of a HELLO body.
const HelloLen = 16

// Hello is the sealed body of a HELLO frame. The challenge is random in a
// request and echoed in the reply, which proves the reply is fresh.
//
//	off len
//	  0   8  challenge
//	  8   4  the sender's link MTU
//	 12   4  the sender's receive window in segments
type Hello struct {
	Challenge uint64
	MTU       uint32
	Window    uint32
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (h Hello) MarshalBinary() ([]byte, error) {
	b := make([]byte, HelloLen)
	h.marshal(b)
	return b, nil
}

func (h Hello) marshal(b []byte) int {
	binary.BigEndian.PutUint64(b[0:], h.Challenge)
	binary.BigEndian.PutUint32(b[8:], h.MTU)
	binary.BigEndian.PutUint32(b[12:], h.Window)
	return HelloLen
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (h *Hello) UnmarshalBinary(b []byte) error {
	if len(b) < HelloLen {
		return io.ErrUnexpectedEOF
	}
	if len(b) != HelloLen {
		return fmt.Errorf("%w: %d-byte hello", ErrBadLength, len(b))
	}
	*h = Hello{
		Challenge: binary.BigEndian.Uint64(b[0:]),
		MTU:       binary.BigEndian.Uint32(b[8:]),
		Window:    binary.BigEndian.Uint32(b[12:]),
	}
	if h.MTU < MinMTU {
		return fmt.Errorf("%w: peer MTU %d below %d", ErrBadLength, h.MTU, MinMTU)
	}
	if h.Window == 0 {
		return fmt.Errorf("%w: zero window", ErrBadLength)
	}
	return nil
}

// Overhead is what the control protocol adds to the bytes of a DATA
// segment: the header, the DATA fields and the AEAD tag.
const Overhead = HeaderLen + DataHeaderLen + TagLen

// MinMTU is the smallest link MTU the control protocol runs on: room for its
// overhead and 64 bytes of segment.
const MinMTU = Overhead + 64

// seqLess reports whether a comes before b in 32-bit sequence space.
func seqLess(a, b uint32) bool { return int32(a-b) < 0 }
