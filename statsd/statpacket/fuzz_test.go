package statpacket

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
)

// FuzzLayer checks that any input decodes without panicking and that a
// decoded header serialised over its payload gives the input back.
func FuzzLayer(f *testing.F) {
	f.Add(append([]byte{1, 3, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 26)...))
	f.Add([]byte{1, 0, 0, 0})
	f.Add(append([]byte{2}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var l Layer
		if err := l.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			return
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, &l, gopacket.Payload(l.Payload)); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(b)
		want[2], want[3] = 0, 0 // reserved: written as zero
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("round trip %x, want %x", buf.Bytes(), want)
		}
	})
}
