package linktest

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/proto"
)

// DefaultMTU is the payload MTU of a switch whose Config.MTU is 0.
const DefaultMTU = 1500

// DefaultQueueLen is the receive queue of a link whose Config.QueueLen is 0.
const DefaultQueueLen = 4096

// MaxMTU is the largest payload MTU a switch accepts: a 64 KiB payload, the
// most a pcap record of this package holds.
const MaxMTU = 65536

// Config configures a [Switch]. The zero value is a clean 1500-byte segment.
type Config struct {
	MTU      int       // payload MTU; 0 means DefaultMTU
	Hook     Hook      // faults; nil delivers every frame once, at once
	Pcap     io.Writer // capture of every frame entering the switch; nil captures nothing
	QueueLen int       // per-link receive queue in frames; 0 means DefaultQueueLen
}

// DefaultConfig returns the configuration of a clean 1500-byte segment.
func DefaultConfig() Config { return Config{MTU: DefaultMTU, QueueLen: DefaultQueueLen} }

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if c.MTU < 0 || c.MTU > MaxMTU {
		return fmt.Errorf("linktest: Config.MTU is %d, want 0 (for %d) up to %d", c.MTU, DefaultMTU, MaxMTU)
	}
	if c.QueueLen < 0 {
		return fmt.Errorf("linktest: Config.QueueLen is %d, want 0 (for %d) or more", c.QueueLen, DefaultQueueLen)
	}
	return nil
}

// Stats counts what the switch did with frames. The hook decides once per
// receiving station; the other counts are per receiving link, so a
// broadcast to three single-link stations that all get it counts 3 in
// Delivered.
type Stats struct {
	Sent             uint64 // frames written into the switch, including those of links that are down
	Delivered        uint64 // copies queued for a reader
	Flooded          uint64 // unicast frames to a destination the switch has not learned
	Duplicated       uint64 // extra copies made by the hook
	Delayed          uint64 // copies the hook held back
	DroppedHook      uint64 // copies the hook dropped, one per station
	DroppedQueueFull uint64 // copies lost because the receiver's queue was full
	DroppedDown      uint64 // frames and copies lost to a pulled cable (Link.SetDown)
	DroppedClosed    uint64 // copies whose receiver, or the switch, closed while they were in flight
}

// Switch is an in-memory Ethernet switch. It is safe for concurrent use.
type Switch struct {
	mtu   int
	queue int
	pcap  *capture
	hook  atomic.Pointer[Hook]

	mu      sync.Mutex
	closed  bool
	links   []*Link
	tab     atomic.Pointer[table]
	promisc atomic.Int32 // attached promiscuous links
	pending map[*time.Timer]struct{}

	learnMu sync.RWMutex
	learned map[proto.MAC]struct{}

	sent, delivered, flooded, duplicated, delayed     atomic.Uint64
	droppedHook, droppedQueue, droppedDown, droppedCl atomic.Uint64
}

// table is the forwarding state, rebuilt whenever a link attaches or
// detaches and never changed after, so forwarding reads it without locks.
type table map[proto.EtherType]*segment

// segment is the set of stations bound to one EtherType.
type segment struct {
	stations []*station
	byMAC    map[proto.MAC]*station
}

// station is the links that share one hardware address on one EtherType.
type station struct {
	mac   proto.MAC
	links []*Link
}

// NewSwitch returns a switch configured by cfg. It panics if cfg does not
// validate, since that is a mistake in the test; a nil cfg.Pcap captures
// nothing.
func NewSwitch(cfg Config) *Switch {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	s := &Switch{
		mtu:     cmp.Or(cfg.MTU, DefaultMTU),
		queue:   cmp.Or(cfg.QueueLen, DefaultQueueLen),
		pcap:    newCapture(cfg.Pcap),
		pending: make(map[*time.Timer]struct{}),
		learned: make(map[proto.MAC]struct{}),
	}
	s.SetHook(cfg.Hook)
	s.tab.Store(&table{})
	return s
}

// Link attaches a new link with address mac bound to EtherType et. Links
// may share an address (one station speaking several protocols, or several
// readers of one); each receives its own copy. A link made after Close is
// already closed.
func (s *Switch) Link(mac proto.MAC, et proto.EtherType) *Link {
	l := newLink(s, mac, et, s.queue)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.shut()
		return l
	}
	s.links = append(s.links, l)
	s.rebuild()
	return l
}

// detach removes a closed link from the forwarding table.
func (s *Switch) detach(l *Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.links, l)
	if i < 0 {
		return
	}
	s.links = slices.Delete(s.links, i, i+1)
	s.rebuild()
	if l.promisc.Load() {
		s.promisc.Add(-1)
	}
	if !slices.ContainsFunc(s.links, func(o *Link) bool { return o.mac == l.mac }) {
		s.forget(l.mac)
	}
}

// rebuild makes a new forwarding table from s.links; s.mu is held.
func (s *Switch) rebuild() {
	t := table{}
	for _, l := range s.links {
		seg := t[l.et]
		if seg == nil {
			seg = &segment{byMAC: map[proto.MAC]*station{}}
			t[l.et] = seg
		}
		st := seg.byMAC[l.mac]
		if st == nil {
			st = &station{mac: l.mac}
			seg.byMAC[l.mac] = st
			seg.stations = append(seg.stations, st)
		}
		st.links = append(st.links, l)
	}
	s.tab.Store(&t)
}

// setPromiscuous switches a link's promiscuous mode.
func (s *Switch) setPromiscuous(l *Link, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.promisc.Load() == on {
		return
	}
	l.promisc.Store(on)
	if slices.Contains(s.links, l) {
		if on {
			s.promisc.Add(1)
		} else {
			s.promisc.Add(-1)
		}
	}
}

// SetHook replaces the fault hook; nil delivers every frame once, at once.
// Frames already in flight keep the verdict they had.
func (s *Switch) SetHook(h Hook) {
	if h == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&h)
}

// Stats returns the switch's counters.
func (s *Switch) Stats() Stats {
	return Stats{
		Sent:             s.sent.Load(),
		Delivered:        s.delivered.Load(),
		Flooded:          s.flooded.Load(),
		Duplicated:       s.duplicated.Load(),
		Delayed:          s.delayed.Load(),
		DroppedHook:      s.droppedHook.Load(),
		DroppedQueueFull: s.droppedQueue.Load(),
		DroppedDown:      s.droppedDown.Load(),
		DroppedClosed:    s.droppedCl.Load(),
	}
}

// PcapErr returns the first error writing the capture, if any. Frames after
// a failed write are not captured.
func (s *Switch) PcapErr() error { return s.pcap.Err() }

// Close closes every link, so blocked readers return [proto.ErrClosed], and
// discards the frames still in flight. Closing twice does nothing. Close
// returns nothing so that t.Cleanup(sw.Close) reads naturally.
func (s *Switch) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	links := s.links
	s.links = nil
	s.rebuild()
	for t := range s.pending {
		if t.Stop() {
			s.droppedCl.Add(1)
		}
	}
	clear(s.pending)
	s.mu.Unlock()
	for _, l := range links {
		l.shut()
	}
}

// forward carries one frame written by link from.
func (s *Switch) forward(from *Link, dst proto.MAC, p []byte) {
	s.sent.Add(1)
	s.pcap.write(from.mac, dst, from.et, p)
	if from.Down() {
		s.droppedDown.Add(1)
		return
	}
	s.learn(from.mac)
	seg := (*s.tab.Load())[from.et]
	if seg == nil {
		return
	}
	var payload []byte // one copy of p, padded, shared by every receiver
	share := func() []byte {
		if payload == nil {
			payload = make([]byte, max(len(p), proto.MinPayload))
			copy(payload, p)
		}
		return payload
	}
	if dst.IsMulticast() {
		for _, st := range seg.stations {
			if st.mac != from.mac {
				s.deliver(st, from, dst, share(), false)
			}
		}
		return
	}
	if !s.known(dst) {
		s.flooded.Add(1) // every station sees it; only dst's NIC accepts it
	}
	if st := seg.byMAC[dst]; st != nil && dst != from.mac {
		s.deliver(st, from, dst, share(), false)
	}
	if s.promisc.Load() > 0 {
		for _, st := range seg.stations {
			if st.mac != from.mac && st.mac != dst && st.promisc() {
				s.deliver(st, from, dst, share(), true)
			}
		}
	}
}

func (s *Switch) learn(mac proto.MAC) {
	s.learnMu.RLock()
	_, ok := s.learned[mac]
	s.learnMu.RUnlock()
	if !ok {
		s.learnMu.Lock()
		s.learned[mac] = struct{}{}
		s.learnMu.Unlock()
	}
}

// forget drops a station that has no link left from the learned addresses.
func (s *Switch) forget(mac proto.MAC) {
	s.learnMu.Lock()
	delete(s.learned, mac)
	s.learnMu.Unlock()
}

func (s *Switch) known(mac proto.MAC) bool {
	s.learnMu.RLock()
	defer s.learnMu.RUnlock()
	_, ok := s.learned[mac]
	return ok
}

// promisc reports whether a link of the station is promiscuous.
func (st *station) promisc() bool {
	for _, l := range st.links {
		if l.promisc.Load() {
			return true
		}
	}
	return false
}

// deliver runs the hook on the copy of a frame bound for station st and
// queues what it lets through, now or after its delay. With sniff set only
// the station's promiscuous links receive it.
func (s *Switch) deliver(st *station, from *Link, dst proto.MAC, payload []byte, sniff bool) {
	v := Deliver()
	if h := s.hook.Load(); h != nil {
		v = (*h)(Frame{Src: from.mac, Dst: dst, EtherType: from.et, To: st.mac, Payload: payload})
	}
	if v.Copies <= 0 {
		s.droppedHook.Add(1)
		return
	}
	if v.Payload != nil {
		payload = v.Payload
	}
	if v.Copies > 1 {
		s.duplicated.Add(uint64(v.Copies - 1))
	}
	c := copyOf{st: st, sniff: sniff, it: item{src: from.mac, dst: dst, payload: payload}}
	for i := range v.Copies {
		if d := v.delay(i); d > 0 {
			s.delayed.Add(1)
			s.later(d, c)
		} else {
			s.arrive(c)
		}
	}
}

// copyOf is one copy of a frame on its way to a station.
type copyOf struct {
	st    *station
	sniff bool // only for the station's promiscuous links
	it    item
}

// arrive queues a copy at the links of its station.
func (s *Switch) arrive(c copyOf) {
	for _, l := range c.st.links {
		if c.sniff && !l.promisc.Load() {
			continue
		}
		if l.Down() {
			s.droppedDown.Add(1)
			continue
		}
		switch l.enqueue(c.it) {
		case queued:
			s.delivered.Add(1)
		case full:
			s.droppedQueue.Add(1)
		case closed:
			s.droppedCl.Add(1)
		}
	}
}

// later delivers a copy after d, unless the switch closes first.
func (s *Switch) later(d time.Duration, c copyOf) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.droppedCl.Add(1)
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		delete(s.pending, t)
		closed := s.closed
		s.mu.Unlock()
		if closed {
			s.droppedCl.Add(1)
			return
		}
		s.arrive(c)
	})
	s.pending[t] = struct{}{}
}
