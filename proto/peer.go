package proto

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// peer is the session state with one remote MAC: the handshake, our stream
// to it, its stream to us, liveness, and the calls waiting on it.
//
// All fields are guarded by mu. Timer callbacks take mu; nothing holds mu
// while taking Endpoint.mu.
type peer struct {
	e   *Endpoint
	mac MAC

	mu        sync.Mutex
	closed    bool
	epoch     uint64   // the peer's epoch, 0 while unknown
	retired   []uint64 // the peer's earlier epochs, newest last
	peerMTU   int      // from its HELLO answer; 0 until the handshake is done
	hintMTU   int      // from its own HELLO, used once its epoch is known
	hintWnd   uint32
	segSize   int         // message bytes per segment
	txbuf     []byte      // frame being built
	batchBufs [][]byte    // frames of a burst of new segments
	batch     [][]byte    // the frames of batchBufs being sent
	sc        aeadScratch // for sealing under mu
	sackbuf   []SACKRange // SACK ranges being sent
	ackbuf    []SACKRange // SACK ranges being received

	// handshake
	hello      uint64 // challenge waiting for an answer, 0 = none
	helloSent  time.Time
	helloTries int
	helloTimer *time.Timer

	// our stream to the peer
	sid      uint32 // 0 = none yet; the next one is lastSid+1
	lastSid  uint32
	una, nxt uint32
	wndEdge  uint32 // we may send seq before wndEdge
	inflight []*segment
	queue    []*outMsg
	rtt      rttEstimator
	rtxTimer lazyTimer
	lastSent time.Time // when a segment last went out
	highSack uint32    // the highest segment the peer holds out of order
	haveSack bool
	tlpSent  bool // a tail loss probe is out for this flight

	// the peer's stream to us
	rid      uint32
	rcvNxt   uint32
	ooo      map[uint32]inSegment
	reasm    []byte
	reasmLen uint32
	discard  bool
	ackOwed  int
	ackDue   bool      // an ACK goes out once the read loop has handled its batch
	ackSince time.Time // when the first segment not yet acknowledged arrived
	ackTimer lazyTimer

	// liveness
	lastHeard  time.Time
	probing    bool
	probeTimer *time.Timer
	refusedAt  time.Time

	calls map[uint64]*call
}

type segment struct {
	seq    uint32
	frag   uint8
	msgLen uint32
	off, n int // the segment's bytes in its message
	sentAt time.Time
	tx     int
	sacked bool
	msg    *outMsg
}

type inSegment struct {
	frag   uint8
	msgLen uint32
	data   []byte
}

// outMsg is an encoded message waiting to be segmented and acknowledged.
// Its bytes are head followed by body; body is the caller's payload, not
// a copy, so it is read (under the peer's lock) until the peer has
// acknowledged it or the caller gives up (detach).
type outMsg struct {
	head []byte // kind, id, method: the message header
	body []byte // the payload
	off  int    // how much has been cut into segments
	hbuf [msgHeaderLen + 22]byte
	// acked, when set, is told nil once the peer acknowledged the whole
	// message, or the error that ended the stream.
	acked    chan error
	allAcked atomic.Bool // the peer has acknowledged the whole message
}

func newOutMsg(m message) *outMsg {
	payload := m.payload
	m.payload = nil
	o := &outMsg{body: payload}
	o.head = m.appendTo(o.hbuf[:0]) // in place for methods of up to 22 bytes
	return o
}

func (m *outMsg) size() int { return len(m.head) + len(m.body) }

// copyTo fills dst with the message's bytes from off on.
func (m *outMsg) copyTo(dst []byte, off int) {
	if off < len(m.head) {
		n := copy(dst, m.head[off:])
		dst, off = dst[n:], off+n
	}
	copy(dst, m.body[off-len(m.head):])
}

// detach copies the payload, so that the caller, who no longer waits for
// the message, may change its buffer while segments are still sent again.
// The caller holds the peer's lock.
func (m *outMsg) detach() { m.body = bytes.Clone(m.body) }

type call struct {
	done chan callResult
}

type callResult struct {
	m   message
	err error
}

func newPeer(e *Endpoint, mac MAC) *peer {
	p := &peer{
		e:     e,
		mac:   mac,
		rtt:   newRTTEstimator(e.cfg.InitialRTO, e.cfg.MinRTO, e.cfg.MaxRTO),
		ooo:   make(map[uint32]inSegment),
		calls: make(map[uint64]*call),
		txbuf: make([]byte, e.link.MTU()),
	}
	p.rtxTimer.f = p.onRtxTimer
	p.ackTimer.f = p.onAckTimer
	return p
}

func (p *peer) currentEpoch() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch
}

// Sending.

// enqueue queues a message for the peer and starts sending it.
func (p *peer) enqueue(m *outMsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		if m.acked != nil {
			m.acked <- ErrEndpointClosed
		}
		return
	}
	p.queue = append(p.queue, m)
	p.e.stats.messagesOut.Add(1)
	p.watch(time.Now())
	p.pump(time.Now())
}

// pump segments queued messages into the send window and sends them.
func (p *peer) pump(now time.Time) {
	if len(p.queue) == 0 {
		return
	}
	if p.epoch == 0 || p.peerMTU == 0 {
		p.startHello(now)
		return
	}
	if p.sid == 0 {
		p.lastSid++
		p.sid = p.lastSid
		p.una, p.nxt = 0, 0
		p.wndEdge = uint32(min(p.e.cfg.Window, 64))
	}
	batch := p.batch[:0]
	for len(p.queue) > 0 && seqLess(p.nxt, p.wndEdge) && len(p.inflight) < p.e.cfg.Window {
		m := p.queue[0]
		size := m.size()
		n := min(p.segSize, size-m.off)
		var frag uint8
		if m.off == 0 {
			frag |= FragFirst
		}
		if m.off+n == size {
			frag |= FragLast
		}
		s := &segment{seq: p.nxt, frag: frag, msgLen: uint32(size), off: m.off, n: n, msg: m}
		m.off += n
		if m.off == size {
			p.queue = popFront(p.queue, 1)
		}
		p.inflight = append(p.inflight, s)
		p.nxt++
		batch = append(batch, p.sealData(s, p.batchBuf(len(batch)), now))
		if len(batch) == maxBatch {
			p.e.writeFrames(batch, p.mac)
			batch = batch[:0]
		}
	}
	p.e.writeFrames(batch, p.mac)
	clear(batch)
	p.batch = batch[:0]
	p.armRtx(now)
}

// popFront removes the first n elements of s in place, keeping its array,
// so that a queue emptied and filled again for every message allocates
// nothing.
func popFront[T any](s []*T, n int) []*T {
	k := copy(s, s[n:])
	clear(s[k:])
	return s[:k]
}

// maxBatch is how many new segments go to the link in one batch. Sealing
// a batch and sending it take turns, and the receiver can only work on
// what was sent: a smaller batch lets it start sooner and leaves it less
// to finish after the last sendmmsg, for a few more system calls.
const maxBatch = 16

// batchBuf returns the i-th frame buffer of the peer's send batch.
func (p *peer) batchBuf(i int) []byte {
	for len(p.batchBufs) <= i {
		p.batchBufs = append(p.batchBufs, make([]byte, p.e.link.MTU()))
	}
	return p.batchBufs[i]
}

// transmit sends a segment now, with an acknowledgement of the peer's stream.
func (p *peer) transmit(s *segment, now time.Time) {
	p.e.writeFrame(p.sealData(s, p.txbuf, now), p.mac)
}

// sealData builds and seals the DATA frame of a segment in buf and records
// it as sent.
func (p *peer) sealData(s *segment, buf []byte, now time.Time) []byte {
	d := Data{Stream: p.sid, Seq: s.seq, Frag: s.frag, MsgLen: s.msgLen}
	if p.rid != 0 {
		d.AckStream, d.Ack, d.Window = p.rid, p.rcvNxt, p.rcvWindow()
		p.ackOwed = 0 // the ack timer finds nothing owed
	}
	n := d.marshal(buf[HeaderLen:])
	s.msg.copyTo(buf[HeaderLen+n:HeaderLen+n+s.n], s.off)
	n += s.n
	s.sentAt = now
	p.lastSent = now
	s.tx++
	if s.tx > 1 {
		p.e.stats.retransmits.Add(1)
	}
	return p.e.sealFrame(buf, Header{Type: FrameData, DstEpoch: p.epoch}, p.mac, n, &p.sc)
}

// Loss recovery.
//
// Three clocks decide when a segment goes again, all run by one timer:
//   - a hole: a segment below one the peer holds (SACK) is lost once it has
//     been out for lossDelay, about a round trip (time-based, as in RACK,
//     RFC 8985), however few segments follow it;
//   - a tail loss probe: when nothing has been acknowledged for two round
//     trips plus the delayed-ack time, the last segment goes again once, to
//     draw a SACK that shows what is missing (RFC 8985 §7);
//   - the retransmission timeout (RFC 6298) for everything else.

// lossDelay is how long a segment below a SACKed one may still be on its
// way: a round trip and a reordering allowance of a quarter of it, at least
// a millisecond (RFC 8985's reo_wnd, with a floor for timer slack).
func (p *peer) lossDelay() time.Duration {
	srtt := p.rtt.smoothed()
	return srtt + max(srtt/4, time.Millisecond)
}

// dupThresh: a segment with this many SACKed segments above it is lost at
// once, without waiting for the loss delay (RFC 6675's DupThresh).
const dupThresh = 3

// probeTimeout is how long the tail of a flight waits for any ack before a
// tail loss probe.
func (p *peer) probeTimeout() time.Duration {
	return 2*p.rtt.smoothed() + p.e.cfg.DelayedAck + 100*time.Microsecond
}

// isHole reports whether s is unacknowledged below a segment the peer holds.
func (p *peer) isHole(s *segment) bool {
	return !s.sacked && p.haveSack && seqLess(s.seq, p.highSack)
}

// armRtx sets the loss timer to the earliest of the three clocks, or stops it.
func (p *peer) armRtx(now time.Time) {
	var at time.Time
	earlier := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	rto, loss := p.rtt.rto(), p.lossDelay()
	outstanding := false
	for _, s := range p.inflight {
		if s.sacked {
			continue
		}
		outstanding = true
		earlier(s.sentAt.Add(rto))
		if p.isHole(s) {
			earlier(s.sentAt.Add(loss))
		}
	}
	if !outstanding {
		return // a pending expiry finds nothing to do
	}
	if !p.tlpSent {
		earlier(p.lastSent.Add(p.probeTimeout()))
	}
	p.rtxTimer.arm(now, at)
}

// maxBurst bounds how many segments one timer expiry sends again.
const maxBurst = 64

func (p *peer) onRtxTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rtxTimer.fired()
	if p.closed || len(p.inflight) == 0 {
		return
	}
	now := time.Now()
	sent := p.resendHoles(now)
	rto := p.rtt.rto()
	timedOut := 0
	for _, s := range p.inflight {
		if sent+timedOut == maxBurst {
			break
		}
		if !s.sacked && now.Sub(s.sentAt) >= rto {
			p.transmit(s, now)
			timedOut++
		}
	}
	if timedOut > 0 {
		p.rtt.timeout()
		p.e.stats.timeouts.Add(1)
	}
	if sent+timedOut == 0 && !p.tlpSent && now.Sub(p.lastSent) >= p.probeTimeout() {
		for i := len(p.inflight) - 1; i >= 0; i-- {
			if s := p.inflight[i]; !s.sacked {
				p.transmit(s, now)
				p.tlpSent = true
				p.e.stats.tailProbes.Add(1)
				break
			}
		}
	}
	p.armRtx(now)
}

// resendHoles sends again the holes that have been out for the loss delay
// and returns how many it sent.
func (p *peer) resendHoles(now time.Time) int {
	if !p.haveSack {
		return 0
	}
	loss, sent := p.lossDelay(), 0
	for _, s := range p.inflight {
		if sent == maxBurst || !seqLess(s.seq, p.highSack) {
			break
		}
		if !p.isHole(s) {
			continue
		}
		beyond := int32(p.highSack - s.seq)
		if now.Sub(s.sentAt) >= loss || (beyond >= dupThresh && now.Sub(s.sentAt) >= p.rtt.smoothed()) {
			p.transmit(s, now)
			p.e.stats.fastRetransmits.Add(1)
			sent++
		}
	}
	return sent
}

// onAckOf processes an acknowledgement of our stream: cumulative, window
// and selective.
func (p *peer) onAckOf(stream, ack, window uint32, sack []SACKRange, now time.Time) {
	if stream == 0 || stream != p.sid {
		return
	}
	if seqLess(p.nxt, ack) || seqLess(ack, p.una) {
		return // acks what we never sent, or an old ack
	}
	var sample *segment
	advanced := p.una != ack
	done := 0
	for p.una != ack {
		s := p.inflight[done]
		if s.tx == 1 {
			sample = s
		}
		if s.frag&FragLast != 0 {
			s.msg.allAcked.Store(true)
			if s.msg.acked != nil {
				s.msg.acked <- nil
			}
		}
		done++
		p.una++
	}
	p.inflight = popFront(p.inflight, done)
	if sample != nil {
		p.rtt.sample(now.Sub(sample.sentAt))
	}
	if advanced {
		p.tlpSent = false // a new flight may probe again
	}
	if edge := ack + window; !seqLess(edge, p.wndEdge) || seqLess(p.nxt, p.wndEdge) {
		p.wndEdge = edge
	}
	if p.haveSack && !seqLess(p.una, p.highSack) {
		p.haveSack = false // everything up to it is acknowledged
	}
	for _, r := range sack {
		for q := r.Start; seqLess(q, r.End); q++ {
			i := q - p.una
			if int64(i) < int64(len(p.inflight)) {
				p.inflight[i].sacked = true
				if !p.haveSack || seqLess(p.highSack, q) {
					p.highSack, p.haveSack = q, true
				}
			}
		}
	}
	p.resendHoles(now)
	p.pump(now)
	p.armRtx(now)
}

// Receiving.

// onFrame handles a DATA, ACK or RESET frame that is authentic, new, and
// addressed to our current epoch.
func (p *peer) onFrame(h Header, body []byte, now time.Time) {
	var deliver []message
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if h.SrcEpoch != p.epoch {
		if p.isRetired(h.SrcEpoch) {
			p.mu.Unlock()
			p.e.drop(DropStaleEpoch)
			return
		}
		if h.Type == FrameReset && p.epoch == 0 {
			p.mu.Unlock()
			return // nothing of ours to reset
		}
		p.adoptEpoch(h.SrcEpoch, now)
	}
	p.lastHeard = now
	switch h.Type {
	case FrameReset:
		// The peer kept its epoch but lost our session (it cannot: a
		// RESET always comes from a new epoch). An old duplicate.
	case FrameAck:
		var a Ack
		a.SACK = p.ackbuf[:0]
		if err := a.UnmarshalBinary(body); err != nil {
			p.mu.Unlock()
			p.e.drop(DropMalformed)
			return
		}
		p.ackbuf = a.SACK
		p.onAckOf(a.Stream, a.Ack, a.Window, a.SACK, now)
		if h.Flags&FlagProbe != 0 {
			p.sendAck()
		}
	case FrameData:
		var d Data
		if err := d.UnmarshalBinary(body); err != nil {
			p.mu.Unlock()
			p.e.drop(DropMalformed)
			return
		}
		p.onAckOf(d.AckStream, d.Ack, d.Window, nil, now)
		deliver = p.onData(d, now)
	}
	p.mu.Unlock()
	for i, m := range deliver {
		p.dispatch(m)
		deliver[i] = message{}
	}
	if deliver != nil {
		p.e.delivered = deliver[:0]
	}
}

// onData takes one segment of the peer's stream and returns the messages
// it completes.
func (p *peer) onData(d Data, now time.Time) []message {
	if d.Stream != p.rid {
		if p.rid != 0 && d.Stream < p.rid {
			p.e.drop(DropStaleStream)
			return nil
		}
		// The peer started a new stream: what we had of the old one is void.
		p.rid = d.Stream
		p.rcvNxt = 0
		clear(p.ooo)
		p.reasm, p.reasmLen, p.discard = nil, 0, false
	}
	off := d.Seq - p.rcvNxt
	switch {
	case seqLess(d.Seq, p.rcvNxt):
		p.e.stats.duplicates.Add(1)
		p.ackSoon()
		return nil
	case off >= uint32(p.e.cfg.Window):
		p.e.drop(DropWindow)
		p.ackSoon()
		return nil
	case off > 0:
		if _, ok := p.ooo[d.Seq]; ok {
			p.e.stats.duplicates.Add(1)
		} else {
			p.ooo[d.Seq] = inSegment{d.Frag, d.MsgLen, append([]byte(nil), d.Payload...)}
		}
		p.ackSoon()
		return nil
	}
	out := p.e.delivered[:0] // read loop only, like onData
	hadGap := len(p.ooo) > 0
	if m, ok := p.accept(d.Frag, d.MsgLen, d.Payload); ok {
		out = append(out, m)
	}
	p.rcvNxt++
	for {
		s, ok := p.ooo[p.rcvNxt]
		if !ok {
			break
		}
		delete(p.ooo, p.rcvNxt)
		if m, ok := p.accept(s.frag, s.msgLen, s.data); ok {
			out = append(out, m)
		}
		p.rcvNxt++
	}
	if p.ackOwed == 0 {
		p.ackSince = now
	}
	p.ackOwed++
	if hadGap || p.ackOwed >= p.e.ackEvery || p.e.cfg.DelayedAck == 0 {
		p.ackSoon()
	} else {
		p.ackTimer.arm(now, p.ackSince.Add(p.e.cfg.DelayedAck))
	}
	return out
}

// accept appends an in-order segment to the message being reassembled and
// returns the message when the segment completes it.
func (p *peer) accept(frag uint8, msgLen uint32, data []byte) (message, bool) {
	if frag&FragFirst != 0 {
		if p.reasm != nil {
			p.e.drop(DropMalformed) // the previous message never ended
			p.e.bufs.put(p.reasm)
		}
		p.reasm, p.reasmLen, p.discard = nil, msgLen, false
		if int64(msgLen) > int64(p.e.cfg.MaxMessage) {
			p.discard = true
			p.e.drop(DropTooLarge)
			p.refuseTooLarge(data)
		} else {
			p.reasm = p.e.bufs.get(int(msgLen))
		}
	} else if p.reasm == nil && !p.discard {
		p.e.drop(DropMalformed) // a middle without a start
		p.discard = true
	}
	if p.discard {
		if frag&FragLast != 0 {
			p.discard = false
		}
		return message{}, false
	}
	if msgLen != p.reasmLen || len(p.reasm)+len(data) > int(p.reasmLen) {
		p.e.drop(DropMalformed)
		p.e.bufs.put(p.reasm)
		p.reasm, p.discard = nil, frag&FragLast == 0
		return message{}, false
	}
	p.reasm = append(p.reasm, data...)
	if frag&FragLast == 0 {
		return message{}, false
	}
	buf := p.reasm
	p.reasm = nil
	b := buf[:len(buf):len(buf)] // a pooled buffer's old bytes stay out of reach
	var m message
	if len(b) != int(p.reasmLen) || m.UnmarshalBinary(b) != nil {
		p.e.drop(DropMalformed)
		p.e.bufs.put(buf)
		return message{}, false
	}
	m.buf = buf
	p.e.stats.messagesIn.Add(1)
	return m, true
}

// refuseTooLarge answers a request that is over our limit with an error,
// so the caller does not wait for nothing. first is its first segment.
func (p *peer) refuseTooLarge(first []byte) {
	if len(first) < msgHeaderLen || msgKind(first[0]) != kindRequest {
		return
	}
	id := binary.BigEndian.Uint64(first[1:])
	m := message{kind: kindError, id: id, code: CodeTooLarge,
		payload: []byte("request is over the peer's message limit")}
	p.queue = append(p.queue, newOutMsg(m))
	p.pump(time.Now())
}

// dispatch hands a complete message to its handler or its waiting call.
// It runs without p.mu.
func (p *peer) dispatch(m message) {
	switch m.kind {
	case kindRequest, kindOneway:
		ent := p.e.handler(m.method)
		if ent.inline {
			p.e.serve(p, m, ent.h)
			return
		}
		p.e.handedOff = true
		p.e.startServe(p, m, ent.h)
	case kindResponse, kindError:
		p.mu.Lock()
		c := p.calls[m.id]
		delete(p.calls, m.id)
		p.mu.Unlock()
		if c != nil {
			p.e.handedOff = true
			c.done <- callResult{m: m}
		}
	}
}

func (p *peer) rcvWindow() uint32 {
	return uint32(max(p.e.cfg.Window-len(p.ooo), 0))
}

// ackSoon asks for an ACK once the read loop has handled the frames it
// read with this one, so that a batch of segments costs one ACK, not one
// per segment or per ackEvery. Only the read loop calls it.
func (p *peer) ackSoon() {
	if !p.ackDue {
		p.ackDue = true
		p.e.acksDue = append(p.e.acksDue, p)
	}
}

// flushAck sends the ACK that ackSoon asked for.
func (p *peer) flushAck() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ackDue && !p.closed {
		p.sendAck()
	}
	p.ackDue = false
}

// sendAck acknowledges the peer's stream now, with SACK ranges for what
// arrived beyond a gap.
func (p *peer) sendAck() {
	p.ackOwed = 0
	p.ackDue = false
	a := Ack{Stream: p.rid, Ack: p.rcvNxt, Window: p.rcvWindow(), SACK: p.sackRanges()}
	n := a.marshal(p.txbuf[HeaderLen:])
	p.e.sendFrame(p.txbuf, Header{Type: FrameAck, DstEpoch: p.epoch}, p.mac, n, &p.sc)
}

func (p *peer) sendProbe() {
	a := Ack{Stream: p.rid, Ack: p.rcvNxt, Window: p.rcvWindow()}
	n := a.marshal(p.txbuf[HeaderLen:])
	p.e.sendFrame(p.txbuf, Header{Type: FrameAck, Flags: FlagProbe, DstEpoch: p.epoch}, p.mac, n, &p.sc)
}

func (p *peer) onAckTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ackTimer.fired()
	if p.closed || p.ackOwed == 0 {
		return
	}
	now := time.Now()
	if at := p.ackSince.Add(p.e.cfg.DelayedAck); now.Before(at) {
		p.ackTimer.arm(now, at) // an earlier expiry, for an ack sent since
		return
	}
	p.sendAck()
}

// sackRanges lists the runs of out-of-order segments held, lowest first.
func (p *peer) sackRanges() []SACKRange {
	p.sackbuf = p.sackbuf[:0]
	if len(p.ooo) == 0 {
		return nil
	}
	offs := make([]uint32, 0, len(p.ooo))
	for seq := range p.ooo {
		offs = append(offs, seq-p.rcvNxt)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	for _, o := range offs {
		seq := p.rcvNxt + o
		if n := len(p.sackbuf); n > 0 && p.sackbuf[n-1].End == seq {
			p.sackbuf[n-1].End++
			continue
		}
		if len(p.sackbuf) == MaxSACK {
			break
		}
		p.sackbuf = append(p.sackbuf, SACKRange{seq, seq + 1})
	}
	return p.sackbuf
}

// Handshake.

func (p *peer) startHello(now time.Time) {
	if p.hello != 0 {
		return
	}
	var b [8]byte
	for p.hello == 0 {
		rand.Read(b[:])
		p.hello = binary.BigEndian.Uint64(b[:])
	}
	p.helloTries = 0
	p.sendHello(now)
}

func (p *peer) sendHello(now time.Time) {
	h := Hello{Challenge: p.hello, MTU: uint32(p.e.link.MTU()), Window: uint32(p.e.cfg.Window)}
	n := h.marshal(p.txbuf[HeaderLen:])
	p.e.sendFrame(p.txbuf, Header{Type: FrameHello}, p.mac, n, &p.sc)
	p.helloSent = now
	p.helloTries++
	d := p.rtt.rto()
	for i := 1; i < p.helloTries && d < p.e.cfg.MaxRTO; i++ {
		d *= 2
	}
	p.helloTimer = resetTimer(p.helloTimer, min(d, p.e.cfg.MaxRTO), p.onHelloTimer)
}

func (p *peer) onHelloTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed && p.hello != 0 {
		p.sendHello(time.Now())
	}
}

func (p *peer) onHelloReply(h Header, hello Hello, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.hello == 0 || hello.Challenge != p.hello {
		return // not ours, or answered already
	}
	if p.isRetired(h.SrcEpoch) {
		return
	}
	if p.helloTries == 1 {
		p.rtt.sample(now.Sub(p.helloSent))
	}
	p.hello = 0
	stopTimer(p.helloTimer)
	if p.epoch != h.SrcEpoch {
		p.adoptEpoch(h.SrcEpoch, now)
	}
	p.lastHeard = now
	p.ready(int(hello.MTU), hello.Window)
	p.pump(now)
}

// ready records the peer's MTU and window: we may send.
func (p *peer) ready(mtu int, window uint32) {
	p.peerMTU = mtu
	p.segSize = min(p.peerMTU, p.e.link.MTU()) - Overhead
	if p.sid == 0 {
		p.lastSid++
		p.sid = p.lastSid
		p.una, p.nxt = 0, 0
	}
	p.wndEdge = p.una + min(window, uint32(p.e.cfg.Window))
}

// hint keeps what the peer's HELLO says of its MTU and window until its
// epoch is known from an authentic frame.
func (p *peer) hint(h Hello) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch == 0 || p.peerMTU == 0 {
		p.hintMTU, p.hintWnd = int(h.MTU), h.Window
	}
}

// adoptEpoch switches to a new epoch of the peer: it restarted, so
// everything in flight with its old incarnation is void.
func (p *peer) adoptEpoch(epoch uint64, now time.Time) {
	old := p.epoch
	if old != 0 {
		p.retired = append(p.retired, old)
		if len(p.retired) > 8 {
			p.retired = p.retired[1:]
		}
		p.e.stats.peerRestarts.Add(1)
		p.e.log.Info("peer restarted", "peer", p.mac)
		p.failAll(ErrPeerRestarted)
		p.e.forgetEpoch(p.mac, old)
	}
	p.epoch = epoch
	p.peerMTU = 0 // learn it again before sending: from its HELLO, or ours
	if p.hintMTU != 0 {
		p.ready(p.hintMTU, p.hintWnd)
		p.hintMTU = 0
	}
	p.rid, p.rcvNxt = 0, 0
	clear(p.ooo)
	p.reasm, p.reasmLen, p.discard = nil, 0, false
}

func (p *peer) isRetired(epoch uint64) bool {
	for _, r := range p.retired {
		if r == epoch {
			return true
		}
	}
	return false
}

// failAll ends our stream to the peer: calls and queued messages fail with
// err, and the next message starts a new stream.
func (p *peer) failAll(err error) {
	for id, c := range p.calls {
		c.done <- callResult{err: err}
		delete(p.calls, id)
	}
	seen := map[*outMsg]bool{}
	for _, s := range p.inflight {
		if s.msg.acked != nil && !seen[s.msg] {
			seen[s.msg] = true
			s.msg.acked <- err
		}
	}
	for _, m := range p.queue {
		if m.acked != nil && !seen[m] {
			seen[m] = true
			m.acked <- err
		}
	}
	p.inflight, p.queue = nil, nil
	p.haveSack, p.tlpSent = false, false
	p.sid = 0
	p.hello = 0
	p.rtxTimer.stop()
	stopTimer(p.helloTimer)
}

// Liveness.

// busy reports whether anything waits on the peer.
func (p *peer) busy() bool {
	return len(p.calls) > 0 || len(p.inflight) > 0 || len(p.queue) > 0 || p.hello != 0
}

// watch starts probing the peer's liveness, if it is not watched yet.
func (p *peer) watch(now time.Time) {
	if p.probing {
		return
	}
	p.probing = true
	p.lastHeard = now // silence while idle is no evidence
	p.probeTimer = resetTimer(p.probeTimer, p.e.cfg.ProbeInterval, p.onProbeTimer)
}

func (p *peer) onProbeTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if !p.busy() {
		p.probing = false
		return
	}
	now := time.Now()
	silence := now.Sub(p.lastHeard)
	if silence >= p.e.cfg.Tolerance {
		p.declareDead(now)
		p.probing = false
		return
	}
	if silence >= p.e.cfg.ProbeInterval && p.epoch != 0 && p.hello == 0 {
		p.sendProbe()
	}
	p.probeTimer = resetTimer(p.probeTimer, p.e.cfg.ProbeInterval, p.onProbeTimer)
}

func (p *peer) declareDead(now time.Time) {
	err := ErrPeerDead
	if !p.refusedAt.IsZero() && now.Sub(p.refusedAt) <= p.e.cfg.Tolerance+p.e.cfg.ProbeInterval {
		err = ErrUnauthenticated
	}
	p.e.stats.peersDead.Add(1)
	p.peerMTU = 0 // handshake again: what we knew may be what failed
	p.e.log.Warn("peer declared dead", "peer", p.mac, "silence", now.Sub(p.lastHeard), "err", err)
	p.failAll(err)
}

func (p *peer) markRefused(now time.Time) {
	p.mu.Lock()
	first := p.refusedAt.IsZero() || now.Sub(p.refusedAt) > p.e.cfg.Tolerance
	p.refusedAt = now
	p.mu.Unlock()
	if first {
		p.e.log.Warn("peer refused our frames: check that it has our cluster key", "peer", p.mac)
	}
}

func (p *peer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.failAll(ErrEndpointClosed)
	p.ackTimer.stop()
	stopTimer(p.probeTimer)
}

// Timers.

func resetTimer(t *time.Timer, d time.Duration, f func()) *time.Timer {
	if t == nil {
		return time.AfterFunc(d, f)
	}
	t.Reset(d)
	return t
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// lazyTimer is a timer for deadlines that move with every frame (the
// delayed ack, the loss timer). It is only ever moved earlier: a later
// deadline waits for the pending expiry, whose callback works out what is
// due and arms it again. Arming a Go timer earlier than the other timers
// of the P wakes the thread sleeping in the network poller (or another
// P), and doing that for every frame costs a thread wakeup per frame.
// The callback must call fired first, with the peer's lock held.
type lazyTimer struct {
	f  func() // the callback, set once
	t  *time.Timer
	at time.Time // when the pending expiry is due; zero when none is
}

// arm makes the timer fire no later than at.
func (l *lazyTimer) arm(now, at time.Time) {
	if !l.at.IsZero() && !at.Before(l.at) {
		return // the pending expiry comes first and will arm it again
	}
	l.at = at
	d := max(at.Sub(now), 0)
	if l.t == nil {
		l.t = time.AfterFunc(d, l.f)
		return
	}
	l.t.Reset(d)
}

// fired records that the expiry came.
func (l *lazyTimer) fired() { l.at = time.Time{} }

func (l *lazyTimer) stop() {
	if l.t != nil {
		l.t.Stop()
	}
	l.at = time.Time{}
}

// maxAckEvery is how many in-order segments may arrive before an ACK goes
// out, at most (an eighth of the window if that is less); fewer wait for
// DelayedAck or ride on a reply. The sender needs no ACK to go on: the
// window is far larger. Losses are still reported at once: a segment out of
// order or twice is acknowledged as soon as the read loop has handled its
// batch.
const maxAckEvery = 128
