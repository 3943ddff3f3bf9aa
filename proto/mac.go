package proto

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// MAC is an IEEE 802 MAC-48 hardware address. It is a comparable value and
// can be used as a map key; convert it with [MAC.HardwareAddr] only at the
// operating-system boundary.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ParseMAC parses a MAC address written as six hex octets, with or without
// separators: "0c:c4:7a:77:f9:af", "0c-c4-7a-77-f9-af" and "0cc47a77f9af"
// are the same address.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	clean := strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.TrimSpace(s))
	if len(clean) != 12 {
		return m, fmt.Errorf("proto: invalid MAC address %q: want 6 hex octets like 0c:c4:7a:77:f9:af or 0cc47a77f9af", s)
	}
	if _, err := hex.Decode(m[:], []byte(clean)); err != nil {
		return m, fmt.Errorf("proto: invalid MAC address %q: %w", s, err)
	}
	return m, nil
}

// MACFrom converts a net.HardwareAddr of length 6.
func MACFrom(hw net.HardwareAddr) (MAC, error) {
	var m MAC
	if len(hw) != len(m) {
		return m, fmt.Errorf("proto: hardware address %q is %d bytes, want 6", hw, len(hw))
	}
	copy(m[:], hw)
	return m, nil
}

// String returns the address in the colon form "0c:c4:7a:77:f9:af".
func (m MAC) String() string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, o := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[o>>4], digits[o&0xf])
	}
	return string(b)
}

// HardwareAddr returns the address as a net.HardwareAddr.
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(m[:]) }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// NodeID returns the MicroVisor node id of a management MAC: the low 32 bits
// in hex, so 0c:c4:7a:77:f9:af is node "7a77f9af".
func (m MAC) NodeID() string { return hex.EncodeToString(m[2:]) }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	p, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = p
	return nil
}
