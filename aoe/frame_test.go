package aoe

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mvstack/mvstack/proto"
)

func pad(b []byte) []byte {
	if len(b) < proto.MinPayload {
		b = append(b, make([]byte, proto.MinPayload-len(b))...)
	}
	return b
}

var frameCases = []struct {
	desc  string
	frame Frame
	wire  []byte
}{
	{
		desc: "broadcast Query Config read, as aoe-discover sends it",
		frame: Frame{Header: Header{Version: 1, Shelf: 0xffff, Slot: 0xff, Command: CmdConfig, Tag: 0x01020304},
			Config: ConfigArg{Config: []byte{}}},
		wire: pad([]byte{0x10, 0, 0xff, 0xff, 0xff, 1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0x00, 0, 0}),
	},
	{
		desc: "Query Config response with buffer count 64, 17 sectors and a config string",
		frame: Frame{Header: Header{Version: 1, Flags: FlagResponse, Shelf: 7, Slot: 3, Command: CmdConfig, Tag: 9},
			Config: ConfigArg{BufferCount: 64, Firmware: 0x4019, SectorCount: 17, Version: 1, Cmd: ConfigRead, Config: []byte("vol=a")}},
		wire: pad([]byte{0x18, 0, 0, 7, 3, 1, 0, 0, 0, 9, 0, 64, 0x40, 0x19, 17, 0x10, 0, 5, 'v', 'o', 'l', '=', 'a'}),
	},
	{
		desc: "Query Config force set",
		frame: Frame{Header: Header{Version: 1, Shelf: 1, Slot: 2, Command: CmdConfig, Tag: 0xdeadbeef},
			Config: ConfigArg{Cmd: ConfigForceSet, Config: []byte("x")}},
		wire: pad([]byte{0x10, 0, 0, 1, 2, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0x04, 0, 1, 'x'}),
	},
	{
		desc: "ATA READ SECTORS EXT of 2 sectors at LBA 0x0102030405",
		frame: Frame{Header: Header{Version: 1, Shelf: 1, Slot: 0, Command: CmdATA, Tag: 0x80000001},
			ATA: ATAArg{Flags: ATAFlagExtended, SectorCount: 2, CmdStatus: 0x24, LBA: 0x0102030405}, Data: make([]byte, 24)},
		wire: pad([]byte{0x10, 0, 0, 1, 0, 0, 0x80, 0, 0, 1, 0x40, 0, 2, 0x24, 5, 4, 3, 2, 1, 0, 0, 0}),
	},
	{
		desc: "ATA LBA28 WRITE SECTORS of one sector with the device register in lba3",
		frame: Frame{Header: Header{Version: 1, Shelf: 0x0102, Slot: 9, Command: CmdATA, Tag: 5},
			ATA: ATAArg{Flags: ATAFlagWrite, SectorCount: 1, CmdStatus: 0x30, LBA: 0xe0000010}, Data: bytes.Repeat([]byte{0xab}, 512)},
		wire: append([]byte{0x10, 0, 1, 2, 9, 0, 0, 0, 0, 5, 0x01, 0, 1, 0x30, 0x10, 0, 0, 0xe0, 0, 0, 0, 0}, bytes.Repeat([]byte{0xab}, 512)...),
	},
	{
		desc: "ATA error response: IDNF with status ERR|DRDY",
		frame: Frame{Header: Header{Version: 1, Flags: FlagResponse, Shelf: 1, Slot: 1, Command: CmdATA, Tag: 7},
			ATA: ATAArg{Flags: ATAFlagExtended, ErrFeature: 0x10, SectorCount: 1, CmdStatus: 0x41, LBA: 1 << 40}, Data: make([]byte, 24)},
		wire: pad([]byte{0x18, 0, 0, 1, 1, 0, 0, 0, 0, 7, 0x40, 0x10, 1, 0x41, 0, 0, 0, 0, 0, 1, 0, 0}),
	},
	{
		desc: "AoE error 2 (bad argument) response",
		frame: Frame{Header: Header{Version: 1, Flags: FlagResponse | FlagError, Error: ErrBadArgument, Shelf: 1, Slot: 1, Command: CmdATA, Tag: 8},
			ATA: ATAArg{SectorCount: 200, CmdStatus: 0x20}, Data: make([]byte, 24)},
		wire: pad([]byte{0x1c, 2, 0, 1, 1, 0, 0, 0, 0, 8, 0, 0, 200, 0x20, 0, 0, 0, 0, 0, 0, 0, 0}),
	},
	{
		desc: "MAC Mask List edit adding one MAC and deleting another",
		frame: Frame{Header: Header{Version: 1, Shelf: 4, Slot: 4, Command: CmdMACMask, Tag: 1},
			MACMask: MACMaskArg{Cmd: MaskEdit, Directives: []Directive{
				{Cmd: DirAdd, MAC: proto.MAC{2, 0, 0, 0, 0, 1}},
				{Cmd: DirDelete, MAC: proto.MAC{2, 0, 0, 0, 0, 2}}}}},
		wire: pad([]byte{0x10, 0, 0, 4, 4, 2, 0, 0, 0, 1, 0, 1, 0, 2,
			0, 1, 2, 0, 0, 0, 0, 1,
			0, 2, 2, 0, 0, 0, 0, 2}),
	},
	{
		desc: "MAC Mask List response: list full",
		frame: Frame{Header: Header{Version: 1, Flags: FlagResponse, Shelf: 4, Slot: 4, Command: CmdMACMask, Tag: 2},
			MACMask: MACMaskArg{Cmd: MaskEdit, Error: MaskErrFull}},
		wire: pad([]byte{0x18, 0, 0, 4, 4, 2, 0, 0, 0, 2, 0, 1, 3, 0}),
	},
	{
		desc: "Reserve set with one MAC",
		frame: Frame{Header: Header{Version: 1, Shelf: 4, Slot: 4, Command: CmdReserve, Tag: 3},
			Reserve: ReserveArg{Cmd: ReserveSet, MACs: []proto.MAC{{2, 0, 0, 0, 0, 9}}}},
		wire: pad([]byte{0x10, 0, 0, 4, 4, 3, 0, 0, 0, 3, 1, 1, 2, 0, 0, 0, 0, 9}),
	},
	{
		desc: "mvstack epoch register at epoch 7",
		frame: Frame{Header: Header{Version: 1, Shelf: 4, Slot: 4, Command: CmdEpoch, Tag: 10},
			Epoch: EpochArg{Op: EpochRegister, Epoch: 7}},
		wire: pad([]byte{0x10, 0, 0, 4, 4, 0xf0, 0, 0, 0, 10, 0x6d, 0x76, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}),
	},
	{
		desc: "mvstack epoch reply: stale, the export is at epoch 0x0102030405060708",
		frame: Frame{Header: Header{Version: 1, Flags: FlagResponse, Shelf: 4, Slot: 4, Command: CmdEpoch, Tag: 10},
			Epoch: EpochArg{Op: EpochRegister, Status: EpochStale, Epoch: 0x0102030405060708}},
		wire: pad([]byte{0x18, 0, 0, 4, 4, 0xf0, 0, 0, 0, 10, 0x6d, 0x76, 1, 1, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}),
	},
	{
		desc: "ATA refused with the vendor error stale epoch",
		frame: Frame{Header: Header{Version: 1, Flags: FlagResponse | FlagError, Error: ErrEpochStale, Shelf: 1, Slot: 1, Command: CmdATA, Tag: 8},
			ATA: ATAArg{Flags: ATAFlagExtended, SectorCount: 8, CmdStatus: 0x24}, Data: make([]byte, 24)},
		wire: pad([]byte{0x1c, 0xf1, 0, 1, 1, 0, 0, 0, 0, 8, 0x40, 0, 8, 0x24, 0, 0, 0, 0, 0, 0, 0, 0}),
	},
	{
		desc:  "vendor command keeps its bytes",
		frame: Frame{Header: Header{Version: 1, Shelf: 4, Slot: 4, Command: 0xf1, Tag: 3}, Data: append([]byte{1, 2, 3}, make([]byte, 33)...)},
		wire:  pad([]byte{0x10, 0, 0, 4, 4, 0xf1, 0, 0, 0, 3, 1, 2, 3}),
	},
}

func TestFrameMarshalMatchesTheWire(t *testing.T) {
	for _, c := range frameCases {
		t.Run(c.desc, func(t *testing.T) {
			got, err := c.frame.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.wire, got); diff != "" {
				t.Errorf("MarshalBinary (-want +got):\n%s", diff)
			}
			if len(got) < proto.MinPayload {
				t.Errorf("frame of %d bytes is shorter than the Ethernet minimum payload", len(got))
			}
		})
	}
}

func TestFrameUnmarshalReadsTheWire(t *testing.T) {
	for _, c := range frameCases {
		t.Run(c.desc, func(t *testing.T) {
			var got Frame
			if err := got.UnmarshalBinary(c.wire); err != nil {
				t.Fatal(err)
			}
			want := c.frame
			if want.Command == CmdConfig && want.Config.Config == nil {
				want.Config.Config = []byte{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShortInputIsUnexpectedEOF(t *testing.T) {
	for _, c := range []struct {
		desc string
		wire []byte
	}{
		{"header cut", []byte{0x10, 0, 0, 1}},
		{"ATA argument cut", []byte{0x10, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0x40, 0}},
		{"config string longer than the frame", []byte{0x10, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 'a'}},
		{"mask directives beyond the frame", []byte{0x10, 0, 0, 1, 0, 2, 0, 0, 0, 1, 0, 1, 0, 3, 0, 1, 2, 3}},
		{"reserve MACs beyond the frame", []byte{0x10, 0, 0, 1, 0, 3, 0, 0, 0, 1, 1, 2, 1, 2, 3, 4, 5, 6}},
		{"epoch argument cut", []byte{0x10, 0, 0, 1, 0, 0xf0, 0, 0, 0, 1, 0x6d, 0x76, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
	} {
		t.Run(c.desc, func(t *testing.T) {
			var f Frame
			if err := f.UnmarshalBinary(c.wire); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestOversizedFieldsAreRefused(t *testing.T) {
	var f Frame
	long := []byte{0x10, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x04, 0x01}
	long = append(long, make([]byte, 1025)...)
	if err := f.UnmarshalBinary(long); !errors.Is(err, ErrBadField) {
		t.Errorf("config string of 1025 bytes: err = %v, want ErrBadField", err)
	}
	big := Frame{Header: Header{Version: 1, Command: CmdConfig}, Config: ConfigArg{Config: make([]byte, 1025)}}
	if _, err := big.MarshalBinary(); !errors.Is(err, ErrBadField) {
		t.Errorf("marshal config of 1025 bytes: err = %v, want ErrBadField", err)
	}
	lba := Frame{Header: Header{Version: 1}, ATA: ATAArg{LBA: 1 << 48}}
	if _, err := lba.MarshalBinary(); !errors.Is(err, ErrBadField) {
		t.Errorf("marshal LBA 2^48: err = %v, want ErrBadField", err)
	}
}

func TestEpochArgumentChecksMagicVersionAndReserved(t *testing.T) {
	good := []byte{0x6d, 0x76, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}
	for _, c := range []struct {
		desc string
		at   int
		val  byte
	}{
		{"another vendor's magic", 0, 0x12},
		{"version 2", 2, 2},
		{"reserved byte set", 6, 1},
	} {
		t.Run(c.desc, func(t *testing.T) {
			b := bytes.Clone(good)
			b[c.at] = c.val
			var a EpochArg
			if err := a.UnmarshalBinary(b); !errors.Is(err, ErrBadField) {
				t.Errorf("err = %v, want ErrBadField", err)
			}
		})
	}
	var a EpochArg
	if err := a.UnmarshalBinary(good); err != nil || a != (EpochArg{Op: EpochRegister, Epoch: 9}) {
		t.Errorf("good argument = %+v, %v", a, err)
	}
}

func TestSectorHonoursLBA28AndLBA48(t *testing.T) {
	a := ATAArg{LBA: 0xe0_123456 | 0xab<<32}
	if got := a.Sector(); got != 0x0123456 {
		t.Errorf("LBA28 sector = %#x, want 0x123456 (device nibble and high bytes ignored)", got)
	}
	a.Flags = ATAFlagExtended
	if got := a.Sector(); got != 0xab_e0123456 {
		t.Errorf("LBA48 sector = %#x", got)
	}
}

func TestSectorsPerFrame(t *testing.T) {
	for mtu, want := range map[int]int{1500: 2, 9000: 17, 1024: 1, 20: 0, 1 << 20: 255} {
		if got := SectorsPerFrame(mtu); got != want {
			t.Errorf("SectorsPerFrame(%d) = %d, want %d", mtu, got, want)
		}
	}
}

func TestArgumentTypesRoundTripAlone(t *testing.T) {
	h := Header{Version: 1, Flags: FlagResponse, Error: 3, Shelf: 0xbeef, Slot: 7, Command: CmdReserve, Tag: 42}
	b, _ := h.MarshalBinary()
	var h2 Header
	if err := h2.UnmarshalBinary(b); err != nil || h2 != h {
		t.Errorf("header round trip = %+v, %v", h2, err)
	}
	a := ATAArg{Flags: ATAFlagExtended | ATAFlagWrite, ErrFeature: 1, SectorCount: 17, CmdStatus: 0x34, LBA: 1<<48 - 1}
	b, _ = a.MarshalBinary()
	var a2 ATAArg
	if err := a2.UnmarshalBinary(b); err != nil || a2 != a {
		t.Errorf("ATA round trip = %+v, %v", a2, err)
	}
	r := ReserveArg{Cmd: ReserveForceSet, MACs: []proto.MAC{{1}, {2}}}
	b, _ = r.MarshalBinary()
	var r2 ReserveArg
	if err := r2.UnmarshalBinary(b); err != nil || !cmp.Equal(r, r2) {
		t.Errorf("reserve round trip = %+v, %v", r2, err)
	}
	m := MACMaskArg{Cmd: MaskEdit, Directives: []Directive{{DirAdd, proto.MAC{3}}}}
	b, _ = m.MarshalBinary()
	var m2 MACMaskArg
	if err := m2.UnmarshalBinary(b); err != nil || !cmp.Equal(m, m2) {
		t.Errorf("mask round trip = %+v, %v", m2, err)
	}
	c := ConfigArg{BufferCount: 1, Firmware: 2, SectorCount: 3, Version: 1, Cmd: ConfigPrefix, Config: []byte("abc")}
	b, _ = c.MarshalBinary()
	var c2 ConfigArg
	if err := c2.UnmarshalBinary(b); err != nil || !cmp.Equal(c, c2) {
		t.Errorf("config round trip = %+v, %v", c2, err)
	}
}
