// Package protopacket registers the control protocol (EtherType 0x88B5) as a
// gopacket layer, so captures of mvstack traffic decode in gopacket-based
// tools and tests: the cleartext header is decoded, the sealed body is the
// payload.
//
// Call [Register] once before decoding; it is safe to call many times and
// from many goroutines. gopacket keeps its layer registry in package state,
// which is why registration is explicit rather than an init side effect.
package protopacket

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mvstack/mvstack/proto"
)

// LayerNumber is the gopacket layer-type number the control protocol is
// registered under, in the range gopacket leaves to applications.
const LayerNumber = 1163

// Layer is one control frame: its header, and its sealed body as payload.
type Layer struct {
	layers.BaseLayer
	proto.Header
}

var (
	_ gopacket.DecodingLayer     = (*Layer)(nil)
	_ gopacket.SerializableLayer = (*Layer)(nil)
)

var layer = EtherTypeLayer{Number: LayerNumber, Name: "MVControl", EtherType: proto.EtherTypeControl,
	New: func() DecodingLayer { return &Layer{} }}

// Register registers the layer with gopacket and binds its EtherType to it.
// It returns the layer type.
func Register() gopacket.LayerType { return layer.Register() }

// LayerType implements gopacket.Layer.
func (l *Layer) LayerType() gopacket.LayerType { return Register() }

// CanDecode implements gopacket.DecodingLayer.
func (l *Layer) CanDecode() gopacket.LayerClass { return Register() }

// NextLayerType implements gopacket.DecodingLayer: the body is sealed.
func (l *Layer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

// DecodeFromBytes implements gopacket.DecodingLayer.
func (l *Layer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := l.Header.UnmarshalBinary(data); err != nil {
		df.SetTruncated()
		return err
	}
	l.Contents, l.Payload = data[:proto.HeaderLen], data[proto.HeaderLen:]
	return nil
}

// SerializeTo implements gopacket.SerializableLayer: the header goes in
// front of whatever the buffer holds (the sealed body).
func (l *Layer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(proto.HeaderLen)
	if err != nil {
		return err
	}
	h, _ := l.Header.MarshalBinary()
	copy(buf, h)
	return nil
}
