package aoepacket

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/mvstack/mvstack/aoe"
)

func TestGopacketDecodesOurFrames(t *testing.T) {
	lt := Register()
	f := aoe.Frame{
		Header: aoe.Header{Version: 1, Flags: aoe.FlagResponse, Shelf: 3, Slot: 1, Command: aoe.CmdATA, Tag: 77},
		ATA:    aoe.ATAArg{Flags: aoe.ATAFlagExtended, SectorCount: 1, CmdStatus: 0x40, LBA: 12},
		Data:   bytes.Repeat([]byte{0x5a}, 512),
	}
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: 0x88a2}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, &Layer{Frame: f}); err != nil {
		t.Fatal(err)
	}
	pkt := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket reports a decode error: %v", el.Error())
	}
	l, ok := pkt.Layer(lt).(*Layer)
	if !ok {
		t.Fatalf("no AoE layer in %v", pkt)
	}
	if l.Tag != 77 || l.Shelf != 3 || l.ATA.LBA != 12 || !bytes.Equal(l.Data, f.Data) {
		t.Errorf("decoded %+v", l.Frame.Header)
	}
	if !bytes.Equal(pkt.ApplicationLayer().Payload(), f.Data) {
		t.Errorf("payload is not the sector data")
	}

	// A Query Config frame padded to 60 bytes decodes too.
	q := aoe.Frame{Header: aoe.Header{Version: 1, Shelf: 0xffff, Slot: 0xff, Command: aoe.CmdConfig}}
	buf = gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, &Layer{Frame: q}); err != nil {
		t.Fatal(err)
	}
	if len(buf.Bytes()) != 60 {
		t.Errorf("query frame is %d bytes, want 60", len(buf.Bytes()))
	}
	pkt = gopacket.NewPacket(buf.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	if l, ok := pkt.Layer(lt).(*Layer); !ok || l.Command != aoe.CmdConfig || pkt.ErrorLayer() != nil {
		t.Errorf("query config did not decode: %v", pkt)
	}

	// mvstack's vendor epoch command decodes with its argument.
	ep := aoe.Frame{Header: aoe.Header{Version: 1, Flags: aoe.FlagResponse, Shelf: 3, Slot: 1, Command: aoe.CmdEpoch, Tag: 5},
		Epoch: aoe.EpochArg{Op: aoe.EpochRegister, Status: aoe.EpochStale, Epoch: 12}}
	buf = gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, &Layer{Frame: ep}); err != nil {
		t.Fatal(err)
	}
	pkt = gopacket.NewPacket(buf.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	if l, ok := pkt.Layer(lt).(*Layer); !ok || pkt.ErrorLayer() != nil || l.Command != aoe.CmdEpoch || l.Epoch != ep.Epoch {
		t.Errorf("epoch command did not decode: %v", pkt)
	}
}
