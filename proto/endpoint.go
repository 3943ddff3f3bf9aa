package proto

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures an Endpoint. Start from DefaultConfig.
type Config struct {
	// Keys seals and opens every frame. Required.
	Keys *Keyring
	// Tolerance is how long a peer we wait on may stay silent before it is
	// declared dead and the calls to it fail (TIPC's link tolerance).
	Tolerance time.Duration
	// ProbeInterval is how often a silent peer we wait on is probed.
	ProbeInterval time.Duration
	// MinRTO, InitialRTO and MaxRTO bound the retransmission timeout.
	MinRTO, InitialRTO, MaxRTO time.Duration
	// DelayedAck is how long an acknowledgement may wait for a reply to
	// ride on.
	DelayedAck time.Duration
	// Window is the receive window in segments.
	Window int
	// MaxMessage is the largest message sent or accepted, in bytes.
	MaxMessage int
	// Logger receives protocol events; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 1.5 s tolerance (TIPC's), probes
// every tolerance/8, a 20 ms LAN floor under the RFC 6298 timeout, 1024
// segments of window and 64 MiB messages.
func DefaultConfig() Config {
	return Config{
		Tolerance:     1500 * time.Millisecond,
		ProbeInterval: 1500 * time.Millisecond / 8,
		MinRTO:        20 * time.Millisecond,
		InitialRTO:    50 * time.Millisecond,
		MaxRTO:        500 * time.Millisecond,
		DelayedAck:    time.Millisecond,
		Window:        1024,
		MaxMessage:    64 << 20,
	}
}

// Validate checks the fields against each other; the error names the field
// and the bound.
func (c Config) Validate() error {
	switch {
	case c.Keys == nil:
		return errors.New("proto: Config.Keys is nil: every frame is authenticated, load a key file")
	case c.Tolerance < 10*time.Millisecond:
		return fmt.Errorf("proto: Config.Tolerance %v is below 10ms", c.Tolerance)
	case c.ProbeInterval <= 0 || c.ProbeInterval > c.Tolerance:
		return fmt.Errorf("proto: Config.ProbeInterval %v must be in (0, Tolerance=%v]", c.ProbeInterval, c.Tolerance)
	case c.MinRTO <= 0:
		return fmt.Errorf("proto: Config.MinRTO %v must be positive", c.MinRTO)
	case c.InitialRTO < c.MinRTO:
		return fmt.Errorf("proto: Config.InitialRTO %v is below MinRTO %v", c.InitialRTO, c.MinRTO)
	case c.MaxRTO < c.InitialRTO:
		return fmt.Errorf("proto: Config.MaxRTO %v is below InitialRTO %v", c.MaxRTO, c.InitialRTO)
	case c.DelayedAck < 0 || c.DelayedAck >= c.MinRTO:
		return fmt.Errorf("proto: Config.DelayedAck %v must be in [0, MinRTO=%v)", c.DelayedAck, c.MinRTO)
	case c.Window < 2 || c.Window > 1<<20:
		return fmt.Errorf("proto: Config.Window %d must be from 2 to %d segments", c.Window, 1<<20)
	case c.MaxMessage < 1024 || c.MaxMessage > 1<<30:
		return fmt.Errorf("proto: Config.MaxMessage %d must be from 1 KiB to 1 GiB", c.MaxMessage)
	}
	return nil
}

// Handler serves one method. It runs on its own goroutine; ctx ends when
// the endpoint closes. The returned bytes are the response payload, sent
// without a copy: the handler must not change them after returning. An
// error reaches the caller as a *RemoteError.
type Handler func(ctx context.Context, req *Request) ([]byte, error)

// Request is what a handler is given.
type Request struct {
	From      MAC    // the authenticated sender
	Method    string // the method called
	Payload   []byte // owned by the handler, until Release
	Broadcast bool   // a discovery: the answer goes back as one unreliable frame
	Oneway    bool   // a one-way message: the response is discarded

	buf  []byte   // the reassembly buffer Payload lives in, if it may be reused
	bufs *bufPool // where it goes back
}

// Release gives the memory of r.Payload back to the endpoint, which will
// reuse it for a later message: a handler that is done with a large
// payload saves the endpoint allocating and zeroing a new buffer, and the
// garbage collections that brings. After Release, neither the handler nor
// anything it handed the payload to may use it, and the handler must not
// return it (or part of it) as its response. Release sets r.Payload to
// nil; calling it again, or not at all, is fine.
func (r *Request) Release() {
	if r.buf != nil {
		r.bufs.put(r.buf)
	}
	r.buf, r.bufs, r.Payload = nil, nil, nil
}

// Endpoint runs the control protocol on a Link: sessions with every peer it
// talks to, calls, one-way messages, discovery, and the handlers it serves.
// It is safe for concurrent use. It owns the Link and closes it in Close.
type Endpoint struct {
	link  Link
	cfg   Config
	keys  *Keyring
	log   *slog.Logger
	addr  MAC
	epoch uint64

	counter atomic.Uint64 // frame counter: AEAD nonce and replay index
	callID  atomic.Uint64

	bufs bufPool // reassembly buffers handlers released

	hmu      sync.RWMutex
	handlers map[string]handlerEntry

	mu          sync.Mutex
	peers       map[MAC]*peer
	discoveries map[uint64]*discovery
	replay      map[peerEpoch]*replayWindow
	refusedTo   map[MAC]time.Time // when we last sent REFUSED to a MAC
	bcastCache  map[bcastKey][]byte
	closed      bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats counters

	jobs        chan job // to idle handler goroutines
	idleWorkers atomic.Int32

	// sealer seals what the endpoint sends: the AEAD of the primary key
	// for our address and epoch, derived once.
	sealer cipher.AEAD
	sealID uint8

	// Read loop only.
	openers         map[openerKey]cipher.AEAD // the keyring's AEADs, without its lock
	openScratch     aeadScratch
	delivered       []message // messages a frame completed, being dispatched
	handedOff       bool      // the read loop woke a caller or a handler
	parksAfterBatch bool      // the link is read with ReadBatches
	acksDue         []*peer   // peers owed an ACK after the current batch
	ackEvery        int       // in-order segments per ACK
}

type openerKey struct {
	id    uint8
	mac   MAC
	epoch uint64
}

type peerEpoch struct {
	mac   MAC
	epoch uint64
}

type bcastKey struct {
	mac   MAC
	epoch uint64
	id    uint64
}

// NewEndpoint starts the control protocol on link. The endpoint owns the
// link from now on.
func NewEndpoint(link Link, cfg Config) (*Endpoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if link.MTU() < MinMTU {
		return nil, fmt.Errorf("proto: link MTU %d is too small for the control protocol: need at least %d", link.MTU(), MinMTU)
	}
	var eb [8]byte
	var epoch uint64
	for epoch == 0 {
		if _, err := rand.Read(eb[:]); err != nil {
			return nil, fmt.Errorf("proto: choosing session epoch: %w", err)
		}
		epoch = binary.BigEndian.Uint64(eb[:])
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		link:        link,
		cfg:         cfg,
		keys:        cfg.Keys,
		log:         log.With("mac", link.Addr().String()),
		addr:        link.Addr(),
		epoch:       epoch,
		handlers:    make(map[string]handlerEntry),
		peers:       make(map[MAC]*peer),
		discoveries: make(map[uint64]*discovery),
		replay:      make(map[peerEpoch]*replayWindow),
		refusedTo:   make(map[MAC]time.Time),
		bcastCache:  make(map[bcastKey][]byte),
		jobs:        make(chan job),
		openers:     make(map[openerKey]cipher.AEAD),
		ackEvery:    max(1, min(maxAckEvery, cfg.Window/8)),
		ctx:         ctx,
		cancel:      cancel,
	}
	e.sealID = cfg.Keys.Primary().ID
	e.sealer, _ = cfg.Keys.aead(e.sealID, e.addr, e.epoch)
	e.HandleInline(MethodPing, func(ctx context.Context, r *Request) ([]byte, error) { return r.Payload, nil })
	e.wg.Add(1)
	go e.readLoop()
	return e, nil
}

// MethodPing is answered by every endpoint with the request's payload, like
// an ICMP echo: mvctl ping uses it to measure round trips to any node.
const MethodPing = "ping"

// Addr is the endpoint's hardware address.
func (e *Endpoint) Addr() MAC { return e.addr }

// Epoch is the endpoint's random session epoch, new at every start.
func (e *Endpoint) Epoch() uint64 { return e.epoch }

// MTU is the link's MTU.
func (e *Endpoint) MTU() int { return e.link.MTU() }

// Handle registers the handler of a method, replacing any earlier one.
func (e *Endpoint) Handle(method string, h Handler) {
	if method == "" || len(method) > MaxMethodLen {
		panic(fmt.Sprintf("proto: method name %q must be 1 to %d bytes", method, MaxMethodLen))
	}
	e.hmu.Lock()
	e.handlers[method] = handlerEntry{h: h}
	e.hmu.Unlock()
}

// HandleInline registers h like Handle, but h runs on the endpoint's read
// loop rather than on a handler goroutine, which saves a hand-off per
// request (the built-in ping is one). Only for handlers that return at once:
// no I/O, no calls, no waiting on locks. While one runs, no frame from any
// peer is read.
func (e *Endpoint) HandleInline(method string, h Handler) {
	e.Handle(method, h)
	e.hmu.Lock()
	e.handlers[method] = handlerEntry{h: h, inline: true}
	e.hmu.Unlock()
}

// handlerEntry is a registered handler, and whether it runs on the read
// loop (HandleInline).
type handlerEntry struct {
	h      Handler
	inline bool
}

func (e *Endpoint) handler(method string) handlerEntry {
	e.hmu.RLock()
	defer e.hmu.RUnlock()
	return e.handlers[method]
}

// Close stops the endpoint: pending calls fail with ErrEndpointClosed,
// handlers' contexts end, the link is closed.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	peers := make([]*peer, 0, len(e.peers))
	for _, p := range e.peers {
		peers = append(peers, p)
	}
	discs := e.discoveries
	e.discoveries = map[uint64]*discovery{}
	e.mu.Unlock()
	e.cancel()
	for _, p := range peers {
		p.close()
	}
	for _, d := range discs {
		d.finish()
	}
	err := e.link.Close()
	e.wg.Wait()
	return err
}

// peer returns the session state of mac, creating it.
func (e *Endpoint) peer(mac MAC) (*peer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrEndpointClosed
	}
	p := e.peers[mac]
	if p == nil {
		p = newPeer(e, mac)
		e.peers[mac] = p
	}
	return p, nil
}

func (e *Endpoint) existingPeer(mac MAC) *peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.peers[mac]
}

// admit records the frame counter of an authenticated frame and reports
// whether it is new for its sender epoch; for a frame of a session, it
// also returns the sender's session state, creating it (nil once the
// endpoint is closed). One lock for both: it is taken for every frame.
func (e *Endpoint) admit(src MAC, epoch, counter uint64, session bool) (p *peer, fresh bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.checkReplayLocked(src, epoch, counter) {
		return nil, false
	}
	if session && !e.closed {
		if p = e.peers[src]; p == nil {
			p = newPeer(e, src)
			e.peers[src] = p
		}
	}
	return p, true
}

// checkReplayLocked records the frame counter of an authenticated frame
// and reports whether it is new for its sender epoch.
func (e *Endpoint) checkReplayLocked(src MAC, epoch, counter uint64) bool {
	k := peerEpoch{src, epoch}
	w := e.replay[k]
	if w == nil {
		if len(e.replay) >= maxReplayWindows {
			e.pruneReplayLocked()
		}
		w = new(replayWindow)
		e.replay[k] = w
	}
	return w.check(counter)
}

// maxReplayWindows bounds the replay state kept for sender epochs that
// have no session (broadcasters, handshakes that went nowhere).
const maxReplayWindows = 16384

func (e *Endpoint) pruneReplayLocked() {
	for k := range e.replay {
		if p := e.peers[k.mac]; p == nil || p.currentEpoch() != k.epoch {
			delete(e.replay, k)
		}
	}
}

func (e *Endpoint) forgetEpoch(mac MAC, epoch uint64) {
	e.mu.Lock()
	delete(e.replay, peerEpoch{mac, epoch})
	e.mu.Unlock()
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	var read func() ([]Frame, error)
	if bl, ok := e.link.(batchLooper); ok {
		e.parksAfterBatch = true
		frames := e.frameBufs(readBatch)
		read = func() ([]Frame, error) {
			return nil, bl.ReadBatches(frames, e.handleBatch) // returns only failing
		}
	} else if br, ok := e.link.(BatchReader); ok {
		frames := e.frameBufs(readBatch)
		read = func() ([]Frame, error) {
			for i := range frames {
				frames[i].Payload = frames[i].Payload[:cap(frames[i].Payload)]
			}
			n, err := br.ReadBatch(frames)
			return frames[:n], err
		}
	} else {
		frames := e.frameBufs(1)
		read = func() ([]Frame, error) {
			f := &frames[0]
			n, src, dst, err := e.link.ReadFrom(f.Payload[:cap(f.Payload)])
			f.Payload, f.Src, f.Dst = f.Payload[:n], src, dst
			return frames, err
		}
	}
	for {
		frames, err := read()
		if err != nil {
			if errors.Is(err, ErrClosed) || e.ctx.Err() != nil {
				return
			}
			if IsTimeout(err) {
				continue
			}
			e.log.Warn("reading frame", "err", err)
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		e.handleBatch(frames)
	}
}

// batchLooper is an ability of PacketLink: reading batch after batch in
// one wait on the socket, which saves a system call per wakeup.
type batchLooper interface {
	ReadBatches(frames []Frame, handle func([]Frame)) error
}

func (e *Endpoint) frameBufs(n int) []Frame {
	frames := make([]Frame, n)
	for i := range frames {
		frames[i].Payload = make([]byte, e.link.MTU()+64)
	}
	return frames
}

// handleBatch handles the frames of one read, then sends the ACKs they
// asked for. Read loop only.
func (e *Endpoint) handleBatch(frames []Frame) {
	for _, f := range frames {
		e.handleFrame(f.Payload, f.Src, f.Dst)
	}
	for i, p := range e.acksDue {
		p.flushAck()
		e.acksDue[i] = nil
	}
	e.acksDue = e.acksDue[:0]
	if e.handedOff && !e.parksAfterBatch {
		// A caller or handler is waiting to run on this P: let it run
		// now instead of after our next, probably empty, read. (With
		// ReadBatches the read loop goes back to waiting as soon as the
		// socket is empty, which lets it run just the same.)
		runtime.Gosched()
	}
	e.handedOff = false
}

// readBatch is how many frames the read loop takes per system call on a
// link that can batch.
const readBatch = 32

// handleFrame authenticates one received frame and acts on it. frame is
// reused after it returns.
func (e *Endpoint) handleFrame(frame []byte, src, dst MAC) {
	e.stats.framesIn.Add(1)
	if src == e.addr {
		e.drop(DropLoop)
		return
	}
	if dst != e.addr && !dst.IsBroadcast() {
		e.drop(DropNotForUs)
		return
	}
	var h Header
	if err := h.UnmarshalBinary(frame); err != nil {
		if errors.Is(err, ErrBadVersion) || errors.Is(err, ErrBadType) || errors.Is(err, ErrBadFlags) {
			e.drop(DropBadHeader)
		} else {
			e.drop(DropShort)
		}
		return
	}
	if h.Type == FrameRefused {
		e.gotRefused(src)
		return
	}
	body, err := e.open(&h, frame, src, dst)
	if err != nil {
		if errors.Is(err, ErrBadLength) {
			e.drop(DropShort)
		} else {
			e.drop(DropAuth)
		}
		if dst == e.addr || h.Type == FrameBcast {
			e.sendRefused(src)
		}
		return
	}
	if h.SrcEpoch == 0 {
		e.drop(DropMalformed)
		return
	}
	session := (h.Type == FrameData || h.Type == FrameAck || h.Type == FrameReset) &&
		dst == e.addr && h.DstEpoch == e.epoch
	p, fresh := e.admit(src, h.SrcEpoch, h.Counter, session)
	if !fresh {
		e.drop(DropReplay)
		return
	}
	now := time.Now()
	switch h.Type {
	case FrameHello:
		e.onHello(h, body, src, dst, now)
	case FrameBcast:
		e.onBcast(h, body, src, dst)
	case FrameDgram:
		e.onDgram(h, body, src)
	case FrameData, FrameAck, FrameReset:
		if dst != e.addr {
			e.drop(DropMalformed)
			return
		}
		if h.DstEpoch != e.epoch {
			e.drop(DropStaleEpoch)
			if h.Type != FrameReset {
				e.sendReset(src, h.SrcEpoch)
			}
			return
		}
		if p != nil { // else the endpoint is closed
			p.onFrame(h, body, now)
		}
	}
}

func (e *Endpoint) onHello(h Header, body []byte, src, dst MAC, now time.Time) {
	var hello Hello
	if err := hello.UnmarshalBinary(body); err != nil {
		e.drop(DropMalformed)
		return
	}
	if h.Flags&FlagReply == 0 {
		if dst != e.addr && !dst.IsBroadcast() {
			e.drop(DropMalformed)
			return
		}
		// Answer, and keep the peer's MTU and window as a hint for when
		// its first authentic DATA frame arrives, so our first reply needs
		// no handshake of its own. Change nothing else: a HELLO carries no
		// proof of freshness, so it could be a replay.
		if p, err := e.peer(src); err == nil {
			p.hint(hello)
		}
		reply := Hello{Challenge: hello.Challenge, MTU: uint32(e.link.MTU()), Window: uint32(e.cfg.Window)}
		var b [HeaderLen + HelloLen + TagLen]byte
		reply.marshal(b[HeaderLen:])
		e.sendFrame(b[:], Header{Type: FrameHello, Flags: FlagReply, DstEpoch: h.SrcEpoch}, src, HelloLen, nil)
		return
	}
	if h.DstEpoch != e.epoch || dst != e.addr {
		e.drop(DropStaleEpoch)
		return
	}
	if p := e.existingPeer(src); p != nil {
		p.onHelloReply(h, hello, now)
	}
}

// sendFrame seals and sends a frame whose body is already at
// buf[HeaderLen:HeaderLen+bodyLen]. It fills in version, epoch and counter;
// sealing pads a body too short for Ethernet (only RESET's empty one is).
// sc, if not nil, is the caller's own scratch space for the seal.
func (e *Endpoint) sendFrame(buf []byte, h Header, dst MAC, bodyLen int, sc *aeadScratch) {
	e.writeFrame(e.sealFrame(buf, h, dst, bodyLen, sc), dst)
}

// sealFrame fills in version, epoch and counter and seals the frame whose
// body is at buf[HeaderLen:HeaderLen+bodyLen].
func (e *Endpoint) sealFrame(buf []byte, h Header, dst MAC, bodyLen int, sc *aeadScratch) []byte {
	h.Version = Version
	h.SrcEpoch = e.epoch
	h.Counter = e.counter.Add(1)
	return sealWith(e.sealer, e.sealID, buf, h, e.addr, dst, bodyLen, sc)
}

// open authenticates a frame whose header has been decoded into h and
// returns its body, decrypted in place, with the AEADs the read loop has
// used before at hand.
func (e *Endpoint) open(h *Header, frame []byte, src, dst MAC) ([]byte, error) {
	k := openerKey{h.KeyID, src, h.SrcEpoch}
	a := e.openers[k]
	if a == nil {
		var ok bool
		if a, ok = e.keys.aead(h.KeyID, src, h.SrcEpoch); !ok {
			return nil, fmt.Errorf("%w: unknown key id %d", ErrAuth, h.KeyID)
		}
		if len(e.openers) >= maxOpeners {
			clear(e.openers)
		}
		e.openers[k] = a
	}
	return openWith(a, h, frame, src, dst, &e.openScratch)
}

// maxOpeners bounds the read loop's own cache of AEADs.
const maxOpeners = 1024

func (e *Endpoint) writeFrame(frame []byte, dst MAC) {
	if err := e.link.WriteTo(frame, dst); err != nil {
		e.sendFailed(err, dst)
		return
	}
	e.stats.framesOut.Add(1)
}

// writeFrames sends sealed frames to dst, in one system call when the link
// can batch.
func (e *Endpoint) writeFrames(frames [][]byte, dst MAC) {
	if len(frames) == 0 {
		return
	}
	if bw, ok := e.link.(BatchWriter); ok {
		if err := bw.WriteBatch(frames, dst); err != nil {
			e.sendFailed(err, dst)
			return
		}
		e.stats.framesOut.Add(uint64(len(frames)))
		return
	}
	for _, f := range frames {
		e.writeFrame(f, dst)
	}
}

func (e *Endpoint) sendFailed(err error, dst MAC) {
	if !errors.Is(err, ErrClosed) {
		e.log.Debug("sending frame", "to", dst, "err", err)
	}
	e.stats.sendErrors.Add(1)
}

// sendReset tells a sender whose frame named an epoch of ours that is not
// the current one that we do not know its session. Rate-limited per MAC.
func (e *Endpoint) sendReset(dst MAC, dstEpoch uint64) {
	if !e.rateOK(dst) {
		return
	}
	var b [MinPayload]byte
	e.sendFrame(b[:], Header{Type: FrameReset, DstEpoch: dstEpoch}, dst, 0, nil)
	e.stats.resetsSent.Add(1)
}

// sendRefused tells a sender, in the clear, that its frame was refused.
// It says nothing of why. Rate-limited per MAC.
func (e *Endpoint) sendRefused(dst MAC) {
	if dst.IsMulticast() || !e.rateOK(dst) {
		return
	}
	b := make([]byte, MinPayload)
	Header{Version: Version, Type: FrameRefused, SrcEpoch: e.epoch}.marshal(b)
	if err := e.link.WriteTo(b, dst); err == nil {
		e.stats.refusedSent.Add(1)
		e.stats.framesOut.Add(1)
	}
}

// rateOK allows one unsolicited answer (REFUSED, RESET) per MAC every
// MinRTO, so that a flood of bad frames cannot turn us into a flood.
func (e *Endpoint) rateOK(dst MAC) bool {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.refusedTo[dst]; ok && now.Sub(t) < e.cfg.MinRTO {
		return false
	}
	if len(e.refusedTo) > 4096 {
		clear(e.refusedTo)
	}
	e.refusedTo[dst] = now
	return true
}

func (e *Endpoint) gotRefused(src MAC) {
	e.stats.refusedReceived.Add(1)
	if p := e.existingPeer(src); p != nil {
		p.markRefused(time.Now())
	}
}

func (e *Endpoint) drop(r DropReason) { e.stats.drops[r].Add(1) }

// job is a request or one-way message for a handler.
type job struct {
	p *peer
	m message
	h Handler // nil: the method is unknown
}

// maxIdleWorkers is how many handler goroutines may wait for the next
// request. A waiting goroutine keeps the stack it grew, and handing it a
// request costs less than starting one.
const maxIdleWorkers = 16

// startServe runs the handler of m on an idle worker, or on a new one.
func (e *Endpoint) startServe(p *peer, m message, h Handler) {
	select {
	case e.jobs <- job{p, m, h}:
	default:
		e.wg.Add(1)
		go e.worker(job{p, m, h})
	}
}

func (e *Endpoint) worker(j job) {
	defer e.wg.Done()
	for {
		e.serve(j.p, j.m, j.h)
		j = job{}
		if e.idleWorkers.Add(1) > maxIdleWorkers {
			e.idleWorkers.Add(-1)
			return
		}
		select {
		case j = <-e.jobs:
			e.idleWorkers.Add(-1)
		case <-e.ctx.Done():
			e.idleWorkers.Add(-1)
			return
		}
	}
}

// serve runs h, the handler of a request or one-way message that arrived on
// p's stream, and queues the answer.
func (e *Endpoint) serve(p *peer, m message, h Handler) {
	out := e.run(p.mac, m, false, h)
	if m.kind == kindOneway {
		return
	}
	if out.size() > e.cfg.MaxMessage {
		out = message{kind: kindError, id: m.id, code: CodeTooLarge,
			payload: fmt.Appendf(nil, "response of %d bytes is over the limit of %d", out.size(), e.cfg.MaxMessage)}
	}
	p.enqueue(newOutMsg(out))
}

// run calls h, the handler of m's method (nil when there is none), and
// returns the answer message.
func (e *Endpoint) run(from MAC, m message, broadcast bool, h Handler) message {
	if h == nil {
		e.bufs.put(m.buf)
		return message{kind: kindError, id: m.id, code: CodeUnknownMethod, payload: fmt.Appendf(nil, "unknown method %q", m.method)}
	}
	resp, err := h(e.ctx, &Request{From: from, Method: m.method, Payload: m.payload, Broadcast: broadcast, Oneway: m.kind == kindOneway,
		buf: m.buf, bufs: &e.bufs})
	if err != nil {
		code := CodeHandler
		var br badRequestError
		if errors.As(err, &br) {
			code = CodeBadRequest
		}
		return message{kind: kindError, id: m.id, code: code, payload: []byte(err.Error())}
	}
	return message{kind: kindResponse, id: m.id, payload: resp}
}

// Discovery.

// Reply is one answer to a discovery.
type Reply struct {
	From    MAC
	Payload []byte
	Err     error // a *RemoteError when the peer's handler failed
}

type discovery struct {
	mu      sync.Mutex
	replies map[MAC]Reply
	done    bool
}

func (d *discovery) add(r Reply) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.done {
		if _, ok := d.replies[r.From]; !ok {
			d.replies[r.From] = r
		}
	}
}

func (d *discovery) finish() []Reply {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	out := make([]Reply, 0, len(d.replies))
	for _, r := range d.replies {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		return string(out[i].From[:]) < string(out[j].From[:])
	})
	return out
}

// discoverRepeats is how often Discover sends its broadcast.
const discoverRepeats = 5

// Discover broadcasts a request for method and collects the answers that
// arrive within window, one per peer, sorted by address. The broadcast is
// repeated three times within the window, since it is not acknowledged.
// Every peer with a handler for the method answers; a peer whose handler
// fails answers with an error in Reply.Err.
func (e *Endpoint) Discover(ctx context.Context, method string, payload []byte, window time.Duration) ([]Reply, error) {
	opErr := func(err error) error { return &OpError{Op: "discover", Method: method, Err: err} }
	m := message{kind: kindRequest, id: e.callID.Add(1), method: method, payload: payload}
	if method == "" || len(method) > MaxMethodLen {
		return nil, opErr(fmt.Errorf("method name %q must be 1 to %d bytes", method, MaxMethodLen))
	}
	if m.size() > e.link.MTU()-HeaderLen-TagLen {
		return nil, opErr(fmt.Errorf("%w: a discovery must fit one frame (%d bytes)", ErrMessageTooLarge, e.link.MTU()-HeaderLen-TagLen))
	}
	d := &discovery{replies: make(map[MAC]Reply)}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, opErr(ErrEndpointClosed)
	}
	e.discoveries[m.id] = d
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.discoveries, m.id)
		e.mu.Unlock()
	}()
	buf := make([]byte, e.link.MTU())
	end := time.NewTimer(window)
	defer end.Stop()
	tick := time.NewTicker(window / 6)
	defer tick.Stop()
	for sent := 0; ; {
		if sent < discoverRepeats {
			n := copy(buf[HeaderLen:], m.appendTo(nil))
			e.sendFrame(buf, Header{Type: FrameBcast}, Broadcast, n, nil)
			sent++
		}
		select {
		case <-ctx.Done():
			return d.finish(), opErr(ctx.Err())
		case <-e.ctx.Done():
			return d.finish(), opErr(ErrEndpointClosed)
		case <-end.C:
			return d.finish(), nil
		case <-tick.C:
		}
	}
}

func (e *Endpoint) onBcast(h Header, body []byte, src, dst MAC) {
	var m message
	if h.DstEpoch != 0 || m.UnmarshalBinary(body) != nil || m.kind != kindRequest {
		e.drop(DropMalformed)
		return
	}
	key := bcastKey{src, h.SrcEpoch, m.id}
	e.mu.Lock()
	cached, seen := e.bcastCache[key]
	if !seen {
		if len(e.bcastCache) >= 1024 {
			clear(e.bcastCache)
		}
		e.bcastCache[key] = nil // being answered
	}
	e.mu.Unlock()
	if seen {
		if cached != nil {
			e.sendDgram(src, h.SrcEpoch, cached)
		}
		return
	}
	m.payload = append([]byte(nil), m.payload...)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		out := e.run(src, m, true, e.handler(m.method).h)
		data := out.appendTo(nil)
		if len(data) > e.link.MTU()-HeaderLen-TagLen {
			out = message{kind: kindError, id: m.id, code: CodeTooLarge, payload: []byte("discovery answer does not fit one frame")}
			data = out.appendTo(nil)
		}
		e.mu.Lock()
		if _, ok := e.bcastCache[key]; ok {
			e.bcastCache[key] = data
		}
		e.mu.Unlock()
		e.sendDgram(src, h.SrcEpoch, data)
	}()
}

func (e *Endpoint) sendDgram(dst MAC, dstEpoch uint64, data []byte) {
	buf := make([]byte, HeaderLen+len(data)+TagLen)
	copy(buf[HeaderLen:], data)
	e.sendFrame(buf, Header{Type: FrameDgram, DstEpoch: dstEpoch}, dst, len(data), nil)
}

func (e *Endpoint) onDgram(h Header, body []byte, src MAC) {
	var m message
	if h.DstEpoch != e.epoch {
		e.drop(DropStaleEpoch)
		return
	}
	if m.UnmarshalBinary(body) != nil || (m.kind != kindResponse && m.kind != kindError) {
		e.drop(DropMalformed)
		return
	}
	e.mu.Lock()
	d := e.discoveries[m.id]
	e.mu.Unlock()
	if d == nil {
		return // late answer
	}
	r := Reply{From: src, Payload: append([]byte(nil), m.payload...)}
	if m.kind == kindError {
		r.Payload = nil
		r.Err = &RemoteError{Code: m.code, Message: string(m.payload)}
	}
	d.add(r)
}
