package dbbackup

import (
	"bytes"
	"testing"
)

// FuzzHeader checks that any sector either decodes to a header that
// encodes back to the same bytes, or is refused without panic.
func FuzzHeader(f *testing.F) {
	h := Header{Index: 42, Term: 7, Length: 1000, At: t0, Writer: "c2", Sum: [32]byte{1, 2, 3}}
	b, _ := h.MarshalBinary()
	f.Add(b)
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if err := h.UnmarshalBinary(b); err != nil {
			return
		}
		b2, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(b2, b[:HeaderSize]) {
			t.Fatalf("round trip differs:\n% x\n% x", b[:HeaderSize], b2)
		}
	})
}
