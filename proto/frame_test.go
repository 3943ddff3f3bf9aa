package proto

import (
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeaderWireFormat(t *testing.T) {
	for _, tc := range []struct {
		desc string
		b    []byte
		want Header
		err  error
	}{
		{
			desc: "data frame",
			b: []byte{1, 1, 7, 0,
				0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
				0, 0, 0, 0, 0, 0, 0, 9,
				0, 0, 0, 0, 0, 0, 1, 0},
			want: Header{Version: 1, Type: FrameData, KeyID: 7, SrcEpoch: 0x1122334455667788, DstEpoch: 9, Counter: 256},
		},
		{
			desc: "hello reply",
			b:    append([]byte{1, 3, 0, FlagReply}, make([]byte, 24)...),
			want: Header{Version: 1, Type: FrameHello, Flags: FlagReply},
		},
		{desc: "short", b: make([]byte, HeaderLen-1), err: io.ErrUnexpectedEOF},
		{desc: "version 2", b: append([]byte{2, 1, 0, 0}, make([]byte, 24)...), err: ErrBadVersion},
		{desc: "type 0", b: append([]byte{1, 0, 0, 0}, make([]byte, 24)...), err: ErrBadType},
		{desc: "type 8", b: append([]byte{1, 8, 0, 0}, make([]byte, 24)...), err: ErrBadType},
		{desc: "reserved flag", b: append([]byte{1, 2, 0, 0x80}, make([]byte, 24)...), err: ErrBadFlags},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var h Header
			err := h.UnmarshalBinary(tc.b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
			b, _ := h.MarshalBinary()
			if diff := cmp.Diff(tc.b, b); diff != "" {
				t.Fatalf("marshal (-want +got)\n%s", diff)
			}
		})
	}
}

func TestDataWireFormat(t *testing.T) {
	b := []byte{
		0, 0, 0, 1, // stream
		0, 0, 0, 5, // seq
		0, 0, 0, 2, // ack stream
		0, 0, 0, 9, // ack
		0, 0, 4, 0, // window
		FragFirst | FragLast, 0,
		0, 0, 0, 3, // message length
		'a', 'b', 'c',
	}
	want := Data{Stream: 1, Seq: 5, AckStream: 2, Ack: 9, Window: 1024, Frag: FragFirst | FragLast, MsgLen: 3, Payload: []byte("abc")}
	var d Data
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	for _, bad := range []struct {
		desc string
		mod  func([]byte)
		err  error
	}{
		{"stream 0", func(b []byte) { b[3] = 0 }, ErrBadLength},
		{"reserved fragment flag", func(b []byte) { b[20] |= 0x80 }, ErrBadFlags},
		{"reserved byte", func(b []byte) { b[21] = 1 }, ErrBadFlags},
		{"segment longer than its message", func(b []byte) { b[25] = 2 }, ErrBadLength},
	} {
		g := append([]byte(nil), b...)
		bad.mod(g)
		if err := new(Data).UnmarshalBinary(g); !errors.Is(err, bad.err) {
			t.Errorf("%s: err = %v, want %v", bad.desc, err, bad.err)
		}
	}
	if err := new(Data).UnmarshalBinary(b[:DataHeaderLen]); !errors.Is(err, ErrBadLength) {
		t.Errorf("empty segment: err = %v", err)
	}
	if err := new(Data).UnmarshalBinary(b[:DataHeaderLen-1]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short: err = %v", err)
	}
}

func TestAckWireFormat(t *testing.T) {
	b := []byte{
		0, 0, 0, 3, // stream
		0, 0, 0, 10, // ack
		0, 0, 0, 64, // window
		2,
		0, 0, 0, 12, 0, 0, 0, 14,
		0, 0, 0, 20, 0, 0, 0, 21,
	}
	want := Ack{Stream: 3, Ack: 10, Window: 64, SACK: []SACKRange{{12, 14}, {20, 21}}}
	var a Ack
	if err := a.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	got, _ := a.MarshalBinary()
	if diff := cmp.Diff(b, got); diff != "" {
		t.Fatalf("marshal (-want +got)\n%s", diff)
	}
	for _, bad := range []struct {
		desc string
		b    []byte
		err  error
	}{
		{"too many ranges", append(append([]byte(nil), b[:12]...), 17), ErrBadLength},
		{"ranges cut short", b[:len(b)-1], io.ErrUnexpectedEOF},
		{"trailing bytes", append(append([]byte(nil), b...), 0), ErrBadLength},
		{"empty range", append(append([]byte(nil), b[:12]...), 1, 0, 0, 0, 5, 0, 0, 0, 5), ErrBadLength},
	} {
		if err := new(Ack).UnmarshalBinary(bad.b); !errors.Is(err, bad.err) {
			t.Errorf("%s: err = %v, want %v", bad.desc, err, bad.err)
		}
	}
}

func TestHelloWireFormat(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x23, 0x28, 0, 0, 4, 0}
	var h Hello
	if err := h.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Hello{Challenge: 0x0102030405060708, MTU: 9000, Window: 1024}, h); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	tiny := append([]byte(nil), b...)
	tiny[10], tiny[11] = 0, 50
	if err := new(Hello).UnmarshalBinary(tiny); !errors.Is(err, ErrBadLength) {
		t.Errorf("MTU 50: err = %v", err)
	}
}

func TestMessageWireFormat(t *testing.T) {
	req := message{kind: kindRequest, id: 5, method: "node.info", payload: []byte{0xa0}}
	b := req.appendTo(nil)
	want := append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 5, 9}, append([]byte("node.info"), 0xa0)...)
	if diff := cmp.Diff(want, b); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	var m message
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(req, m, cmp.AllowUnexported(message{})); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	for _, bad := range [][]byte{
		{1, 0, 0, 0, 0, 0, 0, 0, 5, 20, 'x'}, // method longer than the message
		{1, 0, 0, 0, 0, 0, 0, 0, 5, 0},       // empty method
		{1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'},  // a call without an id
		{9, 0, 0, 0, 0, 0, 0, 0, 5, 0},       // unknown kind
		{1, 0, 0},                            // short
	} {
		if err := new(message).UnmarshalBinary(bad); err == nil {
			t.Errorf("% x decoded", bad)
		}
	}
}

// Fuzz targets: every decoder is fed arbitrary bytes; what decodes must
// encode back to the same bytes and decode to the same value.

func FuzzHeader(f *testing.F) {
	f.Add(append([]byte{1, 1, 7, 0}, make([]byte, 24)...))
	f.Add(append([]byte{1, 3, 0, FlagReply}, make([]byte, 24)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if h.UnmarshalBinary(b) != nil {
			return
		}
		out, _ := h.MarshalBinary()
		var h2 Header
		if err := h2.UnmarshalBinary(out); err != nil || h2 != h || string(out) != string(b[:HeaderLen]) {
			t.Fatalf("round trip: %v %+v %+v", err, h, h2)
		}
	})
}

func FuzzData(f *testing.F) {
	f.Add(Data{Stream: 1, Seq: 5, Frag: FragFirst, MsgLen: 10, Payload: []byte("hello")}.marshalled())
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Data
		if d.UnmarshalBinary(b) != nil {
			return
		}
		out, _ := d.MarshalBinary()
		var d2 Data
		if err := d2.UnmarshalBinary(out); err != nil || !cmp.Equal(d, d2) || string(out) != string(b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func (d Data) marshalled() []byte { b, _ := d.MarshalBinary(); return b }

func FuzzAck(f *testing.F) {
	b, _ := Ack{Stream: 1, Ack: 4, Window: 9, SACK: []SACKRange{{6, 8}}}.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Ack
		if a.UnmarshalBinary(b) != nil {
			return
		}
		out, err := a.MarshalBinary()
		var a2 Ack
		if err != nil || a2.UnmarshalBinary(out) != nil || !cmp.Equal(a, a2) || string(out) != string(b) {
			t.Fatalf("round trip of % x", b)
		}
	})
}

func FuzzHello(f *testing.F) {
	b, _ := Hello{Challenge: 3, MTU: 1500, Window: 1024}.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Hello
		if h.UnmarshalBinary(b) != nil {
			return
		}
		out, _ := h.MarshalBinary()
		if string(out) != string(b) {
			t.Fatalf("round trip of % x", b)
		}
	})
}

func FuzzMessage(f *testing.F) {
	f.Add(message{kind: kindRequest, id: 5, method: "node.info", payload: []byte{0xa0}}.appendTo(nil))
	f.Add(message{kind: kindError, id: 5, code: CodeHandler, payload: []byte("boom")}.appendTo(nil))
	f.Add(message{kind: kindOneway, method: "hb", payload: []byte{1}}.appendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m message
		if m.UnmarshalBinary(b) != nil {
			return
		}
		out := m.appendTo(nil)
		var m2 message
		if err := m2.UnmarshalBinary(out); err != nil || !cmp.Equal(m, m2, cmp.AllowUnexported(message{})) || string(out) != string(b) {
			t.Fatalf("round trip of % x: %v", b, err)
		}
	})
}
