package protopacket

import (
	"sync"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mvstack/mvstack/proto"
)

// DecodingLayer is a layer that decodes itself: what an [EtherTypeLayer]
// makes for each frame.
type DecodingLayer interface {
	gopacket.Layer
	gopacket.DecodingLayer
}

// EtherTypeLayer registers one of mvstack's EtherTypes as a gopacket layer:
// this package's control frames, and the AoE and stat-frame layers of
// aoe/aoepacket and statsd/statpacket. Declare it as a package variable and
// call Register from the package's own Register.
type EtherTypeLayer struct {
	Number    int // layer-type number, in the range gopacket leaves to applications
	Name      string
	EtherType proto.EtherType
	New       func() DecodingLayer // an empty layer to decode one frame into

	once sync.Once
	t    gopacket.LayerType
}

// Register registers the layer type with gopacket and binds the EtherType
// to it, the first time; it returns the layer type. It is safe to call many
// times and from many goroutines.
func (r *EtherTypeLayer) Register() gopacket.LayerType {
	r.once.Do(func() {
		dec := gopacket.DecodeFunc(r.decode)
		r.t = gopacket.OverrideLayerType(r.Number, gopacket.LayerTypeMetadata{Name: r.Name, Decoder: dec})
		layers.EthernetTypeMetadata[layers.EthernetType(r.EtherType)] = layers.EnumMetadata{
			DecodeWith: dec,
			Name:       r.Name,
			LayerType:  r.t,
		}
	})
	return r.t
}

func (r *EtherTypeLayer) decode(data []byte, p gopacket.PacketBuilder) error {
	l := r.New()
	if err := l.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(l)
	return p.NextDecoder(l.NextLayerType())
}
