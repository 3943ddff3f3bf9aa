package aoe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the AoE protocol version this package speaks (AoEr11 says 1).
const Version = 1

// HeaderLen is the length of the AoE header that follows the Ethernet header.
const HeaderLen = 10

// ATAHeaderLen is the length of the ATA argument that follows the header.
const ATAHeaderLen = 12

// SectorSize is the ATA sector size AoE moves.
const SectorSize = 512

// Broadcast shelf and slot values: a Query Config to shelf 0xffff, slot 0xff
// reaches every target.
const (
	BroadcastShelf = 0xffff
	BroadcastSlot  = 0xff
)

// MaxConfigLen is the longest config string AoEr11 allows.
const MaxConfigLen = 1024

// SectorsPerFrame is how many 512-byte sectors fit one ATA frame at the given
// link MTU: (MTU − 36) / 512, the Linux driver's and vblade's rule, which
// counts the 14-byte Ethernet header inside the 36. It gives 2 at 1500 and
// 17 at 9000.
func SectorsPerFrame(mtu int) int {
	n := (mtu - 36) / SectorSize
	if n < 0 {
		return 0
	}
	if n > 255 {
		return 255
	}
	return n
}

// Flags are the four flag bits of the header's first byte.
type Flags uint8

// Header flags.
const (
	FlagResponse Flags = 0x8 // R: the frame is a response
	FlagError    Flags = 0x4 // E: the Error field holds an AoE error
)

// Command is the AoE command code.
type Command uint8

// AoE commands. 0xF0–0xFF are vendor specific.
const (
	CmdATA      Command = 0
	CmdConfig   Command = 1
	CmdMACMask  Command = 2
	CmdReserve  Command = 3
	CmdVendorLo Command = 0xF0
)

func (c Command) String() string {
	switch c {
	case CmdATA:
		return "ATA"
	case CmdConfig:
		return "QueryConfig"
	case CmdMACMask:
		return "MACMaskList"
	case CmdReserve:
		return "ReserveRelease"
	case CmdEpoch:
		return "Epoch"
	}
	if c >= CmdVendorLo {
		return fmt.Sprintf("Vendor(%#x)", uint8(c))
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// ErrorCode is the AoE error carried in the header when FlagError is set.
type ErrorCode uint8

// AoEr11 error codes.
const (
	ErrUnrecognizedCommand ErrorCode = 1 // unrecognized command code
	ErrBadArgument         ErrorCode = 2 // bad argument parameter
	ErrDeviceUnavailable   ErrorCode = 3 // device unavailable
	ErrConfigPresent       ErrorCode = 4 // config string present
	ErrUnsupportedVersion  ErrorCode = 5 // unsupported version
	ErrTargetReserved      ErrorCode = 6 // target is reserved
)

func (e ErrorCode) String() string {
	switch e {
	case 0:
		return "none"
	case ErrUnrecognizedCommand:
		return "unrecognized command code"
	case ErrBadArgument:
		return "bad argument parameter"
	case ErrDeviceUnavailable:
		return "device unavailable"
	case ErrConfigPresent:
		return "config string present"
	case ErrUnsupportedVersion:
		return "unsupported version"
	case ErrTargetReserved:
		return "target is reserved"
	case ErrEpochUnregistered:
		return "not registered at the epoch (vendor)"
	case ErrEpochStale:
		return "stale epoch (vendor)"
	case ErrNoSpace:
		return "no space left (vendor)"
	}
	return fmt.Sprintf("error %d", uint8(e))
}

// Header is the 10-byte AoE header.
type Header struct {
	Version uint8 // 4 bits; 1 for AoEr11
	Flags   Flags // 4 bits
	Error   ErrorCode
	Shelf   uint16 // major
	Slot    uint8  // minor
	Command Command
	Tag     uint32
}

// IsResponse reports whether the R flag is set.
func (h Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsError reports whether the E flag is set.
func (h Header) IsError() bool { return h.Flags&FlagError != 0 }

// ErrBadField is wrapped by decoders for fields that do not fit the format.
var ErrBadField = errors.New("aoe: bad field")

func (h Header) marshal(b []byte) {
	b[0] = h.Version<<4 | uint8(h.Flags&0xf)
	b[1] = uint8(h.Error)
	binary.BigEndian.PutUint16(b[2:], h.Shelf)
	b[4] = h.Slot
	b[5] = uint8(h.Command)
	binary.BigEndian.PutUint32(b[6:], h.Tag)
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (h Header) MarshalBinary() ([]byte, error) {
	if h.Version > 0xf || h.Flags > 0xf {
		return nil, fmt.Errorf("%w: version %d or flags %#x do not fit 4 bits", ErrBadField, h.Version, uint8(h.Flags))
	}
	b := make([]byte, HeaderLen)
	h.marshal(b)
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. It reads the first
// HeaderLen bytes of b.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return io.ErrUnexpectedEOF
	}
	h.Version = b[0] >> 4
	h.Flags = Flags(b[0] & 0xf)
	h.Error = ErrorCode(b[1])
	h.Shelf = binary.BigEndian.Uint16(b[2:])
	h.Slot = b[4]
	h.Command = Command(b[5])
	h.Tag = binary.BigEndian.Uint32(b[6:])
	return nil
}
