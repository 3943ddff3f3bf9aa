package linktest

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mvstack/mvstack/proto"
)

// PcapSnaplen is the snap length of captures: a 64 KiB payload and its
// header fit, so jumbo frames are captured whole.
const PcapSnaplen = 65536 + proto.EthernetHeaderLen

// capture writes whole Ethernet II frames to a pcap stream. A nil *capture
// writes nothing. It is safe for concurrent use.
type capture struct {
	mu  sync.Mutex
	w   *pcapgo.Writer
	buf []byte
	err error // the first write error; later frames are not written
}

// newCapture writes the pcap file header to w; a nil w gives a nil capture.
func newCapture(w io.Writer) *capture {
	if w == nil {
		return nil
	}
	c := &capture{w: pcapgo.NewWriterNanos(w)}
	if err := c.w.WriteFileHeader(PcapSnaplen, layers.LinkTypeEthernet); err != nil {
		c.err = fmt.Errorf("linktest: pcap header: %w", err)
	}
	return c
}

// write captures one frame, padded to the Ethernet minimum, stamped with the current (possibly fake) time.
func (c *capture) write(src, dst proto.MAC, et proto.EtherType, payload []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.buf = append(c.buf[:0], dst[:]...)
	c.buf = append(c.buf, src[:]...)
	c.buf = binary.BigEndian.AppendUint16(c.buf, uint16(et))
	c.buf = append(c.buf, payload...)
	for len(c.buf) < proto.EthernetHeaderLen+proto.MinPayload {
		c.buf = append(c.buf, 0) // the padding every receiver sees
	}
	n := min(len(c.buf), PcapSnaplen)
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: n, Length: len(c.buf)}
	if err := c.w.WritePacket(ci, c.buf[:n]); err != nil {
		c.err = fmt.Errorf("linktest: pcap: %w", err)
	}
}

// Err returns the first error writing the capture.
func (c *capture) Err() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
