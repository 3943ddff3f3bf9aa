package aoe

import (
	"encoding/binary"
	"fmt"
	"io"
)

// CmdEpoch is mvstack's vendor command (in AoEr11's vendor range
// 0xF0–0xFF) that registers an initiator at a replicated volume's epoch
// and reads the export's current epoch. Its argument is an [EpochArg].
const CmdEpoch Command = 0xF0

// Vendor error codes mvstack's target sets in the header's Error field
// (with the E flag), beside AoEr11's codes 1–6. Only mvstack initiators
// are meant to meet them: the epoch refusals come only from exports that
// keep an epoch, and ErrNoSpace only to initiators that registered with
// [CmdEpoch]; everyone else gets the standard answers.
const (
	// ErrEpochUnregistered refuses an ATA command from a source that is
	// not registered at the export's epoch at all (it never registered,
	// or the target restarted and forgot it). Registering again may work.
	ErrEpochUnregistered ErrorCode = 0xF0
	// ErrEpochStale refuses an ATA command from a source registered at an
	// epoch older than the export's: a newer epoch exists and the source
	// is fenced.
	ErrEpochStale ErrorCode = 0xF1
	// ErrNoSpace fails a write the backend could not store for lack of
	// space (ENOSPC, as a thin pool that ran out of chunks reports).
	ErrNoSpace ErrorCode = 0xF2
)

// EpochMagic opens every [EpochArg]: "mv".
const EpochMagic = 0x6d76

// EpochVersion is the version of the [EpochArg] layout.
const EpochVersion = 1

// EpochArgLen is the length of the epoch argument.
const EpochArgLen = 16

// EpochOp is what an epoch request asks.
type EpochOp uint8

// Epoch operations.
const (
	// EpochRead asks for the export's current epoch and changes nothing.
	EpochRead EpochOp = 0
	// EpochRegister registers the source at Epoch, raising the export's
	// epoch to it when it is newer.
	EpochRegister EpochOp = 1
)

func (o EpochOp) String() string {
	switch o {
	case EpochRead:
		return "read"
	case EpochRegister:
		return "register"
	}
	return fmt.Sprintf("EpochOp(%d)", uint8(o))
}

// EpochStatus is the outcome an epoch reply carries (0 in requests).
type EpochStatus uint8

// Epoch reply statuses.
const (
	// EpochOK: the request was carried out; for EpochRegister the source
	// is now registered at Epoch, which is the export's current epoch.
	EpochOK EpochStatus = 0
	// EpochStale: the export's epoch (in the reply) is newer than the one
	// asked for; the source stays fenced.
	EpochStale EpochStatus = 1
	// EpochOff: the export keeps no epoch (its epoch is 0) and never
	// refuses I/O for epoch reasons; a registration only tells it the
	// source understands mvstack's vendor errors.
	EpochOff EpochStatus = 2
	// EpochRefused: the target could not make the new epoch durable, so
	// it did not raise it.
	EpochRefused EpochStatus = 3
)

func (s EpochStatus) String() string {
	switch s {
	case EpochOK:
		return "ok"
	case EpochStale:
		return "stale"
	case EpochOff:
		return "off"
	case EpochRefused:
		return "refused"
	}
	return fmt.Sprintf("EpochStatus(%d)", uint8(s))
}

// EpochArg is the argument of [CmdEpoch] requests and replies:
//
//	offset size field
//	0      2    magic 0x6d76 ("mv")
//	2      1    version (1)
//	3      1    op (0 read, 1 register)
//	4      1    status (replies: 0 ok, 1 stale, 2 off, 3 refused; 0 in requests)
//	5      3    reserved, zero
//	8      8    epoch, big-endian (requests: the epoch to register;
//	            replies: the export's current epoch)
type EpochArg struct {
	Op     EpochOp
	Status EpochStatus
	Epoch  uint64
}

func (a EpochArg) marshal(b []byte) {
	binary.BigEndian.PutUint16(b[0:], EpochMagic)
	b[2] = EpochVersion
	b[3] = uint8(a.Op)
	b[4] = uint8(a.Status)
	b[5], b[6], b[7] = 0, 0, 0
	binary.BigEndian.PutUint64(b[8:], a.Epoch)
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (a EpochArg) MarshalBinary() ([]byte, error) {
	b := make([]byte, EpochArgLen)
	a.marshal(b)
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. A wrong magic, an
// unknown version or non-zero reserved bytes wrap ErrBadField.
func (a *EpochArg) UnmarshalBinary(b []byte) error {
	if len(b) < EpochArgLen {
		return io.ErrUnexpectedEOF
	}
	if m := binary.BigEndian.Uint16(b[0:]); m != EpochMagic {
		return fmt.Errorf("%w: epoch argument magic %#04x, want %#04x", ErrBadField, m, EpochMagic)
	}
	if b[2] != EpochVersion {
		return fmt.Errorf("%w: epoch argument version %d, want %d", ErrBadField, b[2], EpochVersion)
	}
	if b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return fmt.Errorf("%w: epoch argument reserved bytes %x are not zero", ErrBadField, b[5:8])
	}
	a.Op = EpochOp(b[3])
	a.Status = EpochStatus(b[4])
	a.Epoch = binary.BigEndian.Uint64(b[8:])
	return nil
}
