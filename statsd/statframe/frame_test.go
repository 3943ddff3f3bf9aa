package statframe

import (
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// hx decodes hex written with spaces and line breaks between fields.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

var frameCases = []struct {
	desc  string
	frame Frame
	wire  []byte
}{
	{
		desc:  "empty frame",
		frame: Frame{Time: 1_700_000_000_000_000_000},
		wire:  hx("01 00 0000 17979cfe362a0000"),
	},
	{
		desc: "host",
		frame: Frame{Time: 1, Records: []Record{&Host{Time: 2, PCPUs: 8, Pools: 1, NUMANodes: 2, Guests: 3,
			MemTotal: 1 << 30, MemFree: 1 << 29, Load1: 0.5, Load5: 1, Load15: 2}}},
		wire: hx(`01 00 0001 0000000000000001
			01 0038 0000000000000002 0008 0001 0002 0003 0000000040000000 0000000020000000
			3fe0000000000000 3ff0000000000000 4000000000000000`),
	},
	{
		desc: "pcpu, numa and pool",
		frame: Frame{Time: 1, Records: []Record{
			&PCPU{ID: 4, Time: 5, CPUTime: 1e9},
			&NUMA{ID: 1, MemTotal: 4096, MemFree: 1024},
			&Pool{ID: 0, Load: 1.5, CPUs: 8, Guests: 2},
		}},
		wire: hx(`01 00 0003 0000000000000001
			02 0012 0004 0000000000000005 000000003b9aca00
			03 0012 0001 0000000000001000 0000000000000400
			04 000e 0000 3ff8000000000000 0008 0002`),
	},
	{
		desc: "domain, vcpu and memory",
		frame: Frame{Time: 9, Records: []Record{
			&Domain{Domain: 7, UUID: [16]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 0x40, 2, 0x80, 3, 4, 5, 6, 7, 8, 9}},
			&VCPU{Domain: 7, ID: 1, Time: 9, Util: 25, CPUTime: 3},
			&Memory{Domain: 7, Time: 9, Current: 512, Max: 1024},
		}},
		wire: hx(`01 00 0003 0000000000000009
			05 0014 00000007 deadbeef00014002 8003040506070809
			06 001e 00000007 0001 0000000000000009 4039000000000000 0000000000000003
			07 001c 00000007 0000000000000009 0000000000000200 0000000000000400`),
	},
	{
		desc: "vif and vbd",
		frame: Frame{Time: 9, Records: []Record{
			&VIF{Domain: 7, ID: 0, Time: 9, RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDrops: 4,
				TxBytes: 5, TxPackets: 6, TxErrors: 7, TxDrops: 8},
			&VBD{Domain: 7, ID: 1, Time: 9, Backing: BackingNBD, Outstanding: 2, ReadReqs: 3,
				WriteReqs: 4, ReadSectors: 5, WriteSectors: 6, Device: "vdb"},
		}},
		wire: hx(`01 00 0002 0000000000000009
			08 004e 00000007 0000 0000000000000009
			   0000000000000001 0000000000000002 0000000000000003 0000000000000004
			   0000000000000005 0000000000000006 0000000000000007 0000000000000008
			09 003b 00000007 0001 0000000000000009 02 0000000000000002
			   0000000000000003 0000000000000004 0000000000000005 0000000000000006
			   03 766462`),
	},
	{
		desc:  "negative time and a NaN utilisation",
		frame: Frame{Time: -1, Records: []Record{&VCPU{Domain: 1, Util: math.NaN()}}},
		wire: hx(`01 00 0001 ffffffffffffffff
			06 001e 00000001 0000 0000000000000000 7ff8000000000001 0000000000000000`),
	},
}

func TestMarshal(t *testing.T) {
	for _, c := range frameCases {
		t.Run(c.desc, func(t *testing.T) {
			got, err := c.frame.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.wire, got); diff != "" {
				t.Errorf("wire (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	for _, c := range frameCases {
		t.Run(c.desc, func(t *testing.T) {
			var f Frame
			if err := f.UnmarshalBinary(c.wire); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.frame, f, cmpopts.EquateNaNs(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("frame (-want +got):\n%s", diff)
			}
		})
	}
}

// What a newer sender may add decodes: unknown record types are skipped
// and counted, known records longer than their fields keep the fields we
// know, and zero padding after the last record is accepted.
func TestForwardCompatible(t *testing.T) {
	wire := hx(`01 00 0003 0000000000000001
		7f 0003 aabbcc
		03 0014 0001 0000000000001000 0000000000000400 ffff
		80 0000
		0000000000`)
	// The count says 3 but there are 3 records: unknown, numa, unknown.
	var f Frame
	if err := f.UnmarshalBinary(wire); err != nil {
		t.Fatal(err)
	}
	want := Frame{Time: 1, Records: []Record{&NUMA{ID: 1, MemTotal: 4096, MemFree: 1024}}, Skipped: 2}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	for _, c := range []struct {
		desc string
		wire []byte
		want error
	}{
		{"short header", hx("01 00 0000 00000000000000"), io.ErrUnexpectedEOF},
		{"version 2", hx("02 00 0000 0000000000000000"), ErrVersion},
		{"flags set", hx("01 01 0000 0000000000000000"), ErrMalformed},
		{"count beyond the records", hx("01 00 0001 0000000000000000"), io.ErrUnexpectedEOF},
		{"truncated record header", hx("01 00 0001 0000000000000000 03 00"), io.ErrUnexpectedEOF},
		{"truncated value", hx("01 00 0001 0000000000000000 03 0012 0001"), io.ErrUnexpectedEOF},
		{"known record shorter than its fields", hx("01 00 0001 0000000000000000 03 0002 0001"), ErrMalformed},
		{"garbage after the last record", hx("01 00 0000 0000000000000000 00 01"), ErrMalformed},
		{"device name longer than 32", append(hx(`01 00 0001 0000000000000000 09 0059
			00000000 0000 0000000000000000 00 0000000000000000 0000000000000000 0000000000000000
			0000000000000000 0000000000000000 21`), []byte(strings.Repeat("a", 33))...), ErrMalformed},
		{"device name past the record", hx(`01 00 0001 0000000000000000 09 0039
			00000000 0000 0000000000000000 00 0000000000000000 0000000000000000 0000000000000000
			0000000000000000 0000000000000000 04 616161`), ErrMalformed},
		{"device name not printable", hx(`01 00 0001 0000000000000000 09 003a
			00000000 0000 0000000000000000 00 0000000000000000 0000000000000000 0000000000000000
			0000000000000000 0000000000000000 02 6100`), ErrMalformed},
	} {
		t.Run(c.desc, func(t *testing.T) {
			var f Frame
			if err := f.UnmarshalBinary(c.wire); !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

// A device name that would not decode is made decodable when sent.
func TestVBDNameSanitised(t *testing.T) {
	f := Frame{Records: []Record{&VBD{Device: "v d\x00" + strings.Repeat("x", 40)}}}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var g Frame
	if err := g.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got, want := g.Records[0].(*VBD).Device, "v_d_"+strings.Repeat("x", 28); got != want {
		t.Errorf("device %q, want %q", got, want)
	}
}

// Pack fills each frame up to the size and no further, keeps the records'
// order, and every frame decodes to its share.
func TestPack(t *testing.T) {
	var recs []Record
	for i := range 40 {
		recs = append(recs, &VIF{Domain: 1, ID: uint16(i), RxBytes: uint64(i)})
	}
	const max = 1500 - 36 // an Ethernet MTU less the datagram overhead
	frames, err := Pack(77, recs, max)
	if err != nil {
		t.Fatal(err)
	}
	perFrame := (max - HeaderLen) / (RecordHeaderLen + 78)
	if want := (40 + perFrame - 1) / perFrame; len(frames) != want {
		t.Fatalf("%d frames, want %d", len(frames), want)
	}
	var got []Record
	for i, b := range frames {
		if len(b) > max {
			t.Errorf("frame %d is %d bytes, over %d", i, len(b), max)
		}
		if i < len(frames)-1 && len(b)+RecordHeaderLen+78 <= max {
			t.Errorf("frame %d is %d bytes: another record would have fit", i, len(b))
		}
		var f Frame
		if err := f.UnmarshalBinary(b); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Time != 77 {
			t.Errorf("frame %d time %d", i, f.Time)
		}
		got = append(got, f.Records...)
	}
	if diff := cmp.Diff(recs, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if _, err := Pack(0, recs[:1], HeaderLen+10); !errors.Is(err, ErrTooBig) {
		t.Errorf("a record bigger than the frame: %v, want ErrTooBig", err)
	}
	if frames, err := Pack(0, nil, max); err != nil || len(frames) != 0 {
		t.Errorf("no records: %d frames, %v", len(frames), err)
	}
}
