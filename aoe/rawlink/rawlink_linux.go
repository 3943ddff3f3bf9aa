//go:build linux

package rawlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/mvstack/mvstack/proto"
)

// pollInterval bounds how long a blocked read goes without looking at its
// deadline and at Close: the socket's receive timeout.
const pollInterval = 50 * time.Millisecond

// ReadBuffer is the socket's receive buffer: room for many windows' bursts
// of jumbo frames, as proto.DefaultReadBuffer.
const ReadBuffer = 32 << 20

// Link is a [proto.Link] over a blocking AF_PACKET socket bound to one
// interface and one EtherType.
type Link struct {
	fd      int
	addr    proto.MAC
	mtu     int
	et      proto.EtherType
	iface   string
	ifindex int

	// fdmu is held shared by every system call on fd and exclusively by
	// Close, so the descriptor is never closed (and its number reused)
	// under a call.
	fdmu     sync.RWMutex
	closed   atomic.Bool
	deadline atomic.Int64 // unix nanoseconds; 0: none

	rmu     sync.Mutex // one reader at a time; guards the fields below
	timeout time.Duration
	pad     [proto.MinPayload]byte
	rhdrs   [][proto.EthernetHeaderLen]byte
	riovs   []unix.Iovec
	rmsgs   []unix.Mmsghdr
}

var (
	_ proto.Link        = (*Link)(nil)
	_ proto.BatchReader = (*Link)(nil)
	_ proto.BatchWriter = (*Link)(nil)
)

// Open opens a link on the named interface for EtherType et. The interface
// must exist and be up; the link's MTU is the interface's.
func Open(ifname string, et proto.EtherType) (*Link, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("rawlink: interface %q: %w", ifname, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("rawlink: interface %q is down: bring it up with 'ip link set %s up'", ifname, ifname)
	}
	addr, err := proto.MACFrom(ifi.HardwareAddr)
	if err != nil {
		return nil, fmt.Errorf("rawlink: interface %q has no Ethernet address: %w", ifname, err)
	}
	if ifi.MTU <= 0 {
		return nil, fmt.Errorf("rawlink: interface %q reports MTU %d", ifname, ifi.MTU)
	}
	// Protocol 0 until bind, so no frame of another interface is queued
	// before the socket is bound to this one.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("rawlink: AF_PACKET socket on %q: %w", ifname, proto.ErrNeedCapNetRaw)
		}
		return nil, fmt.Errorf("rawlink: AF_PACKET socket on %q: %w", ifname, err)
	}
	l := &Link{fd: fd, addr: addr, mtu: ifi.MTU, et: et, iface: ifname, ifindex: ifi.Index}
	if err := l.setup(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rawlink: AF_PACKET socket on %q: %w", ifname, err)
	}
	return l, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (l *Link) setup() error {
	// Frames the host sends leave through the socket too; drop them in
	// the kernel, as proto's link does.
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0x40000},
	})
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	if err := unix.SetsockoptSockFprog(l.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return fmt.Errorf("attach filter: %w", err)
	}
	if err := unix.Bind(l.fd, &unix.SockaddrLinklayer{Protocol: htons(uint16(l.et)), Ifindex: l.ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.SetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ReadBuffer); err != nil {
		if err := unix.SetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ReadBuffer); err != nil {
			return fmt.Errorf("receive buffer: %w", err)
		}
	}
	return l.setTimeout(pollInterval)
}

// setTimeout sets the socket's receive timeout when it changes. It runs
// under rmu (or before the link is shared).
func (l *Link) setTimeout(d time.Duration) error {
	if d == l.timeout {
		return nil
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(l.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("receive timeout: %w", err)
	}
	l.timeout = d
	return nil
}

// wait returns how long the next blocking read may wait, or an error when
// the link is closed or the deadline has passed. It runs under rmu.
func (l *Link) wait() error {
	if l.closed.Load() {
		return proto.ErrClosed
	}
	d := pollInterval
	if dl := l.deadline.Load(); dl != 0 {
		left := time.Until(time.Unix(0, dl))
		if left <= 0 {
			return proto.ErrDeadline
		}
		// SO_RCVTIMEO has microsecond resolution; 0 would mean forever.
		d = min(d, max(left, time.Microsecond))
	}
	return l.setTimeout(d)
}

// recv runs one blocking receive system call under fdmu, retrying on
// EINTR and on the receive timeout until the deadline or Close.
func (l *Link) recv(call func() (int, unix.Errno)) (int, error) {
	for {
		if err := l.wait(); err != nil {
			return 0, err
		}
		l.fdmu.RLock()
		if l.closed.Load() {
			l.fdmu.RUnlock()
			return 0, proto.ErrClosed
		}
		n, errno := call()
		l.fdmu.RUnlock()
		switch errno {
		case 0:
			return n, nil
		case unix.EINTR, unix.EAGAIN:
			continue
		}
		return 0, errno
	}
}

// ReadFrom implements [proto.Link]. It blocks in the kernel on the
// caller's thread; the header and the payload are scattered into a header
// buffer and p.
func (l *Link) ReadFrom(p []byte) (int, proto.MAC, proto.MAC, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	var hdr [proto.EthernetHeaderLen]byte
	iov := [2]unix.Iovec{iovec(hdr[:]), iovec(p)}
	var msg unix.Msghdr
	msg.Iov = &iov[0]
	msg.Iovlen = 2
	for {
		n, err := l.recv(func() (int, unix.Errno) {
			r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&msg)), 0)
			return int(r), errno
		})
		runtime.KeepAlive(p)
		if err != nil {
			return 0, proto.MAC{}, proto.MAC{}, err
		}
		if n < proto.EthernetHeaderLen || proto.EtherType(binary.BigEndian.Uint16(hdr[12:14])) != l.et {
			continue
		}
		var src, dst proto.MAC
		copy(dst[:], hdr[0:6])
		copy(src[:], hdr[6:12])
		return min(n-proto.EthernetHeaderLen, len(p)), src, dst, nil
	}
}

// ReadBatch implements [proto.BatchReader] with recvmmsg: it blocks in the
// kernel for the first frame and takes the ones already queued with it.
func (l *Link) ReadBatch(frames []proto.Frame) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if len(frames) == 0 {
		return 0, nil
	}
	if len(l.rmsgs) < len(frames) {
		l.rhdrs = make([][proto.EthernetHeaderLen]byte, len(frames))
		l.riovs = make([]unix.Iovec, 2*len(frames))
		l.rmsgs = make([]unix.Mmsghdr, len(frames))
	}
	for i := range frames {
		l.riovs[2*i] = iovec(l.rhdrs[i][:])
		l.riovs[2*i+1] = iovec(frames[i].Payload[:cap(frames[i].Payload)])
		l.rmsgs[i] = unix.Mmsghdr{}
		l.rmsgs[i].Hdr.Iov = &l.riovs[2*i]
		l.rmsgs[i].Hdr.Iovlen = 2
	}
	for {
		n, err := l.recv(func() (int, unix.Errno) {
			r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&l.rmsgs[0])), uintptr(len(frames)), unix.MSG_WAITFORONE, 0, 0)
			return int(r), errno
		})
		runtime.KeepAlive(frames)
		if err != nil {
			return 0, err
		}
		kept := 0
		for i := 0; i < n; i++ {
			got := int(l.rmsgs[i].Len)
			h := &l.rhdrs[i]
			if got < proto.EthernetHeaderLen || proto.EtherType(binary.BigEndian.Uint16(h[12:14])) != l.et {
				continue
			}
			if kept != i {
				frames[kept].Payload, frames[i].Payload = frames[i].Payload, frames[kept].Payload
			}
			f := &frames[kept]
			copy(f.Dst[:], h[0:6])
			copy(f.Src[:], h[6:12])
			f.Payload = f.Payload[:min(got-proto.EthernetHeaderLen, cap(f.Payload))]
			kept++
		}
		if kept > 0 {
			return kept, nil
		}
	}
}

func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return v
}

func (l *Link) header(dst proto.MAC) [proto.EthernetHeaderLen]byte {
	var h [proto.EthernetHeaderLen]byte
	copy(h[0:6], dst[:])
	copy(h[6:12], l.addr[:])
	binary.BigEndian.PutUint16(h[12:14], uint16(l.et))
	return h
}

// send runs one send system call under fdmu, retrying on EINTR and, when
// the socket's buffer is full, after yielding.
func (l *Link) send(call func() (int, unix.Errno)) (int, error) {
	l.fdmu.RLock()
	defer l.fdmu.RUnlock()
	if l.closed.Load() {
		return 0, proto.ErrClosed
	}
	for {
		n, errno := call()
		switch errno {
		case 0:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			runtime.Gosched()
			continue
		}
		return 0, errno
	}
}

// WriteTo implements [proto.Link]: header, payload and padding go to the
// kernel as pieces, without a copy.
func (l *Link) WriteTo(p []byte, dst proto.MAC) error {
	return l.WriteBatch([][]byte{p}, dst)
}

// WriteBatch implements [proto.BatchWriter]: every payload goes to dst in
// one sendmmsg system call (several, if the kernel takes part of them).
func (l *Link) WriteBatch(payloads [][]byte, dst proto.MAC) error {
	if len(payloads) == 0 {
		return nil
	}
	hdr := l.header(dst)
	var sa unix.RawSockaddrLinklayer
	sa.Family = unix.AF_PACKET
	sa.Ifindex = int32(l.ifindex)
	var iovArr [3]unix.Iovec
	var msgArr [1]unix.Mmsghdr
	iovs, msgs := iovArr[:0], msgArr[:]
	if len(payloads) > 1 {
		iovs = make([]unix.Iovec, 0, 3*len(payloads))
		msgs = make([]unix.Mmsghdr, len(payloads))
	}
	for i, p := range payloads {
		if len(p) > l.mtu {
			return fmt.Errorf("rawlink: %d-byte payload on %s (MTU %d): %w", len(p), l.iface, l.mtu, proto.ErrTooBig)
		}
		first := len(iovs)
		iovs = append(iovs, iovec(hdr[:]), iovec(p))
		if len(p) < proto.MinPayload {
			iovs = append(iovs, iovec(l.pad[:proto.MinPayload-len(p)]))
		}
		msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&sa))
		msgs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
		msgs[i].Hdr.Iov = &iovs[first]
		msgs[i].Hdr.Iovlen = uint64(len(iovs) - first)
	}
	for sent := 0; sent < len(msgs); {
		n, err := l.send(func() (int, unix.Errno) {
			if len(msgs)-sent == 1 {
				_, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&msgs[sent].Hdr)), 0)
				return 1, errno
			}
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(l.fd), uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent), 0, 0, 0)
			return int(r), errno
		})
		if err != nil {
			return fmt.Errorf("rawlink: send on %s: %w", l.iface, err)
		}
		sent += n
	}
	runtime.KeepAlive(payloads)
	runtime.KeepAlive(iovs)
	runtime.KeepAlive(&sa)
	runtime.KeepAlive(&hdr)
	return nil
}

// SetReadDeadline implements [proto.Link]. A blocked read notices a new
// deadline (or Close) within 50 ms.
func (l *Link) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		l.deadline.Store(0)
	} else {
		l.deadline.Store(max(t.UnixNano(), 1))
	}
	return nil
}

// Addr implements [proto.Link].
func (l *Link) Addr() proto.MAC { return l.addr }

// MTU implements [proto.Link].
func (l *Link) MTU() int { return l.mtu }

// Interface is the name of the interface the link is bound to.
func (l *Link) Interface() string { return l.iface }

// Stats returns the kernel's receive counters for the socket (frames
// received and dropped for lack of buffer space) since the last call.
func (l *Link) Stats() (received, dropped uint32, err error) {
	l.fdmu.RLock()
	defer l.fdmu.RUnlock()
	if l.closed.Load() {
		return 0, 0, proto.ErrClosed
	}
	s, err := unix.GetsockoptTpacketStats(l.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, 0, err
	}
	return s.Packets, s.Drops, nil
}

// Close implements [proto.Link]. A blocked read returns ErrClosed within
// 50 ms; Close waits for it.
func (l *Link) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.fdmu.Lock()
	defer l.fdmu.Unlock()
	return unix.Close(l.fd)
}
