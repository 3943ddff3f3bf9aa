package proto

import (
	"net"
	"testing"
)

func TestParseMACAcceptsTheFormsOperatorsType(t *testing.T) {
	want := MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}
	for _, in := range []string{"0c:c4:7a:77:f9:af", "0cc47a77f9af", "0C-C4-7A-77-F9-AF", " 0cc4.7a77.f9af "} {
		got, err := ParseMAC(in)
		if err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0cc47a77f9", "0cc47a77f9afaa", "zz:c4:7a:77:f9:af"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) succeeded, want an error", bad)
		}
	}
}

func TestNodeIDIsLow32BitsOfTheMAC(t *testing.T) {
	m, _ := ParseMAC("0c:c4:7a:77:f9:af")
	if got := m.NodeID(); got != "7a77f9af" {
		t.Fatalf("NodeID = %q, want 7a77f9af", got)
	}
	if got := m.String(); got != "0c:c4:7a:77:f9:af" {
		t.Fatalf("String = %q", got)
	}
	hw, _ := net.ParseMAC("0c:c4:7a:77:f9:af")
	if got, err := MACFrom(hw); err != nil || got != m {
		t.Fatalf("MACFrom = %v, %v", got, err)
	}
	if !Broadcast.IsBroadcast() || !Broadcast.IsMulticast() || m.IsMulticast() {
		t.Fatal("broadcast/multicast bits wrong")
	}
}
