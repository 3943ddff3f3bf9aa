package proto

import (
	"errors"
	"time"
)

// EtherType is the 16-bit type field of an Ethernet II frame.
type EtherType uint16

// The EtherTypes mvstack speaks.
const (
	EtherTypeAoE     EtherType = 0x88A2 // ATA over Ethernet, revision 11
	EtherTypeControl EtherType = 0x88B5 // the control protocol (IEEE local experimental 1)
	EtherTypeStats   EtherType = 0x88B6 // stat frames (IEEE local experimental 2)
)

// EthernetHeaderLen is the length of an Ethernet II header without a VLAN tag.
const EthernetHeaderLen = 14

// MinPayload is the smallest payload of an Ethernet frame: 60 bytes on the
// wire less the 14-byte header. Shorter payloads are padded by the sender.
const MinPayload = 46

// Link sends and receives the payloads of Ethernet II frames of one
// EtherType on one interface (or one port of an in-memory switch).
//
// A Link is safe for one reader and any number of concurrent writers.
// ReadFrom blocks until a frame arrives, the read deadline passes
// (returning an error for which [IsTimeout] is true) or the Link is closed
// (returning [ErrClosed]). The payload handed to WriteTo is not retained.
type Link interface {
	// ReadFrom copies the payload of the next frame into p and returns its
	// length, the source and the destination address. A payload longer
	// than p is truncated to len(p).
	ReadFrom(p []byte) (n int, src, dst MAC, err error)
	// WriteTo sends p as the payload of one frame to dst, which may be
	// [Broadcast]. p must not exceed MTU bytes.
	WriteTo(p []byte, dst MAC) error
	// SetReadDeadline sets the deadline for ReadFrom; the zero time means none.
	SetReadDeadline(t time.Time) error
	// Addr is the link's own hardware address.
	Addr() MAC
	// MTU is the largest payload the link carries, without the Ethernet header.
	MTU() int
	// Close unblocks a pending ReadFrom and releases the link.
	Close() error
}

// BatchWriter is an optional ability of a Link: sending many payloads to
// one destination at once (sendmmsg on AF_PACKET). Senders check for it at
// run time and fall back to WriteTo.
type BatchWriter interface {
	// WriteBatch sends each payload as one frame to dst, in order.
	WriteBatch(payloads [][]byte, dst MAC) error
}

// BatchReader is an optional ability of a Link: reading many frames in one
// system call (recvmmsg on AF_PACKET). Readers check for it at run time.
type BatchReader interface {
	// ReadBatch blocks like ReadFrom until at least one frame arrives,
	// then fills as many of frames as are ready without blocking again and
	// returns how many it filled. Each Frame's Payload is resliced to the
	// frame's length within its buffer.
	ReadBatch(frames []Frame) (int, error)
}

// Frame is one received frame of a batch read.
type Frame struct {
	Payload  []byte // a buffer on input; the frame's payload on return
	Src, Dst MAC
}

// ErrClosed is returned by Link operations after Close.
var ErrClosed = errors.New("proto: link closed")

// ErrTooBig is returned by WriteTo for a payload larger than the MTU.
var ErrTooBig = errors.New("proto: payload larger than MTU")

// IsTimeout reports whether err is a read-deadline timeout.
func IsTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// ErrDeadline is returned by ReadFrom when the read deadline has passed. Its
// Timeout method reports true, like os.ErrDeadlineExceeded.
var ErrDeadline error = deadlineError{}

type deadlineError struct{}

func (deadlineError) Error() string   { return "proto: read deadline exceeded" }
func (deadlineError) Timeout() bool   { return true }
func (deadlineError) Temporary() bool { return true }
