package aoe

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzFrame checks that any input decodes without panicking and that what
// decodes survives Unmarshal→Marshal→Unmarshal unchanged (apart from the
// Ethernet padding Marshal adds after short data).
func FuzzFrame(f *testing.F) {
	for _, c := range frameCases {
		f.Add(c.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var f1 Frame
		if err := f1.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := f1.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded frame does not marshal: %v", err)
		}
		var f2 Frame
		if err := f2.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(f1, f2, cmpopts.IgnoreFields(Frame{}, "Data"), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if !bytes.HasPrefix(f2.Data, f1.Data) || len(bytes.Trim(f2.Data[len(f1.Data):], "\x00")) != 0 {
			t.Fatalf("data %x came back as %x", f1.Data, f2.Data)
		}
		again, err := f2.MarshalBinary()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second marshal differs: %x vs %x (%v)", again, out, err)
		}
	})
}

// FuzzEpochArg checks that the vendor epoch argument decodes any input
// without panicking, and that what decodes marshals back to the same bytes.
func FuzzEpochArg(f *testing.F) {
	f.Add([]byte{0x6d, 0x76, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7})
	f.Add([]byte{0x6d, 0x76, 1, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a EpochArg
		if err := a.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded argument does not marshal: %v", err)
		}
		if !bytes.Equal(out, b[:EpochArgLen]) {
			t.Fatalf("%x marshals back as %x", b[:EpochArgLen], out)
		}
	})
}
