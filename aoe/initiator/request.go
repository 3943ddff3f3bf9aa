package initiator

import (
	"sync"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/proto"
)

// path is one way to reach a device: a target MAC on one link.
type path struct {
	info TargetInfo // guarded by in.mu (an announcement refreshes it)
	link proto.Link
	mac  proto.MAC // info.MAC, which never changes: read without in.mu

	cwnd, ssthresh float64
	inflight       int
	max            int

	srtt, rttvar, rto time.Duration
	measured          bool
	timeouts          int // consecutive, reset by any reply
	lastCut           time.Time

	sent, retransmits, replies uint64

	// Transmissions queue on the path; one goroutine at a time (the
	// sender) numbers and writes everything queued, in one sendmmsg per
	// round, so concurrent callers share system calls.
	qmu     sync.Mutex
	queue   []sendable // waiting for the sender; guarded by qmu
	spare   []sendable // the sender's other queue buffer; guarded by qmu
	sending bool       // a sender is running; guarded by qmu
	dirty   bool       // on in.dirty, queued while corked; guarded by qmu

	seq uint64     // transmissions written on this path, numbering them (sender only, under in.mu)
	out []*request // requests whose latest transmission is on this path, in send order

	reorder int // overtakes that do not mean loss, learnt from replies
	// undoCwnd and undoSsthresh are the window before the last cut, put
	// back when the cut proves spurious (the "lost" request's first
	// transmission is answered after all).
	undoCwnd, undoSsthresh float64

	// regMu serialises epoch registrations on the path; regGen counts
	// the successful ones (guarded by in.mu) and epoch is the epoch the
	// target answered with the last one.
	regMu  sync.Mutex
	regGen uint64
	epoch  uint64
}

// minReorder is the least number of requests sent after r on the same path
// that must be answered before r is taken for lost and retransmitted at
// once, without waiting for its timer (fast retransmit). A target that runs
// requests in parallel answers out of order, so each path learns how far
// replies overtake each other (path.reorder) and waits for more than that.
const minReorder = 4

// reorderDecay is how many replies pass before a path's reorder allowance
// shrinks by one, so a burst of reordering is forgotten.
const reorderDecay = 1024

func (p *path) forget(r *request) {
	for i, q := range p.out {
		if q == r {
			p.out = append(p.out[:i], p.out[i+1:]...)
			return
		}
	}
}

func newPath(info TargetInfo, link proto.Link, cfg *Config) *path {
	m := max(1, min(info.BufferCount, cfg.MaxWindow))
	return &path{info: info, link: link, mac: info.MAC, cwnd: 1, ssthresh: float64(m), max: m, rto: cfg.InitialRTO, reorder: minReorder}
}

// room is how many more requests the window admits.
func (p *path) room() int { return int(p.cwnd) - p.inflight }

func (p *path) alive() bool { return p.timeouts < 4 }

// sample folds one round trip into the estimator (RFC 6298).
func (p *path) sample(rtt time.Duration, cfg *Config) {
	if !p.measured {
		p.srtt, p.rttvar, p.measured = rtt, rtt/2, true
	} else {
		d := p.srtt - rtt
		if d < 0 {
			d = -d
		}
		p.rttvar = (3*p.rttvar + d) / 4
		p.srtt = (7*p.srtt + rtt) / 8
	}
	p.rto = min(max(p.srtt+4*p.rttvar, cfg.MinRTO), cfg.MaxRTO)
}

// grow opens the window after a reply: slow start below ssthresh,
// additive increase above it.
func (p *path) grow() {
	if p.cwnd < p.ssthresh {
		p.cwnd++
	} else {
		p.cwnd += 1 / p.cwnd
	}
	p.cwnd = min(p.cwnd, float64(p.max))
}

// request is one AoE request until its reply, its timeout or Close.
type request struct {
	dev       *Device
	frame     aoe.Frame
	slot      *path // holds a window slot, or nil
	cur       *path // path of the latest transmission
	tags      []uint32
	sent      time.Time // of the latest transmission
	retries   int
	deadline  time.Time
	timer     *time.Timer
	gen       int
	done      bool
	seq       uint64 // of the latest transmission on cur
	overtaken int    // later requests on cur answered since
	fast      bool   // fast-retransmitted already
	cutBy     bool   // its fast retransmission cut the window
	regGen    uint64 // cur.regGen at the latest transmission
	// cb runs once, with the reply (valid only during the call) or an error.
	cb func(f *aoe.Frame, err error)
}

// from reports whether a reply from src on link may answer r.
func (r *request) from(link int, src proto.MAC) bool {
	for _, p := range r.dev.paths {
		if p.info.Link == link && p.info.MAC == src {
			return true
		}
	}
	return false
}

// start sends r on p for the first time.
func (in *Initiator) start(r *request, p *path) {
	in.mu.Lock()
	if in.closed {
		if r.slot != nil {
			r.slot.inflight--
		}
		in.mu.Unlock()
		r.cb(nil, ErrClosed)
		return
	}
	r.deadline = time.Now().Add(in.cfg.RequestTimeout)
	snd := in.transmit(r, p)
	in.mu.Unlock()
	in.write(snd)
}

// startAll sends requests that all hold slots on p for the first time,
// in one batch when the link can.
func (in *Initiator) startAll(reqs []*request, p *path) {
	if len(reqs) == 1 {
		in.start(reqs[0], p)
		return
	}
	in.mu.Lock()
	if in.closed {
		p.inflight -= len(reqs)
		in.mu.Unlock()
		for _, r := range reqs {
			r.cb(nil, ErrClosed)
		}
		return
	}
	sends := make([]sendable, len(reqs))
	deadline := time.Now().Add(in.cfg.RequestTimeout)
	for i, r := range reqs {
		r.deadline = deadline
		sends[i] = in.transmit(r, p)
	}
	in.mu.Unlock()
	in.writeAll(p, sends)
}

// writeAll queues transmissions on path p and, unless another goroutine
// is already writing for the path, becomes its sender: it numbers and
// writes everything queued, with one sendmmsg per round when the link
// offers it, until the queue is empty. Numbering and writing by one sender
// at a time keep the numbers in the order on the wire, so a reply
// overtakes only requests really sent before it.
func (in *Initiator) writeAll(p *path, sends []sendable) {
	p.qmu.Lock()
	p.queue = append(p.queue, sends...)
	if p.sending {
		p.qmu.Unlock()
		return
	}
	if in.corked.Load() > 0 && len(p.queue) > 0 {
		// A reader is letting the callers it woke queue their next
		// requests; it writes them all when they have run (uncork).
		if !p.dirty {
			p.dirty = true
			in.dirtyMu.Lock()
			in.dirty = append(in.dirty, p)
			in.dirtyMu.Unlock()
		}
		p.qmu.Unlock()
		if in.corked.Load() == 0 {
			// Uncorked meanwhile, perhaps after the reader took the
			// dirty list: write them here.
			in.writeAll(p, nil)
		}
		return
	}
	p.sending = true
	for len(p.queue) > 0 {
		batch := p.queue
		p.queue = p.spare[:0]
		p.qmu.Unlock()
		in.writeNow(p, batch)
		clear(batch)
		p.qmu.Lock()
		p.spare = batch[:0]
	}
	p.sending = false
	p.qmu.Unlock()
}

// uncork ends a reader's cork and writes what the paths queued meanwhile.
func (in *Initiator) uncork() {
	in.corked.Add(-1)
	in.dirtyMu.Lock()
	dirty := in.dirty
	in.dirty = nil
	in.dirtyMu.Unlock()
	for _, p := range dirty {
		p.qmu.Lock()
		p.dirty = false
		p.qmu.Unlock()
		in.writeAll(p, nil)
	}
}

// writeNow numbers and writes transmissions on p. Only p's sender calls it.
func (in *Initiator) writeNow(p *path, sends []sendable) {
	payloads := make([][]byte, 0, len(sends))
	in.mu.Lock()
	for _, snd := range sends {
		if !snd.r.done && snd.r.gen == snd.gen {
			p.seq++
			snd.r.seq, snd.r.overtaken = p.seq, 0
			p.out = append(p.out, snd.r)
		}
		if len(*snd.b) > 0 {
			payloads = append(payloads, *snd.b)
		}
	}
	in.mu.Unlock()
	if bw, ok := p.link.(proto.BatchWriter); ok && len(payloads) > 1 {
		if err := bw.WriteBatch(payloads, p.mac); err != nil {
			in.log.Debug("aoe initiator: send batch", "dst", p.mac, "err", err)
		}
	} else {
		for _, b := range payloads {
			if err := p.link.WriteTo(b, p.mac); err != nil {
				in.log.Debug("aoe initiator: send", "dst", p.mac, "err", err)
			}
		}
	}
	for _, snd := range sends {
		*snd.b = (*snd.b)[:0]
		in.frames.Put(snd.b)
	}
}

// transmit gives r a new tag, arms its timer and marshals it. It runs
// under in.mu; the caller writes the frame after unlocking.
func (in *Initiator) transmit(r *request, p *path) sendable {
	tag := in.tag()
	r.tags = append(r.tags, tag)
	in.pending[tag] = r
	if r.cur != nil {
		r.cur.forget(r)
	}
	r.cur = p
	r.regGen = p.regGen
	p.sent++
	if r.retries > 0 {
		p.retransmits++
	}
	r.gen++
	r.sent = time.Now()
	rto := p.rto
	for i := 0; i < r.retries && rto < in.cfg.MaxRTO; i++ {
		rto *= 2
	}
	rto = min(rto, in.cfg.MaxRTO)
	gen := r.gen
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(rto, func() { in.timeout(r, gen) })
	r.frame.Tag = tag
	r.frame.Shelf, r.frame.Slot = p.info.Shelf, p.info.Slot
	bp, _ := in.frames.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	need := r.frame.PaddedLen()
	if cap(*bp) < need {
		*bp = make([]byte, need)
	}
	n, err := r.frame.MarshalTo((*bp)[:need])
	if err != nil {
		in.log.Error("aoe initiator: marshal request", "err", err)
	}
	*bp = (*bp)[:n]
	return sendable{b: bp, r: r, p: p, gen: gen}
}

// write numbers the transmission on its path and writes it.
func (in *Initiator) write(s sendable) { in.writeAll(s.p, []sendable{s}) }

// unpend retires r: forgets its tags, stops its timer and frees its window
// slot. It runs under in.mu.
func (in *Initiator) unpend(r *request) {
	r.done = true
	if r.cur != nil {
		r.cur.forget(r)
	}
	for _, t := range r.tags {
		delete(in.pending, t)
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.slot != nil {
		r.slot.inflight--
		r.dev.signal()
	}
}

// sendable is a marshalled transmission to write once in.mu is released.
type sendable struct {
	b   *[]byte
	r   *request
	p   *path
	gen int
}

// account learns from a reply to r: a round-trip sample when r was sent
// once, a wider window, and which earlier requests on the path the reply
// overtook; those overtaken dupThresh times are retransmitted now. It runs
// under in.mu and returns the frames to write after it.
func (in *Initiator) account(r *request, tag uint32) []sendable {
	p := r.cur
	if r.retries == 0 {
		p.sample(time.Since(r.sent), &in.cfg)
	}
	p.timeouts = 0
	p.replies++
	if r.slot != nil {
		r.slot.timeouts = 0
		r.slot.grow()
	}
	if len(r.tags) > 0 && tag == r.tags[0] {
		// The first transmission was answered: r's overtakes were
		// reordering, not loss. Learn how much, and undo a window cut
		// that r's fast retransmission caused.
		if r.overtaken >= p.reorder {
			p.reorder = min(r.overtaken+1, p.max+1)
		}
		if r.cutBy && r.slot != nil && r.slot.undoCwnd > r.slot.cwnd {
			r.slot.cwnd, r.slot.ssthresh = r.slot.undoCwnd, r.slot.undoSsthresh
		}
	}
	if p.replies%reorderDecay == 0 && p.reorder > minReorder {
		p.reorder--
	}
	var lost []*request
	for _, q := range p.out {
		if q.seq >= r.seq {
			break
		}
		q.overtaken++
		if q.overtaken > p.reorder && !q.fast {
			q.fast = true
			lost = append(lost, q)
		}
	}
	var out []sendable
	for _, q := range lost {
		q.cutBy = in.cut(q, time.Now())
		q.retries++
		out = append(out, in.transmit(q, q.cur))
	}
	return out
}

// cut halves the window of r's slot, at most once per round trip: only
// for a request sent after the last cut. It reports whether it cut.
func (in *Initiator) cut(r *request, now time.Time) bool {
	s := r.slot
	if s == nil || !r.sent.After(s.lastCut) {
		return false
	}
	s.undoCwnd, s.undoSsthresh = s.cwnd, s.ssthresh
	s.ssthresh = max(s.cwnd/2, 1)
	s.cwnd = s.ssthresh
	s.lastCut = now
	return true
}

// finish delivers r's outcome.
func (in *Initiator) finish(r *request, f *aoe.Frame, err error) {
	r.cb(f, err)
}

// timeout retransmits r, on another path when its path seems dead, or
// fails it after RequestTimeout.
func (in *Initiator) timeout(r *request, gen int) {
	in.mu.Lock()
	if r.done || r.gen != gen || in.closed {
		in.mu.Unlock()
		return
	}
	now := time.Now()
	p := r.cur
	p.timeouts++
	r.cutBy = in.cut(r, now)
	if now.After(r.deadline) {
		in.unpend(r)
		in.mu.Unlock()
		in.finish(r, nil, &Error{Op: opName(&r.frame), Shelf: r.dev.shelf, Slot: r.dev.slot, LBA: r.frame.ATA.Sector(), Err: ErrTimeout})
		return
	}
	r.retries++
	next := r.dev.retryPath(p, int(r.frame.ATA.SectorCount))
	snd := in.transmit(r, next)
	in.mu.Unlock()
	in.write(snd)
}

func opName(f *aoe.Frame) string {
	switch f.Command {
	case aoe.CmdATA:
		switch f.ATA.CmdStatus {
		case 0x20, 0x24:
			return "read"
		case 0x30, 0x34:
			return "write"
		case 0xe7, 0xea:
			return "flush"
		case 0xec:
			return "identify"
		}
		return "ata"
	case aoe.CmdConfig:
		return "config"
	case aoe.CmdMACMask:
		return "mask"
	case aoe.CmdReserve:
		return "reserve"
	case aoe.CmdEpoch:
		return "epoch"
	}
	return "vendor"
}
