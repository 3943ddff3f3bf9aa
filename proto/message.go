package proto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// msgKind is the first byte of every message carried by the control
// protocol's streams and broadcasts.
type msgKind uint8

const (
	kindRequest  msgKind = 1 // id, method, payload; answered by a response or an error
	kindResponse msgKind = 2 // id, payload
	kindError    msgKind = 3 // id, code, text
	kindOneway   msgKind = 4 // method, payload; no answer
)

// message is the unit the RPC layer exchanges.
//
//	off len
//	  0   1  kind
//	  1   8  call id (0 for one-way)
//	  9   1  method length m (requests and one-way) or error code (errors)
//	 10   m  method name
//	  …      payload (for errors: the error text)
type message struct {
	kind    msgKind
	id      uint64
	method  string
	code    ErrorCode
	payload []byte // aliases the decoded buffer
	buf     []byte // the reassembly buffer payload aliases, when it came from Endpoint.bufs
}

const msgHeaderLen = 10

// MaxMethodLen is the longest method name.
const MaxMethodLen = 255

func (m message) size() int {
	return msgHeaderLen + len(m.method) + len(m.payload)
}

// appendTo appends the encoded message to b.
func (m message) appendTo(b []byte) []byte {
	b = append(b, uint8(m.kind))
	b = binary.BigEndian.AppendUint64(b, m.id)
	switch m.kind {
	case kindError:
		b = append(b, uint8(m.code))
	default:
		b = append(b, uint8(len(m.method)))
		b = append(b, m.method...)
	}
	return append(b, m.payload...)
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (m message) MarshalBinary() ([]byte, error) {
	if len(m.method) > MaxMethodLen {
		return nil, fmt.Errorf("%w: method name of %d bytes", ErrBadLength, len(m.method))
	}
	return m.appendTo(make([]byte, 0, m.size())), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (m *message) UnmarshalBinary(b []byte) error {
	if len(b) < msgHeaderLen {
		return io.ErrUnexpectedEOF
	}
	*m = message{kind: msgKind(b[0]), id: binary.BigEndian.Uint64(b[1:])}
	rest := b[msgHeaderLen:]
	switch m.kind {
	case kindRequest, kindOneway:
		n := int(b[9])
		if len(rest) < n {
			return io.ErrUnexpectedEOF
		}
		if n == 0 {
			return fmt.Errorf("%w: empty method name", ErrBadLength)
		}
		m.method = string(rest[:n])
		m.payload = rest[n:]
		if (m.kind == kindRequest) != (m.id != 0) {
			return fmt.Errorf("%w: call id %d in a kind %d message", ErrBadLength, m.id, m.kind)
		}
	case kindResponse:
		if b[9] != 0 {
			return fmt.Errorf("%w in response", ErrBadFlags)
		}
		m.payload = rest
	case kindError:
		m.code = ErrorCode(b[9])
		m.payload = rest
	default:
		return fmt.Errorf("%w: message kind %d", ErrBadType, b[0])
	}
	return nil
}
