package aoe

import (
	"fmt"
	"io"

	"github.com/mvstack/mvstack/proto"
)

// ReserveCmd is the sub-command of a Reserve/Release message.
type ReserveCmd uint8

// Reserve/Release commands.
const (
	ReserveRead     ReserveCmd = 0 // read the reserve list
	ReserveSet      ReserveCmd = 1 // set the list (only by a MAC on it, or when empty)
	ReserveForceSet ReserveCmd = 2 // set the list unconditionally
)

// ReserveArgLen is the length of the fixed part of the Reserve/Release argument.
const ReserveArgLen = 2

// ReserveArg is the argument of a Reserve/Release message. An empty list
// releases the target.
type ReserveArg struct {
	Cmd  ReserveCmd
	MACs []proto.MAC // at most 255
}

func (r ReserveArg) len() int { return ReserveArgLen + 6*len(r.MACs) }

func (r ReserveArg) check() error {
	if len(r.MACs) > 255 {
		return fmt.Errorf("%w: %d reserve MACs exceed 255", ErrBadField, len(r.MACs))
	}
	return nil
}

func (r ReserveArg) marshal(b []byte) {
	b[0] = uint8(r.Cmd)
	b[1] = uint8(len(r.MACs))
	for i, m := range r.MACs {
		copy(b[ReserveArgLen+6*i:], m[:])
	}
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (r ReserveArg) MarshalBinary() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	b := make([]byte, r.len())
	r.marshal(b)
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (r *ReserveArg) UnmarshalBinary(b []byte) error {
	if len(b) < ReserveArgLen {
		return io.ErrUnexpectedEOF
	}
	n := int(b[1])
	if len(b) < ReserveArgLen+6*n {
		return io.ErrUnexpectedEOF
	}
	r.Cmd = ReserveCmd(b[0])
	r.MACs = nil
	if n > 0 {
		r.MACs = make([]proto.MAC, n)
	}
	for i := range r.MACs {
		copy(r.MACs[i][:], b[ReserveArgLen+6*i:])
	}
	return nil
}
