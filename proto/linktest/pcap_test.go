package linktest

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mvstack/mvstack/proto"
)

func TestPcapHoldsEveryFrameBeforeFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var capture bytes.Buffer
		s := NewSwitch(Config{MTU: 9000, Pcap: &capture, Hook: Faults{Loss: 1}.Hook()})
		defer s.Close()
		a, _ := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		ctl := s.Link(macA, proto.EtherTypeControl)
		jumbo := bytes.Repeat([]byte{0xab}, 9000)
		a.WriteTo([]byte("first"), macB)
		time.Sleep(time.Second)
		ctl.WriteTo(jumbo, proto.Broadcast)

		r, err := pcapgo.NewReader(&capture)
		if err != nil {
			t.Fatal(err)
		}
		if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() < 9000+proto.EthernetHeaderLen {
			t.Fatalf("link type %v, snaplen %d: want Ethernet and room for jumbo frames", r.LinkType(), r.Snaplen())
		}
		type frame struct {
			Src, Dst  string
			EtherType layers.EthernetType
			Payload   []byte
			At        time.Duration
		}
		start := time.Now().Add(-time.Second)
		var got []frame
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			eth, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if !ok {
				t.Fatalf("frame %d does not decode as Ethernet: %v", len(got), p.ErrorLayer())
			}
			got = append(got, frame{eth.SrcMAC.String(), eth.DstMAC.String(), eth.EthernetType, eth.Payload, ci.Timestamp.Sub(start)})
		}
		want := []frame{
			{macA.String(), macB.String(), layers.EthernetType(proto.EtherTypeAoE), append([]byte("first"), make([]byte, proto.MinPayload-5)...), 0},
			{macA.String(), proto.Broadcast.String(), layers.EthernetType(proto.EtherTypeControl), jumbo, time.Second},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("capture (-want +got):\n%s", diff)
		}
		if err := s.PcapErr(); err != nil {
			t.Fatal(err)
		}
	})
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestPcapErrorIsKeptAndTrafficFlows(t *testing.T) {
	s := newSwitch(t, Config{Pcap: &failWriter{n: 1}})
	a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	a.WriteTo([]byte("x"), macB)
	a.WriteTo([]byte("y"), macB)
	if err := s.PcapErr(); err == nil {
		t.Fatal("PcapErr = nil after a failed write")
	}
	recv(t, b)
	recv(t, b)
}
