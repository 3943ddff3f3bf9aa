package statframe

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzFrame checks that any input decodes without panicking and that what
// decodes survives Unmarshal→Marshal→Unmarshal unchanged (less the
// unknown records, which are dropped).
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
		if len(out) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(out))
		}
		var f2 Frame
		if err := f2.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(f1, f2, cmpopts.IgnoreFields(Frame{}, "Skipped"), cmpopts.EquateNaNs(), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		again, _ := f2.MarshalBinary()
		if !bytes.Equal(again, out) {
			t.Fatalf("second marshal differs: %x vs %x", again, out)
		}
	})
}

// FuzzPack checks that whatever records a frame holds, Pack splits them
// into frames within the size that decode back to the same records.
func FuzzPack(f *testing.F) {
	for _, c := range frameCases {
		f.Add(c.wire, uint16(200))
	}
	f.Fuzz(func(t *testing.T, b []byte, size uint16) {
		var f1 Frame
		if err := f1.UnmarshalBinary(b); err != nil {
			return
		}
		max := int(size)
		frames, err := Pack(f1.Time, f1.Records, max)
		if err != nil {
			return
		}
		var got []Record
		for _, fb := range frames {
			if len(fb) > max {
				t.Fatalf("frame of %d bytes over %d", len(fb), max)
			}
			var g Frame
			if err := g.UnmarshalBinary(fb); err != nil {
				t.Fatal(err)
			}
			got = append(got, g.Records...)
		}
		if diff := cmp.Diff(f1.Records, got, cmpopts.EquateNaNs(), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("records (-want +got):\n%s", diff)
		}
	})
}
