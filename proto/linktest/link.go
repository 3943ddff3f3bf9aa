package linktest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/proto"
)

var _ proto.Link = (*Link)(nil)

// Link is one port of a [Switch]: a station's address bound to one
// EtherType. It implements [proto.Link]: safe for concurrent writers and
// readers, though one reader is the usual use.
type Link struct {
	sw      *Switch
	mac     proto.MAC
	et      proto.EtherType
	down    atomic.Bool
	promisc atomic.Bool // changed under sw.mu

	mu     sync.Mutex
	q      ring
	max    int           // queue bound
	notify chan struct{} // a frame was queued (capacity 1)
	done   chan struct{} // closed by Close
	closed bool
	rd     deadline

	received, dropped atomic.Uint64
}

// item is one queued frame. Its payload is shared between the copies of a
// frame and never written after it was queued.
type item struct {
	src, dst proto.MAC
	payload  []byte
}

func newLink(sw *Switch, mac proto.MAC, et proto.EtherType, queue int) *Link {
	return &Link{
		sw: sw, mac: mac, et: et, max: queue,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		rd:     deadline{cancel: make(chan struct{})},
	}
}

// Addr returns the link's hardware address.
func (l *Link) Addr() proto.MAC { return l.mac }

// EtherType returns the EtherType the link is bound to.
func (l *Link) EtherType() proto.EtherType { return l.et }

// MTU returns the largest payload the switch carries.
func (l *Link) MTU() int { return l.sw.mtu }

// ReadFrom copies the payload of the next frame into p, truncating it to
// len(p), and returns its length, source and destination. It blocks until
// a frame arrives, the read deadline passes ([proto.ErrDeadline]) or the
// link is closed ([proto.ErrClosed]). Like a socket, a passed deadline wins
// over frames already queued.
func (l *Link) ReadFrom(p []byte) (n int, src, dst proto.MAC, err error) {
	for {
		expired := l.rd.wait()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return 0, src, dst, proto.ErrClosed
		}
		select {
		case <-expired:
			l.mu.Unlock()
			return 0, src, dst, proto.ErrDeadline
		default:
		}
		if it, ok := l.q.pop(); ok {
			if l.q.len() > 0 {
				l.signal() // another reader may be waiting
			}
			l.mu.Unlock()
			return copy(p, it.payload), it.src, it.dst, nil
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-expired:
		case <-l.done:
		}
	}
}

// TryReadFrom returns a frame already queued, as ReadFrom does, or ok
// false at once when none is, whatever the read deadline. It lets a
// batching reader take exactly the frames that are waiting.
func (l *Link) TryReadFrom(p []byte) (n int, src, dst proto.MAC, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, src, dst, false
	}
	it, ok := l.q.pop()
	if !ok {
		return 0, src, dst, false
	}
	if l.q.len() > 0 {
		l.signal() // another reader may be waiting
	}
	return copy(p, it.payload), it.src, it.dst, true
}

// WriteTo sends p as the payload of one frame from the link's address to
// dst. The switch copies p, so the caller may reuse it at once. Like the
// AF_PACKET link and real Ethernet, a payload shorter than
// [proto.MinPayload] is padded with zeros to that length: receivers see 46
// bytes, so protocols must carry their own lengths. WriteTo
// never blocks: frames a receiver has no room for are dropped and counted.
// It returns an error wrapping [proto.ErrTooBig] for a payload above the
// MTU and [proto.ErrClosed] after Close. A link that is down (see
// [Link.SetDown]) accepts the frame and loses it, like a NIC with its cable
// pulled.
func (l *Link) WriteTo(p []byte, dst proto.MAC) error {
	if len(p) > l.sw.mtu {
		return fmt.Errorf("linktest: %d-byte payload to %v, MTU %d: %w", len(p), dst, l.sw.mtu, proto.ErrTooBig)
	}
	if l.isClosed() {
		return proto.ErrClosed
	}
	l.sw.forward(l, dst, p)
	return nil
}

// SetReadDeadline sets the deadline for ReadFrom; a zero t means none. It
// also wakes a ReadFrom that is blocked, which then honours the new
// deadline.
func (l *Link) SetReadDeadline(t time.Time) error {
	if l.isClosed() {
		return proto.ErrClosed
	}
	l.rd.set(t)
	return nil
}

// SetDown pulls (true) or plugs back (false) the link's cable. While it is
// down, frames it writes and frames sent to it are lost and counted in
// [Stats].DroppedDown; frames already in its receive queue stay there.
func (l *Link) SetDown(down bool) { l.down.Store(down) }

// SetPromiscuous makes the link receive every unicast frame of its
// EtherType, not only those to its address, like a NIC in promiscuous mode
// (a sniffer, or an attacker that replays frames). Frames from its own
// station still never come back to it.
func (l *Link) SetPromiscuous(on bool) { l.sw.setPromiscuous(l, on) }

// Down reports whether the link's cable is pulled.
func (l *Link) Down() bool { return l.down.Load() }

// LinkStats counts what happened at one link's receive queue.
type LinkStats struct {
	Received         uint64 // frames queued for the reader
	DroppedQueueFull uint64 // frames lost because the queue was full
	Queued           int    // frames waiting to be read now
}

// Stats returns the link's receive counters.
func (l *Link) Stats() LinkStats {
	l.mu.Lock()
	queued := l.q.len()
	l.mu.Unlock()
	return LinkStats{Received: l.received.Load(), DroppedQueueFull: l.dropped.Load(), Queued: queued}
}

// Close detaches the link from the switch, discards its queue and makes a
// blocked ReadFrom return [proto.ErrClosed]. Closing twice returns
// [proto.ErrClosed].
func (l *Link) Close() error {
	if !l.shut() {
		return proto.ErrClosed
	}
	l.sw.detach(l)
	return nil
}

// shut marks the link closed and wakes its reader; it reports whether this
// call closed it.
func (l *Link) shut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	l.q = ring{}
	close(l.done)
	l.rd.stop()
	return true
}

func (l *Link) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// outcome is what became of a copy handed to a link.
type outcome int

const (
	queued outcome = iota
	full
	closed
)

// enqueue queues a frame for the reader, unless the queue is full or the
// link closed.
func (l *Link) enqueue(it item) outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return closed
	}
	if l.q.len() >= l.max {
		l.dropped.Add(1)
		return full
	}
	l.q.push(it)
	l.received.Add(1)
	l.signal()
	return queued
}

// signal wakes a reader without blocking.
func (l *Link) signal() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// ring is a FIFO of items that grows on demand.
type ring struct {
	buf  []item
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) push(it item) {
	if r.n == len(r.buf) {
		nb := make([]item, max(16, 2*len(r.buf)))
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = it
	r.n++
}

func (r *ring) pop() (item, bool) {
	if r.n == 0 {
		return item{}, false
	}
	it := r.buf[r.head]
	r.buf[r.head] = item{} // let the payload be collected
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return it, true
}

// deadline is a read deadline: a channel closed when it passes, driven by a
// timer from package time so fake time in a synctest bubble moves it.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline has passed
}

// set moves the deadline to t; the zero t means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close the channel
	}
	d.timer = nil
	passed := isClosed(d.cancel)
	if t.IsZero() {
		if passed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.cancel = make(chan struct{})
		}
		c := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	if !passed {
		close(d.cancel)
	}
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// stop releases the timer.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
