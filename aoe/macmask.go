package aoe

import (
	"fmt"
	"io"

	"github.com/mvstack/mvstack/proto"
)

// MaskCmd is the sub-command of a MAC Mask List message.
type MaskCmd uint8

// MAC Mask List commands.
const (
	MaskRead MaskCmd = 0 // read the mask list
	MaskEdit MaskCmd = 1 // apply the directives, then answer with the list
)

// MaskError is the MError field of a MAC Mask List response.
type MaskError uint8

// MAC Mask List errors.
const (
	MaskErrUnspecified MaskError = 1 // unspecified error
	MaskErrBadDCmd     MaskError = 2 // bad DCmd directive
	MaskErrFull        MaskError = 3 // mask list full
)

// DirCmd is the command of one MAC Mask List directive.
type DirCmd uint8

// Directive commands.
const (
	DirNone   DirCmd = 0 // no directive
	DirAdd    DirCmd = 1 // add the MAC to the list
	DirDelete DirCmd = 2 // delete the MAC from the list
)

// Directive is one 8-byte entry of a MAC Mask List.
type Directive struct {
	Cmd DirCmd
	MAC proto.MAC
}

// MACMaskArgLen is the length of the fixed part of the MAC Mask List argument.
const MACMaskArgLen = 4

// DirectiveLen is the length of one directive.
const DirectiveLen = 8

// MACMaskArg is the argument of a MAC Mask List message.
type MACMaskArg struct {
	Cmd        MaskCmd
	Error      MaskError
	Directives []Directive // at most 255
}

func (m MACMaskArg) len() int { return MACMaskArgLen + DirectiveLen*len(m.Directives) }

func (m MACMaskArg) check() error {
	if len(m.Directives) > 255 {
		return fmt.Errorf("%w: %d directives exceed 255", ErrBadField, len(m.Directives))
	}
	return nil
}

func (m MACMaskArg) marshal(b []byte) {
	b[0] = 0
	b[1] = uint8(m.Cmd)
	b[2] = uint8(m.Error)
	b[3] = uint8(len(m.Directives))
	for i, d := range m.Directives {
		o := b[MACMaskArgLen+DirectiveLen*i:]
		o[0] = 0
		o[1] = uint8(d.Cmd)
		copy(o[2:8], d.MAC[:])
	}
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (m MACMaskArg) MarshalBinary() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b := make([]byte, m.len())
	m.marshal(b)
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. Reserved bytes are
// ignored; bytes after the last directive (padding) too.
func (m *MACMaskArg) UnmarshalBinary(b []byte) error {
	if len(b) < MACMaskArgLen {
		return io.ErrUnexpectedEOF
	}
	n := int(b[3])
	if len(b) < MACMaskArgLen+DirectiveLen*n {
		return io.ErrUnexpectedEOF
	}
	m.Cmd = MaskCmd(b[1])
	m.Error = MaskError(b[2])
	m.Directives = nil
	if n > 0 {
		m.Directives = make([]Directive, n)
	}
	for i := range m.Directives {
		o := b[MACMaskArgLen+DirectiveLen*i:]
		m.Directives[i].Cmd = DirCmd(o[1])
		copy(m.Directives[i].MAC[:], o[2:8])
	}
	return nil
}
