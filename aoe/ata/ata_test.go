package ata

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIdentityHasTheWordsLinuxReads(t *testing.T) {
	id := Identity{Sectors: 1<<32 + 5, Serial: "mv-0001", Firmware: "1.0", Model: "mvstack AoE"}
	b, err := id.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	word := func(i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
	for _, c := range []struct {
		desc string
		got  uint16
		want uint16
	}{
		{"word 83: LBA48 and FLUSH CACHE EXT supported", word(83) & 0xe400, 0x6400},
		{"word 86: LBA48 enabled", word(86) & 0x0400, 0x0400},
		{"word 100", word(100), 5},
		{"word 101", word(101), 0},
		{"word 102", word(102), 1},
		{"word 103", word(103), 0},
		{"word 60 (LBA28 capacity clamps)", word(60), 0xffff},
		{"word 61", word(61), 0x0fff},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#04x, want %#04x", c.desc, c.got, c.want)
		}
	}
	// Serial "mv-0001" is stored byte-swapped per word.
	if diff := cmp.Diff([]byte("vm0-00 1"), b[20:28]); diff != "" {
		t.Errorf("serial bytes (-want +got):\n%s", diff)
	}
	var back Identity
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(id, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestIdentityWithoutLBA48UsesWords60And61(t *testing.T) {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint32(b[120:], 2048)
	var id Identity
	if err := id.UnmarshalBinary(b); err != nil || id.Sectors != 2048 {
		t.Fatalf("Sectors = %d, %v; want 2048", id.Sectors, err)
	}
	if err := id.UnmarshalBinary(b[:100]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short page: %v", err)
	}
	if _, err := (Identity{Model: string(make([]byte, 41))}).MarshalBinary(); err == nil {
		t.Fatal("a 41-character model was accepted")
	}
}

func FuzzIdentity(f *testing.F) {
	seed, _ := Identity{Sectors: 1 << 20, Serial: "s", Model: "m", Firmware: "f", WriteCache: true}.MarshalBinary()
	f.Add(seed)
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		var id Identity
		if err := id.UnmarshalBinary(b); err != nil {
			return
		}
		if len(id.Serial) > 20 || len(id.Model) > 40 || len(id.Firmware) > 8 {
			t.Fatalf("strings too long: %+v", id)
		}
		out, err := id.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var id2 Identity
		if err := id2.UnmarshalBinary(out); err != nil {
			t.Fatal(err)
		}
		// Strings lose trailing spaces and NULs, so compare after one trip.
		out2, _ := id2.MarshalBinary()
		if string(out) != string(out2) {
			t.Fatalf("second round trip differs")
		}
	})
}
