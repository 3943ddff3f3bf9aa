package netns

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/mdlayher/packet"

	"github.com/mvstack/mvstack/proto"
)

// The mirror port: a veth pair in the switch namespace. An nftables
// netdev ingress chain on every bridge port duplicates each frame entering
// the bridge to mirrorIn, and the capture reads its peer mirrorOut, so
// every frame is recorded once, in the order the bridge saw it, before any
// loss or partition. (Capturing on the ports themselves records each frame
// twice, once in and once out.)
const (
	mirrorIn  = "mon0"
	mirrorOut = "mon1"
	capTable  = "mvcap"
)

// ethPAll is ETH_P_ALL: every EtherType.
const ethPAll = 0x0003

// snapLen is the capture's snapshot length: whole frames at any veth MTU.
const snapLen = 65535 + proto.EthernetHeaderLen

// drainWait bounds how long Stop waits for the frames already in flight.
const drainWait = 5 * time.Second

// Capture records the frames entering the lab's bridge into a pcap file.
// Make one with [Lab.Capture].
type Capture struct {
	// Path is the pcap file.
	Path string

	lab    *Lab
	types  []proto.EtherType
	in     *packet.Conn // on mirrorOut: the mirrored frames
	marker *packet.Conn // on mirrorIn: sends the end marker
	nonce  []byte
	file   *os.File
	w      *pcapgo.Writer

	done     chan struct{} // closed when the reader has stopped
	stopOnce sync.Once
	mu       sync.Mutex
	frames   int
	err      error
}

// Capture records every frame that enters the bridge from a host (of the
// given EtherTypes; all when none are given) into a pcap file at path,
// readable by tshark and gopacket/pcapgo. It is in-process: frames are
// mirrored by nftables (Debian package nftables) to a port the harness
// reads with AF_PACKET, so no capture tool is needed. Call [Capture.Stop]
// before reading the file; the test's end stops it otherwise. One capture
// runs at a time per lab.
func (l *Lab) Capture(t testing.TB, path string, types ...proto.EtherType) *Capture {
	t.Helper()
	c, err := l.startCapture(path, types)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("netns: capture %s: %v", path, err)
		}
	})
	return c
}

func (l *Lab) startCapture(path string, types []proto.EtherType) (c *Capture, err error) {
	if err := l.startMirror(); err != nil {
		return nil, err
	}
	c = &Capture{Path: path, lab: l, types: slices.Clone(types), done: make(chan struct{})}
	defer func() {
		if err != nil {
			c.close()
			_ = l.stopMirror()
		}
	}()
	c.nonce = make([]byte, 16)
	_, _ = rand.Read(c.nonce)
	err = l.Bridge.Do(func() error {
		out, err := net.InterfaceByName(mirrorOut)
		if err != nil {
			return err
		}
		c.in, err = packet.Listen(out, packet.Raw, ethPAll, nil)
		if err != nil {
			return err
		}
		in, err := net.InterfaceByName(mirrorIn)
		if err != nil {
			return err
		}
		// Protocol 0: the marker socket only sends.
		c.marker, err = packet.Listen(in, packet.Raw, 0, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: capture: opening the mirror port: %w", err)
	}
	if c.file, err = os.Create(path); err != nil {
		return nil, fmt.Errorf("netns: capture: %w", err)
	}
	c.w = pcapgo.NewWriterNanos(c.file)
	if err := c.w.WriteFileHeader(snapLen, layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("netns: capture %s: %w", path, err)
	}
	go c.read()
	return c, nil
}

// read copies mirrored frames into the file until it sees the end marker
// or the socket is closed.
func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, snapLen)
	for {
		n, _, err := c.in.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				c.fail(err)
			}
			return
		}
		frame := buf[:n]
		if n < proto.EthernetHeaderLen {
			continue
		}
		if bytes.Equal(frame[proto.EthernetHeaderLen:min(n, proto.EthernetHeaderLen+len(c.nonce))], c.nonce) {
			return
		}
		if !c.wanted(frame) {
			continue
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: n, Length: n}
		c.mu.Lock()
		if err := c.w.WritePacket(ci, frame); err != nil && c.err == nil {
			c.err = err
		}
		c.frames++
		c.mu.Unlock()
	}
}

func (c *Capture) wanted(frame []byte) bool {
	if len(c.types) == 0 {
		return true
	}
	et := proto.EtherType(uint16(frame[12])<<8 | uint16(frame[13]))
	return slices.Contains(c.types, et)
}

func (c *Capture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// Frames returns how many frames have been recorded so far.
func (c *Capture) Frames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// Stop ends the capture once the frames already mirrored are in the file
// (it sends an end marker through the mirror and waits for it), closes the
// file and removes the mirror's rule. Later calls return the first result.
func (c *Capture) Stop() error {
	c.stopOnce.Do(func() {
		// The marker travels the same veth as the mirrored frames, so the
		// frames queued before it are read before it.
		var marker [proto.EthernetHeaderLen]byte
		copy(marker[0:6], proto.Broadcast[:])
		marker[12], marker[13] = 0x88, 0xb5
		frame := append(marker[:], c.nonce...)
		frame = append(frame, make([]byte, max(0, proto.MinPayload-len(c.nonce)))...)
		if _, err := c.marker.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(proto.Broadcast[:])}); err != nil {
			c.fail(fmt.Errorf("sending the end marker: %w", err))
		}
		select {
		case <-c.done:
		case <-time.After(drainWait):
			c.fail(fmt.Errorf("end marker not seen within %v; the file may miss the last frames", drainWait))
		}
		c.close()
		<-c.done
		if err := c.lab.stopMirror(); err != nil {
			c.fail(err)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close releases the sockets and the file.
func (c *Capture) close() {
	if c.in != nil {
		c.in.Close()
	}
	if c.marker != nil {
		c.marker.Close()
	}
	if c.file != nil {
		if err := c.file.Close(); err != nil {
			c.fail(err)
		}
	}
}

// startMirror makes the mirror port (once) and the duplicating chain.
func (l *Lab) startMirror() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.capturing {
		return fmt.Errorf("netns: Capture: a capture is already running in %s", l.Switch)
	}
	if !l.mirror {
		err := ipBatch(l.Switch, [][]string{
			{"link", "add", mirrorIn, "mtu", "65535", "type", "veth", "peer", "name", mirrorOut, "mtu", "65535"},
			{"link", "set", mirrorIn, "addrgenmode", "none"},
			{"link", "set", mirrorOut, "addrgenmode", "none"},
			{"link", "set", mirrorIn, "up"},
			{"link", "set", mirrorOut, "up"},
		})
		if err != nil {
			return fmt.Errorf("netns: making the capture mirror: %w", err)
		}
		// Frames sent before the kernel has brought the pair up are lost.
		for _, m := range []string{mirrorIn, mirrorOut} {
			if err := waitOperUp(l.Switch, m); err != nil {
				return err
			}
		}
		l.mirror = true
	}
	ports := make([]string, len(l.Hosts))
	for i, h := range l.Hosts {
		ports[i] = strconv.Quote(h.Port())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "add table netdev %s\n", capTable)
	fmt.Fprintf(&b, "add chain netdev %s in { type filter hook ingress devices = { %s } priority 0; policy accept; }\n",
		capTable, strings.Join(ports, ", "))
	fmt.Fprintf(&b, "add rule netdev %s in dup to %q\n", capTable, mirrorIn)
	if err := nft(l.Switch, b.String()); err != nil {
		return fmt.Errorf("netns: mirroring the bridge's ports: %w", err)
	}
	l.capturing = true
	return nil
}

// stopMirror stops duplicating frames; the mirror port stays for the next
// capture.
func (l *Lab) stopMirror() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.capturing {
		return nil
	}
	l.capturing = false
	return nft(l.Switch, fmt.Sprintf("delete table netdev %s\n", capTable))
}
