package aoe

import (
	"fmt"
	"io"
)

// ATAFlags are the AFlags of the ATA argument.
type ATAFlags uint8

// ATA argument flags.
const (
	ATAFlagExtended ATAFlags = 0x40 // E: LBA48 command
	ATAFlagDevice   ATAFlags = 0x10 // D: device/head register (obsolete)
	ATAFlagAsync    ATAFlags = 0x02 // A: asynchronous write
	ATAFlagWrite    ATAFlags = 0x01 // W: data flows to the target
)

// ATAArg is the 12-byte ATA argument of command 0. Its data (sectors to
// write, or read back) follows it in the frame.
type ATAArg struct {
	Flags ATAFlags
	// ErrFeature is the feature register in a request and the error
	// register in a response.
	ErrFeature uint8
	// SectorCount is the number of 512-byte sectors to move.
	SectorCount uint8
	// CmdStatus is the ATA command in a request and the status register in
	// a response.
	CmdStatus uint8
	// LBA holds the six LBA bytes as sent (lba0 is the low byte). Use
	// [ATAArg.Sector] for the addressed sector.
	LBA uint64
}

// Sector is the logical block address the argument names: all 48 bits for an
// extended command, the low 28 bits otherwise (the upper nibble of lba3 is the
// device register there).
func (a ATAArg) Sector() uint64 {
	if a.Flags&ATAFlagExtended != 0 {
		return a.LBA & (1<<48 - 1)
	}
	return a.LBA & (1<<28 - 1)
}

func (a ATAArg) marshal(b []byte) {
	b[0] = uint8(a.Flags)
	b[1] = a.ErrFeature
	b[2] = a.SectorCount
	b[3] = a.CmdStatus
	for i := 0; i < 6; i++ {
		b[4+i] = uint8(a.LBA >> (8 * i))
	}
	b[10], b[11] = 0, 0
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (a ATAArg) MarshalBinary() ([]byte, error) {
	if a.LBA >= 1<<48 {
		return nil, fmt.Errorf("%w: LBA %#x exceeds 48 bits", ErrBadField, a.LBA)
	}
	b := make([]byte, ATAHeaderLen)
	a.marshal(b)
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. The two reserved
// bytes are ignored.
func (a *ATAArg) UnmarshalBinary(b []byte) error {
	if len(b) < ATAHeaderLen {
		return io.ErrUnexpectedEOF
	}
	a.Flags = ATAFlags(b[0])
	a.ErrFeature = b[1]
	a.SectorCount = b[2]
	a.CmdStatus = b[3]
	a.LBA = 0
	for i := 0; i < 6; i++ {
		a.LBA |= uint64(b[4+i]) << (8 * i)
	}
	return nil
}
