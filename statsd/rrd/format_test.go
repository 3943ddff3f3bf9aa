package rrd

import (
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var hexes []string
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "//")
		hexes = append(hexes, strings.Fields(line)...)
	}
	b, err := hex.DecodeString(strings.Join(hexes, ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHeaderBytes pins the header layout of docs/rrd.md byte for byte.
func TestHeaderBytes(t *testing.T) {
	h := header{Spec: Spec{Step: 10,
		DS:  []DS{{Name: "a", Type: Gauge, Heartbeat: 20, Min: math.NaN(), Max: 100}},
		RRA: []RRA{{CF: Average, XFF: 0.5, Steps: 1, Rows: 5}}}, RedoBytes: 256}
	want := unhex(t, `
		4d56525244000d0a 01000000 00000000 // magic "MVRRD\0\r\n", version 1, flags 0
		0a00000000000000 // step 10
		01000000 01000000 // 1 DS, 1 RRA
		0010000000000000 0030000000000000 // slot size 4096, data offset 12288
		0001000000000000 // redo room 256
		6100000000000000000000000000000000000000 01 000000 // DS name "a", GAUGE
		1400000000000000 // heartbeat 20
		010000000000f87f 0000000000005940 // min NaN (U), max 100
		01 00000000000000 000000000000e03f // AVERAGE, xff 0.5
		0100000000000000 0500000000000000 // 1 step, 5 rows
		dca079b9 // CRC-32C`)
	got, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got[:len(want)]); d != "" {
		t.Errorf("header bytes (-want +got):\n%s", d)
	}
	var back header
	if err := back.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	if back.Spec.String() != h.Spec.String() || back.RedoBytes != 256 {
		t.Errorf("round trip: %v", back.Spec)
	}
}

func TestDecodeShortAndDamaged(t *testing.T) {
	h := header{Spec: testSpec(t), RedoBytes: 512}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"fixed part cut", b[:20], io.ErrUnexpectedEOF},
		{"definitions cut", b[:headerFixed+10], io.ErrUnexpectedEOF},
		{"bad magic", append([]byte("XXXXXXXX"), b[8:]...), ErrCorrupt},
		{"flipped bit", func() []byte { x := append([]byte(nil), b...); x[70] ^= 1; return x }(), ErrCorrupt},
	} {
		var got header
		if err := got.UnmarshalBinary(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.desc, err, c.want)
		}
	}
	s := testSpec(t)
	if _, err := s.unmarshalSlot(make([]byte, 10)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short slot: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := s.unmarshalSlot(make([]byte, 4096)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("zeroed slot: %v, want ErrCorrupt", err)
	}
}

func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"U", "U", false},
		{"42", "42", false},
		{"-7", "-7", false},
		{"18446744073709551615", "18446744073709551615", false},
		{"18446744073709551616", "", true},
		{"1.5", "1.5", false},
		{"1e3", "1000", false},
		{"inf", "+Inf", false},
		{"0x10", "", true},
		{"1,5", "", true},
		{"", "", true},
	} {
		v, err := ParseValue(c.in)
		if (err != nil) != c.wantErr || err == nil && v.String() != c.want {
			t.Errorf("ParseValue(%q) = %v, %v; want %q (error %v)", c.in, v, err, c.want, c.wantErr)
		}
	}
	if err := Float(1.5).checkFor(Counter); !errors.Is(err, ErrValue) {
		t.Errorf("1.5 for a COUNTER: %v, want ErrValue", err)
	}
	if err := Int(-1).checkFor(Counter); !errors.Is(err, ErrValue) {
		t.Errorf("-1 for a COUNTER: %v, want ErrValue", err)
	}
	if err := Int(-1).checkFor(Derive); err != nil {
		t.Errorf("-1 for a DERIVE: %v", err)
	}
}
