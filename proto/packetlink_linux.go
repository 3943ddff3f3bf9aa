//go:build linux

package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// PacketConfig configures an AF_PACKET link. The zero value (or nil) is
// the default.
type PacketConfig struct {
	// Filter is an extra classic BPF program run on the full frame after
	// the link's own filter. A frame it rejects is never read.
	Filter []bpf.Instruction
	// Promiscuous puts the interface into promiscuous mode, so frames to
	// other unicast addresses are read too.
	Promiscuous bool
	// ReadBuffer is the socket's receive buffer in bytes; 0 means
	// DefaultReadBuffer. The kernel's default (about 200 KB) holds a dozen
	// jumbo frames and drops the rest of a burst.
	ReadBuffer int
}

// DefaultReadBuffer is the receive buffer of a packet link: room for a
// window's burst of jumbo frames.
const DefaultReadBuffer = 32 << 20

// PacketLink is a [Link] over an AF_PACKET socket bound to one interface and
// one EtherType. Frames the host itself sends on the interface are filtered
// out in the kernel, so a link never reads its own or its neighbours'
// outgoing frames.
type PacketLink struct {
	conn  *packet.Conn
	addr  MAC
	mtu   int
	et    EtherType
	iface string

	rmu  sync.Mutex // guards rbuf: one reader at a time
	rbuf []byte

	wpool sync.Pool // *[]byte frame buffers for WriteTo
}

var _ Link = (*PacketLink)(nil)

// ErrNeedCapNetRaw is returned when the process may not open raw sockets.
var ErrNeedCapNetRaw = errors.New("needs CAP_NET_RAW to open raw sockets: run as root or grant cap_net_raw")

// OpenPacketLink opens an AF_PACKET link on the named interface for one
// EtherType. The interface must exist and be up; the link's MTU is the
// interface's.
func OpenPacketLink(ifname string, et EtherType, cfg *PacketConfig) (*PacketLink, error) {
	if cfg == nil {
		cfg = &PacketConfig{}
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("proto: interface %q: %w", ifname, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("proto: interface %q is down: bring it up with 'ip link set %s up'", ifname, ifname)
	}
	addr, err := MACFrom(ifi.HardwareAddr)
	if err != nil {
		return nil, fmt.Errorf("proto: interface %q has no Ethernet address: %w", ifname, err)
	}
	if ifi.MTU <= 0 {
		return nil, fmt.Errorf("proto: interface %q reports MTU %d", ifname, ifi.MTU)
	}
	prog, err := bpf.Assemble(linkFilter(cfg.Filter))
	if err != nil {
		return nil, fmt.Errorf("proto: assembling BPF filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(et), &packet.Config{Filter: prog})
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("proto: opening AF_PACKET socket on %q: %w", ifname, ErrNeedCapNetRaw)
		}
		return nil, fmt.Errorf("proto: opening AF_PACKET socket on %q: %w", ifname, err)
	}
	rb := cfg.ReadBuffer
	if rb == 0 {
		rb = DefaultReadBuffer
	}
	if err := setReadBuffer(conn, rb); err != nil {
		conn.Close()
		return nil, fmt.Errorf("proto: receive buffer of %d bytes on %q: %w", rb, ifname, err)
	}
	if cfg.Promiscuous {
		if err := conn.SetPromiscuous(true); err != nil {
			conn.Close()
			return nil, fmt.Errorf("proto: promiscuous mode on %q: %w", ifname, err)
		}
	}
	l := &PacketLink{
		conn:  conn,
		addr:  addr,
		mtu:   ifi.MTU,
		et:    et,
		iface: ifname,
		rbuf:  make([]byte, EthernetHeaderLen+ifi.MTU+4),
	}
	frameLen := EthernetHeaderLen + ifi.MTU
	l.wpool.New = func() any { b := make([]byte, frameLen); return &b }
	return l, nil
}

// linkFilter is the BPF program of a link: it rejects frames the host is
// sending (packet type PACKET_OUTGOING), because AF_PACKET sockets see every
// frame leaving the interface, including other processes' on the same host,
// then runs the user's filter, or accepts.
func linkFilter(user []bpf.Instruction) []bpf.Instruction {
	prog := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	}
	if len(user) == 0 {
		return append(prog, bpf.RetConstant{Val: 0x40000})
	}
	return append(prog, user...)
}

// setReadBuffer sets SO_RCVBUF, past the rmem_max limit when the process
// may (SO_RCVBUFFORCE needs CAP_NET_ADMIN).
func setReadBuffer(conn *packet.Conn, n int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// ReadFrom implements [Link].
func (l *PacketLink) ReadFrom(p []byte) (int, MAC, MAC, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	for {
		n, _, err := l.conn.ReadFrom(l.rbuf)
		if err != nil {
			return 0, MAC{}, MAC{}, l.mapErr(err)
		}
		if n < EthernetHeaderLen {
			continue
		}
		var src, dst MAC
		copy(dst[:], l.rbuf[0:6])
		copy(src[:], l.rbuf[6:12])
		if EtherType(binary.BigEndian.Uint16(l.rbuf[12:14])) != l.et {
			continue // a VLAN-tagged or foreign frame the socket let through
		}
		return copy(p, l.rbuf[EthernetHeaderLen:n]), src, dst, nil
	}
}

// WriteTo implements [Link].
func (l *PacketLink) WriteTo(p []byte, dst MAC) error {
	if len(p) > l.mtu {
		return fmt.Errorf("proto: %d-byte payload on %s (MTU %d): %w", len(p), l.iface, l.mtu, ErrTooBig)
	}
	bp := l.wpool.Get().(*[]byte)
	defer l.wpool.Put(bp)
	b := *bp
	copy(b[0:6], dst[:])
	copy(b[6:12], l.addr[:])
	binary.BigEndian.PutUint16(b[12:14], uint16(l.et))
	n := EthernetHeaderLen + copy(b[EthernetHeaderLen:], p)
	if n < EthernetHeaderLen+MinPayload {
		clear(b[n : EthernetHeaderLen+MinPayload])
		n = EthernetHeaderLen + MinPayload
	}
	_, err := l.conn.WriteTo(b[:n], &packet.Addr{HardwareAddr: dst.HardwareAddr()})
	return l.mapErr(err)
}

func (l *PacketLink) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrDeadline
	case errors.Is(err, net.ErrClosed):
		return ErrClosed
	}
	return err
}

// SetReadDeadline implements [Link].
func (l *PacketLink) SetReadDeadline(t time.Time) error { return l.conn.SetReadDeadline(t) }

// Addr implements [Link].
func (l *PacketLink) Addr() MAC { return l.addr }

// MTU implements [Link].
func (l *PacketLink) MTU() int { return l.mtu }

// Interface is the name of the interface the link is bound to.
func (l *PacketLink) Interface() string { return l.iface }

// Stats returns the kernel's receive counters for the socket (frames
// received and dropped for lack of buffer space) since the last call.
func (l *PacketLink) Stats() (received, dropped uint32, err error) {
	s, err := l.conn.Stats()
	if err != nil {
		return 0, 0, err
	}
	return s.Packets, s.Drops, nil
}

// Close implements [Link].
func (l *PacketLink) Close() error { return l.conn.Close() }
