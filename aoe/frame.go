package aoe

import (
	"fmt"

	"github.com/mvstack/mvstack/proto"
)

// Frame is one whole AoE message: the header, the argument of its command and,
// for ATA, the data. Only the argument that matches Header.Command is
// marshalled or filled in.
type Frame struct {
	Header
	ATA     ATAArg
	Config  ConfigArg
	MACMask MACMaskArg
	Reserve ReserveArg
	Epoch   EpochArg // for CmdEpoch, mvstack's vendor command
	// Data is what follows the ATA argument (sectors written or read,
	// possibly with Ethernet padding after them), or what follows the header
	// for a command this package does not know (other vendor commands). It aliases
	// the buffer given to UnmarshalBinary.
	Data []byte
}

// Len is the length of the marshalled frame before padding.
func (f *Frame) Len() int {
	n := HeaderLen
	switch f.Command {
	case CmdATA:
		n += ATAHeaderLen + len(f.Data)
	case CmdConfig:
		n += f.Config.len()
	case CmdMACMask:
		n += f.MACMask.len()
	case CmdReserve:
		n += f.Reserve.len()
	case CmdEpoch:
		n += EpochArgLen
	default:
		n += len(f.Data)
	}
	return n
}

// PaddedLen is Len raised to the Ethernet minimum payload.
func (f *Frame) PaddedLen() int { return max(f.Len(), proto.MinPayload) }

// MarshalTo writes the frame, zero-padded to the Ethernet minimum payload,
// into b and returns the number of bytes written. b must hold PaddedLen
// bytes.
func (f *Frame) MarshalTo(b []byte) (int, error) {
	if f.Version > 0xf || f.Flags > 0xf {
		return 0, fmt.Errorf("%w: version %d or flags %#x do not fit 4 bits", ErrBadField, f.Version, uint8(f.Flags))
	}
	switch f.Command {
	case CmdATA:
		if f.ATA.LBA >= 1<<48 {
			return 0, fmt.Errorf("%w: LBA %#x exceeds 48 bits", ErrBadField, f.ATA.LBA)
		}
	case CmdConfig:
		if err := f.Config.check(); err != nil {
			return 0, err
		}
	case CmdMACMask:
		if err := f.MACMask.check(); err != nil {
			return 0, err
		}
	case CmdReserve:
		if err := f.Reserve.check(); err != nil {
			return 0, err
		}
	}
	n, p := f.Len(), f.PaddedLen()
	if len(b) < p {
		return 0, fmt.Errorf("aoe: buffer of %d bytes too small for a %d-byte frame", len(b), p)
	}
	f.Header.marshal(b)
	a := b[HeaderLen:]
	switch f.Command {
	case CmdATA:
		f.ATA.marshal(a)
		copy(a[ATAHeaderLen:], f.Data)
	case CmdConfig:
		f.Config.marshal(a)
	case CmdMACMask:
		f.MACMask.marshal(a)
	case CmdReserve:
		f.Reserve.marshal(a)
	case CmdEpoch:
		f.Epoch.marshal(a)
	default:
		copy(a, f.Data)
	}
	clear(b[n:p])
	return p, nil
}

// MarshalBinary implements encoding.BinaryMarshaler; the result is padded to
// the Ethernet minimum payload.
func (f *Frame) MarshalBinary() ([]byte, error) {
	b := make([]byte, f.PaddedLen())
	n, err := f.MarshalTo(b)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. Slices in f alias b.
func (f *Frame) UnmarshalBinary(b []byte) error {
	if err := f.Header.UnmarshalBinary(b); err != nil {
		return err
	}
	a := b[HeaderLen:]
	f.Data = nil
	switch f.Command {
	case CmdATA:
		if err := f.ATA.UnmarshalBinary(a); err != nil {
			return err
		}
		f.Data = a[ATAHeaderLen:]
	case CmdConfig:
		return f.Config.UnmarshalBinary(a)
	case CmdMACMask:
		return f.MACMask.UnmarshalBinary(a)
	case CmdReserve:
		return f.Reserve.UnmarshalBinary(a)
	case CmdEpoch:
		return f.Epoch.UnmarshalBinary(a)
	default:
		f.Data = a
	}
	if len(f.Data) == 0 {
		f.Data = nil
	}
	return nil
}

var _ interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
} = (*Frame)(nil)
