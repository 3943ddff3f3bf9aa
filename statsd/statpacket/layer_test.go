package statpacket_test

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/statframe"
	"github.com/mvstack/mvstack/statsd/statpacket"
)

// A sealed stat frame, as it leaves a node, decodes in gopacket: the
// datagram header is the layer, and the payload opens and decodes to the
// records that were sent.
func TestSealedStatFrameDecodes(t *testing.T) {
	lt := statpacket.Register()
	k, _ := proto.NewKey(3)
	keys, _ := proto.NewKeyring(k)
	src, dst := proto.MAC{2, 0, 0, 0, 0, 1}, proto.MAC{2, 0, 0, 0, 0, 2}
	s, err := proto.NewSealer(keys, "mvstack stats v1", src)
	if err != nil {
		t.Fatal(err)
	}
	f := statframe.Frame{Time: 5, Records: []statframe.Record{&statframe.NUMA{ID: 1, MemTotal: 10, MemFree: 4}}}
	payload, _ := f.MarshalBinary()
	dgram := s.Seal(nil, dst, payload)
	s.Seal(nil, dst, payload) // a second frame: the counter moves on
	dgram2 := s.Seal(nil, dst, payload)

	for i, d := range [][]byte{dgram, dgram2} {
		eth := append(append(append([]byte{}, dst[:]...), src[:]...), 0x88, 0xb6)
		pkt := gopacket.NewPacket(append(eth, d...), layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("decode error: %v", el.Error())
		}
		l, ok := pkt.Layer(lt).(*statpacket.Layer)
		if !ok {
			t.Fatalf("no stats layer in %v", pkt)
		}
		if l.Version != 1 || l.KeyID != 3 || l.Epoch == 0 || l.Counter != uint64(1+2*i) {
			t.Errorf("header %+v", l)
		}
		// Re-serialising the header over the payload gives the datagram back.
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, l, gopacket.Payload(l.Payload)); err != nil {
			t.Fatal(err)
		}
		got, err := proto.NewOpener(keys, "mvstack stats v1").Open(buf.Bytes(), src, dst)
		if err != nil {
			t.Fatalf("re-serialised datagram does not open: %v", err)
		}
		var g statframe.Frame
		if err := g.UnmarshalBinary(got); err != nil || g.Records[0].(*statframe.NUMA).MemFree != 4 {
			t.Errorf("records %+v, %v", g.Records, err)
		}
	}
	short := gopacket.NewPacket(append(make([]byte, 12), 0x88, 0xb6, 1, 2), layers.LayerTypeEthernet, gopacket.Default)
	if short.ErrorLayer() == nil {
		t.Errorf("a truncated datagram decoded")
	}
}
