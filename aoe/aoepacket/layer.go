// Package aoepacket registers AoE (EtherType 0x88A2) as a gopacket layer, so
// captures of mvstack traffic decode in gopacket-based tools and tests.
//
// Call [Register] once before decoding; it is safe to call many times and
// from many goroutines. gopacket keeps its layer registry in package state,
// which is why registration is explicit rather than an init side effect.
package aoepacket

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/protopacket"
)

// LayerNumber is the gopacket layer-type number AoE is registered under, in
// the range gopacket leaves to applications (1000–1999).
const LayerNumber = 1162

// Layer is one decoded AoE message.
type Layer struct {
	layers.BaseLayer
	aoe.Frame
}

var _ gopacket.DecodingLayer = (*Layer)(nil)
var _ gopacket.SerializableLayer = (*Layer)(nil)

var layer = protopacket.EtherTypeLayer{Number: LayerNumber, Name: "AoE", EtherType: proto.EtherTypeAoE,
	New: func() protopacket.DecodingLayer { return &Layer{} }}

// Register registers the layer with gopacket and binds its EtherType to it.
// It returns the layer type.
func Register() gopacket.LayerType { return layer.Register() }

// LayerType implements gopacket.Layer.
func (l *Layer) LayerType() gopacket.LayerType { return Register() }

// CanDecode implements gopacket.DecodingLayer.
func (l *Layer) CanDecode() gopacket.LayerClass { return Register() }

// NextLayerType implements gopacket.DecodingLayer: ATA data is opaque payload.
func (l *Layer) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

// DecodeFromBytes implements gopacket.DecodingLayer.
func (l *Layer) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := l.Frame.UnmarshalBinary(data); err != nil {
		df.SetTruncated()
		return err
	}
	n := len(data)
	if l.Command == aoe.CmdATA {
		n = aoe.HeaderLen + aoe.ATAHeaderLen
	}
	l.Contents, l.Payload = data[:n], data[n:]
	return nil
}

// SerializeTo implements gopacket.SerializableLayer.
func (l *Layer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(l.Frame.PaddedLen())
	if err != nil {
		return err
	}
	_, err = l.Frame.MarshalTo(buf)
	return err
}
