package protopacket_test

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
	"github.com/mvstack/mvstack/proto/protopacket"
)

// A capture of a real exchange decodes in gopacket with no error layer, and
// every frame's header is what the protocol sent.
func TestCapturedControlFramesDecode(t *testing.T) {
	lt := protopacket.Register()
	var capture bytes.Buffer
	synctest.Test(t, func(t *testing.T) {
		sw := linktest.NewSwitch(linktest.Config{Pcap: &capture})
		defer sw.Close()
		k, _ := proto.NewKey(4)
		keys, _ := proto.NewKeyring(k)
		cfg := proto.DefaultConfig()
		cfg.Keys = keys
		a, _ := proto.NewEndpoint(sw.Link(proto.MAC{2, 0, 0, 0, 0, 1}, proto.EtherTypeControl), cfg)
		b, _ := proto.NewEndpoint(sw.Link(proto.MAC{2, 0, 0, 0, 0, 2}, proto.EtherTypeControl), cfg)
		defer a.Close()
		defer b.Close()
		if _, err := a.Call(context.Background(), b.Addr(), proto.MethodPing, make([]byte, 5000)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // fake time: the delayed ACK goes out
		synctest.Wait()
	})
	r, err := pcapgo.NewReader(&capture)
	if err != nil {
		t.Fatal(err)
	}
	types := map[proto.FrameType]int{}
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("decode error: %v", el.Error())
		}
		l, ok := pkt.Layer(lt).(*protopacket.Layer)
		if !ok {
			t.Fatalf("no control layer in %v", pkt)
		}
		if l.Version != proto.Version || l.KeyID != 4 || l.SrcEpoch == 0 {
			t.Errorf("decoded header %+v", l.Header)
		}
		types[l.Type]++
	}
	if types[proto.FrameHello] != 2 || types[proto.FrameData] < 2 || types[proto.FrameAck] == 0 {
		t.Fatalf("frame types in the capture: %v; want one hello exchange (the answer needs none of its own), data both ways and acks", types)
	}
}
