// Package statpacket registers stat frames (EtherType 0x88B6) as a gopacket
// layer, so captures of mvstack traffic decode in gopacket-based tools and
// tests: the sealed datagram's cleartext header (version, key id, sender
// epoch, frame counter) is decoded, the sealed records are the payload
// (open them with proto.Opener and decode with statframe).
//
// Call [Register] once before decoding; it is safe to call many times and
// from many goroutines. gopacket keeps its layer registry in package state,
// which is why registration is explicit rather than an init side effect.
package statpacket

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/protopacket"
)

// LayerNumber is the gopacket layer-type number stat frames are registered
// under, in the range gopacket leaves to applications.
const LayerNumber = 1164

// Layer is one stat frame: the datagram header, and the sealed records as
// payload.
type Layer struct {
	layers.BaseLayer
	Version uint8
	KeyID   uint8
	Epoch   uint64 // the sender's random epoch
	Counter uint64 // the sender's frame counter, from 1
}

var (
	_ gopacket.DecodingLayer     = (*Layer)(nil)
	_ gopacket.SerializableLayer = (*Layer)(nil)
)

var layer = protopacket.EtherTypeLayer{Number: LayerNumber, Name: "MVStats", EtherType: proto.EtherTypeStats,
	New: func() protopacket.DecodingLayer { return &Layer{} }}

// Register registers the layer with gopacket and binds its EtherType to it.
// It returns the layer type.
func Register() gopacket.LayerType { return layer.Register() }

// LayerType implements gopacket.Layer.
func (l *Layer) LayerType() gopacket.LayerType { return Register() }

// CanDecode implements gopacket.DecodingLayer.
func (l *Layer) CanDecode() gopacket.LayerClass { return Register() }

// NextLayerType implements gopacket.DecodingLayer: the records are sealed.
func (l *Layer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

// DecodeFromBytes implements gopacket.DecodingLayer.
func (l *Layer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < proto.DatagramOverhead {
		df.SetTruncated()
		return io.ErrUnexpectedEOF
	}
	if data[0] != 1 {
		return fmt.Errorf("statpacket: datagram version %d", data[0])
	}
	l.Version, l.KeyID = data[0], data[1]
	l.Epoch = binary.BigEndian.Uint64(data[4:])
	l.Counter = binary.BigEndian.Uint64(data[12:])
	l.Contents, l.Payload = data[:proto.DatagramHeaderLen], data[proto.DatagramHeaderLen:]
	return nil
}

// SerializeTo implements gopacket.SerializableLayer: the header goes in
// front of whatever the buffer holds (the sealed records and tag).
func (l *Layer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(proto.DatagramHeaderLen)
	if err != nil {
		return err
	}
	buf[0], buf[1], buf[2], buf[3] = l.Version, l.KeyID, 0, 0
	binary.BigEndian.PutUint64(buf[4:], l.Epoch)
	binary.BigEndian.PutUint64(buf[12:], l.Counter)
	return nil
}
