package aoe

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ConfigCmd is the sub-command of a Query Config message.
type ConfigCmd uint8

// Query Config sub-commands.
const (
	ConfigRead     ConfigCmd = 0 // read the config string
	ConfigTest     ConfigCmd = 1 // answer only if the string matches exactly
	ConfigPrefix   ConfigCmd = 2 // answer only if the string is a prefix of ours
	ConfigSet      ConfigCmd = 3 // set the string if ours is empty
	ConfigForceSet ConfigCmd = 4 // set the string unconditionally
)

// ConfigArgLen is the length of the fixed part of the Query Config argument.
const ConfigArgLen = 8

// ConfigArg is the argument of a Query Config message.
type ConfigArg struct {
	BufferCount uint16 // frames the target can hold in flight
	Firmware    uint16 // firmware version
	SectorCount uint8  // most sectors one ATA command may carry
	Version     uint8  // AoE version, 4 bits
	Cmd         ConfigCmd
	Config      []byte // up to MaxConfigLen bytes
}

func (c ConfigArg) len() int { return ConfigArgLen + len(c.Config) }

func (c ConfigArg) marshal(b []byte) {
	binary.BigEndian.PutUint16(b[0:], c.BufferCount)
	binary.BigEndian.PutUint16(b[2:], c.Firmware)
	b[4] = c.SectorCount
	b[5] = c.Version<<4 | uint8(c.Cmd&0xf)
	binary.BigEndian.PutUint16(b[6:], uint16(len(c.Config)))
	copy(b[8:], c.Config)
}

func (c ConfigArg) check() error {
	if len(c.Config) > MaxConfigLen {
		return fmt.Errorf("%w: config string of %d bytes exceeds %d", ErrBadField, len(c.Config), MaxConfigLen)
	}
	if c.Version > 0xf || c.Cmd > 0xf {
		return fmt.Errorf("%w: config version %d or command %d does not fit 4 bits", ErrBadField, c.Version, c.Cmd)
	}
	return nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (c ConfigArg) MarshalBinary() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b := make([]byte, c.len())
	c.marshal(b)
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. Bytes after the
// config string (Ethernet padding) are ignored. Config aliases b.
func (c *ConfigArg) UnmarshalBinary(b []byte) error {
	if len(b) < ConfigArgLen {
		return io.ErrUnexpectedEOF
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n > MaxConfigLen {
		return fmt.Errorf("%w: config string length %d exceeds %d", ErrBadField, n, MaxConfigLen)
	}
	if len(b) < ConfigArgLen+n {
		return io.ErrUnexpectedEOF
	}
	c.BufferCount = binary.BigEndian.Uint16(b[0:])
	c.Firmware = binary.BigEndian.Uint16(b[2:])
	c.SectorCount = b[4]
	c.Version = b[5] >> 4
	c.Cmd = ConfigCmd(b[5] & 0xf)
	c.Config = b[8 : 8+n : 8+n]
	return nil
}
