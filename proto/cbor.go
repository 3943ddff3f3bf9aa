package proto

import "github.com/fxamacker/cbor/v2"

// cborEnc is the control protocol's CBOR encoding (RFC 8949): times as
// RFC 3339 with nanoseconds, so a time.Time survives the wire exactly
// (the library's default keeps whole seconds). It is immutable.
var cborEnc = func() cbor.EncMode {
	m, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
	if err != nil {
		panic("proto: CBOR options: " + err.Error())
	}
	return m
}()

// MarshalCBOR encodes v as the control protocol's messages are encoded.
// Use it (not cbor.Marshal) for anything sent on the control protocol.
func MarshalCBOR(v any) ([]byte, error) { return cborEnc.Marshal(v) }
