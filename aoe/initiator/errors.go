package initiator

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
)

// Sentinels for errors.Is.
var (
	ErrNoTarget      = errors.New("aoe: no target answered")
	ErrTimeout       = errors.New("aoe: request timed out")
	ErrClosed        = errors.New("aoe: initiator closed")
	ErrOutOfRange    = errors.New("aoe: sector out of range (ATA IDNF)")
	ErrAborted       = errors.New("aoe: command aborted (ATA ABRT)")
	ErrMedium        = errors.New("aoe: medium error (ATA UNC)")
	ErrDeviceFault   = errors.New("aoe: device fault")
	ErrATA           = errors.New("aoe: ATA error")
	ErrUnrecognized  = errors.New("aoe: unrecognized command (AoE error 1)")
	ErrBadArgument   = errors.New("aoe: bad argument (AoE error 2)")
	ErrUnavailable   = errors.New("aoe: device unavailable (AoE error 3)")
	ErrConfigPresent = errors.New("aoe: config string present (AoE error 4)")
	ErrVersion       = errors.New("aoe: unsupported version (AoE error 5)")
	ErrReserved      = errors.New("aoe: target is reserved (AoE error 6)")

	// ErrStaleEpoch: the target holds a newer epoch than the device's,
	// so this initiator is fenced (mvstack vendor error 0xF1, or a
	// registration answered "stale").
	ErrStaleEpoch = errors.New("aoe: stale epoch: the target holds a newer one")
	// ErrEpochUnregistered: the target keeps an epoch and does not know
	// this initiator (mvstack vendor error 0xF0). A device whose epoch is
	// set registers again and retries once before returning it.
	ErrEpochUnregistered = errors.New("aoe: not registered at the target's epoch")
	// ErrEpochRefused: the target could not make a new epoch durable.
	ErrEpochRefused = errors.New("aoe: target refused the new epoch")
	// ErrNoSpace: the target's backend ran out of space (mvstack vendor
	// error 0xF2, sent to registered initiators). It matches
	// syscall.ENOSPC.
	ErrNoSpace = fmt.Errorf("aoe: no space left on the target: %w", syscall.ENOSPC)
)

// Error describes a request a target refused or failed.
type Error struct {
	Op     string // "read", "write", "flush", "identify", "config", "reserve", "mask", "epoch"
	Shelf  uint16
	Slot   uint8
	LBA    uint64
	Status uint8         // ATA status register
	ErrReg uint8         // ATA error register
	AoE    aoe.ErrorCode // AoE error, when the E flag was set
	Err    error         // the sentinel
}

func (e *Error) Error() string {
	if e.AoE != 0 {
		return fmt.Sprintf("aoe %d.%d: %s at LBA %d: %v", e.Shelf, e.Slot, e.Op, e.LBA, e.Err)
	}
	return fmt.Sprintf("aoe %d.%d: %s at LBA %d: status %#02x error %#02x: %v", e.Shelf, e.Slot, e.Op, e.LBA, e.Status, e.ErrReg, e.Err)
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

func aoeSentinel(c aoe.ErrorCode) error {
	switch c {
	case aoe.ErrUnrecognizedCommand:
		return ErrUnrecognized
	case aoe.ErrBadArgument:
		return ErrBadArgument
	case aoe.ErrDeviceUnavailable:
		return ErrUnavailable
	case aoe.ErrConfigPresent:
		return ErrConfigPresent
	case aoe.ErrUnsupportedVersion:
		return ErrVersion
	case aoe.ErrTargetReserved:
		return ErrReserved
	case aoe.ErrEpochUnregistered:
		return ErrEpochUnregistered
	case aoe.ErrEpochStale:
		return ErrStaleEpoch
	case aoe.ErrNoSpace:
		return ErrNoSpace
	}
	return fmt.Errorf("aoe: error %d", c)
}

func ataSentinel(status, errReg uint8) error {
	switch {
	case errReg&ata.ErrIDNF != 0:
		return ErrOutOfRange
	case errReg&ata.ErrUNC != 0:
		return ErrMedium
	case errReg&ata.ErrABRT != 0:
		return ErrAborted
	case status&ata.StatusDF != 0:
		return ErrDeviceFault
	}
	return ErrATA
}

// replyError returns the error a reply carries, or nil.
func replyError(op string, f *aoe.Frame, lba uint64) error {
	if f.IsError() {
		return &Error{Op: op, Shelf: f.Shelf, Slot: f.Slot, LBA: lba, AoE: f.Error, Err: aoeSentinel(f.Error)}
	}
	if f.Command == aoe.CmdATA && f.ATA.CmdStatus&(ata.StatusERR|ata.StatusDF) != 0 {
		return &Error{Op: op, Shelf: f.Shelf, Slot: f.Slot, LBA: lba, Status: f.ATA.CmdStatus, ErrReg: f.ATA.ErrFeature,
			Err: ataSentinel(f.ATA.CmdStatus, f.ATA.ErrFeature)}
	}
	return nil
}
