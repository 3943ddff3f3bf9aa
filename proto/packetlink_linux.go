//go:build linux

package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

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
	conn    *packet.Conn
	rc      syscall.RawConn
	addr    MAC
	mtu     int
	et      EtherType
	iface   string
	ifindex int

	// wfd is a second AF_PACKET socket that frames are sent on. It reads
	// nothing (protocol 0) and stays out of the runtime's poller: the
	// kernel frees every sent frame's memory as the receiver's socket
	// takes it, and wakes whoever waits on the sending socket's queue, as
	// the poller always does on a socket it watches. That was one wakeup
	// per frame, in the sender's time.
	wmu sync.RWMutex // Close takes it to close wfd; writes share it
	wfd int          // -1 once closed

	rmu    sync.Mutex // one reader at a time; guards the batch state below
	pad    [MinPayload]byte
	rhdrs  [][EthernetHeaderLen]byte
	riovs  []unix.Iovec
	rmsgs  []mmsghdr
	closed atomic.Bool

	rframes []Frame               // the caller's buffers, while reading
	rhandle func([]Frame)         // ReadBatches' handler, nil in ReadBatch
	rkept   int                   // frames ReadBatch got
	rerr    error                 // what recvmmsg failed with
	readFn  func(fd uintptr) bool // readFunc, bound once
}

var (
	_ Link        = (*PacketLink)(nil)
	_ BatchWriter = (*PacketLink)(nil)
	_ BatchReader = (*PacketLink)(nil)
)

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
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("proto: AF_PACKET socket on %q: %w", ifname, err)
	}
	wfd, err := openSendSocket(ifi.Index)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("proto: sending AF_PACKET socket on %q: %w", ifname, err)
	}
	return &PacketLink{conn: conn, rc: rc, addr: addr, mtu: ifi.MTU, et: et, iface: ifname, ifindex: ifi.Index, wfd: wfd}, nil
}

// openSendSocket opens a raw AF_PACKET socket bound to an interface for
// sending only: bound with protocol 0, it is given no frames.
func openSendSocket(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return -1, ErrNeedCapNetRaw
		}
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
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

// ReadFrom implements [Link]. The Ethernet header and the payload are
// scattered by the kernel into a header buffer and p: no copy.
func (l *PacketLink) ReadFrom(p []byte) (int, MAC, MAC, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	var hdr [EthernetHeaderLen]byte
	bufs := [][]byte{hdr[:], p}
	for {
		var n int
		var rerr error
		err := l.rc.Read(func(fd uintptr) bool {
			n, _, _, _, rerr = unix.RecvmsgBuffers(int(fd), bufs, nil, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return 0, MAC{}, MAC{}, l.mapErr(err)
		}
		if n < EthernetHeaderLen || EtherType(binary.BigEndian.Uint16(hdr[12:14])) != l.et {
			continue // a runt, or a VLAN-tagged frame the socket let through
		}
		var src, dst MAC
		copy(dst[:], hdr[0:6])
		copy(src[:], hdr[6:12])
		return min(n-EthernetHeaderLen, len(p)), src, dst, nil
	}
}

// WriteTo implements [Link]. The header and the payload go to the kernel as
// two pieces: no copy.
func (l *PacketLink) WriteTo(p []byte, dst MAC) error {
	one := [1][]byte{p}
	return l.WriteBatch(one[:], dst)
}

func (l *PacketLink) header(dst MAC) [EthernetHeaderLen]byte {
	var h [EthernetHeaderLen]byte
	copy(h[0:6], dst[:])
	copy(h[6:12], l.addr[:])
	binary.BigEndian.PutUint16(h[12:14], uint16(l.et))
	return h
}

// WriteBatch implements [BatchWriter]: every payload goes to dst in one
// sendmmsg system call (several, if the kernel takes part of the batch).
func (l *PacketLink) WriteBatch(payloads [][]byte, dst MAC) error {
	if len(payloads) == 0 {
		return nil
	}
	for _, p := range payloads {
		if len(p) > l.mtu {
			return fmt.Errorf("proto: %d-byte payload on %s (MTU %d): %w", len(p), l.iface, l.mtu, ErrTooBig)
		}
	}
	w := writeScratches.Get().(*writeScratch)
	defer writeScratches.Put(w)
	w.hdr = l.header(dst)
	w.sa = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(l.ifindex)}
	w.iovs = w.iovs[:0]
	w.msgs = w.msgs[:0]
	for _, p := range payloads {
		first := len(w.iovs)
		w.iovs = append(w.iovs, iovec(w.hdr[:]), iovec(p))
		if len(p) < MinPayload {
			w.iovs = append(w.iovs, iovec(l.pad[:MinPayload-len(p)]))
		}
		w.msgs = append(w.msgs, mmsghdr{})
		m := &w.msgs[len(w.msgs)-1]
		m.Hdr.Name = (*byte)(unsafe.Pointer(&w.sa))
		m.Hdr.Namelen = unix.SizeofSockaddrLinklayer
		m.Hdr.Iovlen = uint64(len(w.iovs) - first)
	}
	for i, off := 0, 0; i < len(w.msgs); i++ { // now that iovs stays put
		w.msgs[i].Hdr.Iov = &w.iovs[off]
		off += int(w.msgs[i].Hdr.Iovlen)
	}
	l.wmu.RLock()
	defer l.wmu.RUnlock()
	for w.sent = 0; w.sent < len(w.msgs); {
		if l.wfd < 0 {
			w.release()
			return ErrClosed
		}
		if !w.sendmmsg(uintptr(l.wfd)) {
			// The send buffer is full: wait a little for room, a while
			// at a time so that Close, which waits for wmu, is not held up.
			pfd := []unix.PollFd{{Fd: int32(l.wfd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, 10); err != nil && err != unix.EINTR {
				w.release()
				return l.mapErr(err)
			}
			if l.closed.Load() {
				w.release()
				return ErrClosed
			}
			continue
		}
		if w.werr != nil {
			w.release()
			return l.mapErr(w.werr)
		}
		w.sent += w.n
	}
	w.release()
	runtime.KeepAlive(payloads)
	return nil
}

// writeScratch is the state of one WriteBatch, kept in a pool so that a
// batch allocates nothing: the iovecs and headers the kernel reads.
type writeScratch struct {
	hdr  [EthernetHeaderLen]byte
	sa   unix.RawSockaddrLinklayer
	iovs []unix.Iovec
	msgs []mmsghdr
	sent int
	n    int
	werr error
}

var writeScratches = sync.Pool{New: func() any { return new(writeScratch) }}

// sendmmsg sends what is left of the batch; false means EAGAIN.
func (w *writeScratch) sendmmsg(fd uintptr) bool {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[w.sent])), uintptr(len(w.msgs)-w.sent), unix.MSG_DONTWAIT, 0, 0)
	w.n, w.werr = int(r), nil
	if errno != 0 {
		w.n, w.werr = 0, errno
	}
	return w.werr != unix.EAGAIN
}

// release drops the references to the caller's payloads.
func (w *writeScratch) release() {
	clear(w.iovs)
	w.werr = nil
}

// ReadBatch implements [BatchReader] with recvmmsg: headers and payloads
// are scattered by the kernel straight into the callers' buffers.
func (l *PacketLink) ReadBatch(frames []Frame) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if len(frames) == 0 {
		return 0, nil
	}
	l.rframes, l.rhandle = frames, nil
	defer func() { l.rframes = nil }()
	if err := l.rawRead(); err != nil {
		return 0, err
	}
	return l.rkept, nil
}

// ReadBatches reads frames like ReadBatch, again and again, and hands each
// batch to handle, until reading fails: the link is closed ([ErrClosed])
// or the read deadline passes. It all happens within one wait on the
// socket, so after a batch that emptied the socket it waits for the next
// frame at once, without first spending a recvmmsg to learn EAGAIN: the
// runtime's poller (edge-triggered) remembers a frame that arrived while
// handle ran. (A new wait would forget it, which is why ReadBatch cannot
// do this.) The frames' buffers are reused once handle returns.
func (l *PacketLink) ReadBatches(frames []Frame, handle func([]Frame)) error {
	if len(frames) == 0 {
		return fmt.Errorf("proto: ReadBatches on %s with no frame buffers", l.iface)
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.rframes, l.rhandle = frames, handle
	defer func() { l.rframes, l.rhandle = nil, nil }()
	for {
		if err := l.rawRead(); err != nil {
			return err
		}
	}
}

// rawRead runs readFunc in one wait on the socket; l.rmu is held.
func (l *PacketLink) rawRead() error {
	if l.readFn == nil {
		l.readFn = l.readFunc // bound once: a closure per call would escape
	}
	l.rerr = nil
	err := l.rc.Read(l.readFn)
	if err == nil {
		err = l.rerr
	}
	return l.mapErr(err)
}

// readFunc reads into l.rframes with recvmmsg until it has frames of our
// EtherType (ReadBatch: l.rhandle is nil) or, handing every batch to
// l.rhandle, until the socket is empty; it returns false to wait for the
// socket to be readable, true when done or failed (l.rerr).
func (l *PacketLink) readFunc(fd uintptr) bool {
	frames := l.rframes
	if len(l.rmsgs) < len(frames) {
		l.rhdrs = make([][EthernetHeaderLen]byte, len(frames))
		l.riovs = make([]unix.Iovec, 2*len(frames))
		l.rmsgs = make([]mmsghdr, len(frames))
	}
	for {
		for i := range frames {
			l.riovs[2*i] = iovec(l.rhdrs[i][:])
			l.riovs[2*i+1] = iovec(frames[i].Payload[:cap(frames[i].Payload)])
			l.rmsgs[i] = mmsghdr{}
			l.rmsgs[i].Hdr.Iov = &l.riovs[2*i]
			l.rmsgs[i].Hdr.Iovlen = 2
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&l.rmsgs[0])), uintptr(len(frames)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return false
		default:
			l.rerr = errno
			return true
		}
		n := int(r)
		// Keep the frames of our EtherType, in order, at the front.
		kept := 0
		for i := 0; i < n; i++ {
			got := int(l.rmsgs[i].Len)
			h := &l.rhdrs[i]
			if got < EthernetHeaderLen || EtherType(binary.BigEndian.Uint16(h[12:14])) != l.et {
				continue
			}
			f := &frames[kept]
			if kept != i {
				// the payload sits in buffer i: hand that buffer to slot kept
				frames[kept].Payload, frames[i].Payload = frames[i].Payload, frames[kept].Payload
			}
			copy(f.Dst[:], h[0:6])
			copy(f.Src[:], h[6:12])
			f.Payload = f.Payload[:min(got-EthernetHeaderLen, cap(f.Payload))]
			kept++
		}
		if l.rhandle == nil {
			if kept > 0 {
				l.rkept = kept
				return true
			}
			continue // nothing of ours: read on
		}
		if kept > 0 {
			l.rhandle(frames[:kept])
		}
		if n < len(frames) {
			return false // the socket was empty: wait for the next frame
		}
	}
}

type mmsghdr = unix.Mmsghdr

func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return v
}

func (l *PacketLink) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrDeadline
	case errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed), l.closed.Load():
		// (A raw read on a closed socket fails with the runtime's "use of
		// closed file", which is neither.)
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
func (l *PacketLink) Close() error {
	l.closed.Store(true)
	err := l.conn.Close()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.wfd >= 0 {
		unix.Close(l.wfd)
		l.wfd = -1
	}
	return err
}
