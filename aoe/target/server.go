package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/proto"
)

// Config configures a [Server].
type Config struct {
	// Workers is how many ATA commands run at once (positioned I/O in
	// parallel). Default 32, so a queue depth of 32 reaches the disk.
	Workers int
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the server defaults.
func DefaultConfig() Config { return Config{Workers: 32} }

// Procs is the GOMAXPROCS a process serving with c wants when its exports
// wait on the disk (O_DIRECT, or writes acknowledged once durable): a P
// for each worker, the reader, its standbys and one more. A goroutine
// blocked in a system call keeps its P until the runtime's monitor takes
// it back, 20 µs or more later, so with fewer Ps than disk waits the
// workers and the reader queue behind the monitor: with GOMAXPROCS 2 an
// O_DIRECT export served 16k 4 KiB reads/s at queue depth 32 where the
// disk does 31k. An idle P holds no thread; the price is that the garbage
// collector, which works with a quarter of the Ps, may take more of the
// CPUs while it marks.
func (c Config) Procs() int { return c.Workers + 1 + standbys + 1 }

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if c.Workers < 1 || c.Workers > 1024 {
		return fmt.Errorf("target: Workers %d: want 1 to 1024", c.Workers)
	}
	return nil
}

// Server answers AoE requests on one link for a set of exports, which may
// change while it serves ([Server.AddExport], [Server.RemoveExport]).
type Server struct {
	link    proto.Link
	cfg     Config
	log     *slog.Logger
	exports atomic.Pointer[table] // replaced whole on every change
	addMu   sync.Mutex            // serialises changes of exports
	spf     int                   // sectors per frame on this link
	serving atomic.Bool

	free    chan []byte
	work    chan job
	runBufs alignedPool // for the backend calls of joined requests
	buffers int         // allocated so far; guarded by addMu

	malformed, wrongVersion, unknownTarget atomic.Uint64
}

// table is an immutable set of exports, looked up without locks.
type table struct {
	list   []*Export
	byAddr map[uint32]*Export
}

func (t *table) with(e *Export) *table {
	n := &table{list: append(slices.Clone(t.list), e), byAddr: maps.Clone(t.byAddr)}
	n.byAddr[addr(e.cfg.Shelf, e.cfg.Slot)] = e
	return n
}

func (t *table) without(e *Export) *table {
	n := &table{list: slices.DeleteFunc(slices.Clone(t.list), func(x *Export) bool { return x == e }), byAddr: maps.Clone(t.byAddr)}
	delete(n.byAddr, addr(e.cfg.Shelf, e.cfg.Slot))
	return n
}

type job struct {
	span  span
	e     *Export
	src   proto.MAC
	buf   []byte
	f     aoe.Frame
	epoch uint64 // the export's epoch when admitted (epoch exports)
	gated bool   // counted in the export's fence
	run   []job  // jobs that go on from this one's last sector (see dispatchRuns)
	reply int    // length of the reply marshalled into buf; 0: none
}

func addr(shelf uint16, slot uint8) uint32 { return uint32(shelf)<<8 | uint32(slot) }

// maxBuffers bounds the frame buffers a server allocates, however many
// exports it holds: beyond it, exports share the buffers they have.
const maxBuffers = 8192

// ErrExportExists is wrapped by AddExport for a shelf.slot already served.
var ErrExportExists = errors.New("target: export address in use")

// ErrNoExport is wrapped by RemoveExport for a shelf.slot not served.
var ErrNoExport = errors.New("target: no such export")

// NewServer builds a server for the exports on link (none is fine: add
// them later with AddExport). It does not read from the link until Serve.
func NewServer(link proto.Link, cfg Config, exports ...ExportConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spf := aoe.SectorsPerFrame(link.MTU())
	if spf < 1 {
		return nil, fmt.Errorf("target: link MTU %d cannot carry one sector", link.MTU())
	}
	s := &Server{link: link, cfg: cfg, log: cfg.Logger, spf: spf}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	t := &table{byAddr: map[uint32]*Export{}}
	buffers := cfg.Workers
	for _, ec := range exports {
		e, err := newExport(ec)
		if err != nil {
			return nil, err
		}
		if _, dup := t.byAddr[addr(ec.Shelf, ec.Slot)]; dup {
			return nil, fmt.Errorf("target: two exports at %d.%d: %w", ec.Shelf, ec.Slot, ErrExportExists)
		}
		t = t.with(e)
		buffers += ec.BufferCount
	}
	s.exports.Store(t)
	buffers = min(buffers, maxBuffers)
	s.free = make(chan []byte, maxBuffers)
	s.work = make(chan job, maxBuffers)
	s.grow(buffers)
	return s, nil
}

// grow adds frame buffers until there are n (at most maxBuffers). It runs
// under addMu, or before the server is shared.
func (s *Server) grow(n int) {
	n = min(n, maxBuffers)
	if n <= s.buffers {
		return
	}
	for ; s.buffers < n; s.buffers++ {
		s.free <- make([]byte, s.link.MTU())
	}
	if rb, ok := s.link.(interface{ SetReadBuffer(int) error }); ok {
		_ = rb.SetReadBuffer(n * (s.link.MTU() + 256))
	}
}

// AddExport starts serving cfg, also while Serve runs: the export answers
// at once and a Query Config answer announcing it is broadcast (when the
// server is serving; Serve announces it otherwise). An address already
// served is refused with an error wrapping ErrExportExists.
func (s *Server) AddExport(cfg ExportConfig) (*Export, error) {
	e, err := newExport(cfg)
	if err != nil {
		return nil, err
	}
	s.addMu.Lock()
	t := s.exports.Load()
	if _, dup := t.byAddr[addr(cfg.Shelf, cfg.Slot)]; dup {
		s.addMu.Unlock()
		return nil, fmt.Errorf("target: add export %d.%d: %w", cfg.Shelf, cfg.Slot, ErrExportExists)
	}
	s.grow(s.buffers + cfg.BufferCount)
	s.exports.Store(t.with(e))
	s.addMu.Unlock()
	if s.serving.Load() {
		s.announce(e)
	}
	return e, nil
}

// RemoveExport stops serving shelf.slot: frames for it get no answer from
// then on, and it returns once the requests in flight have finished. The
// caller owns the backend and may close it then. An address not served
// is an error wrapping ErrNoExport.
func (s *Server) RemoveExport(shelf uint16, slot uint8) error {
	s.addMu.Lock()
	t := s.exports.Load()
	e := t.byAddr[addr(shelf, slot)]
	if e == nil {
		s.addMu.Unlock()
		return fmt.Errorf("target: remove export %d.%d: %w", shelf, slot, ErrNoExport)
	}
	s.exports.Store(t.without(e))
	s.addMu.Unlock()
	e.drain()
	return nil
}

// Exports returns the server's exports in the order they were added.
func (s *Server) Exports() []*Export { return slices.Clone(s.exports.Load().list) }

// Export returns the export at shelf.slot, or nil.
func (s *Server) Export(shelf uint16, slot uint8) *Export {
	return s.exports.Load().byAddr[addr(shelf, slot)]
}

// SectorsPerFrame is the most sectors one request may carry on this link.
func (s *Server) SectorsPerFrame() int { return s.spf }

// Malformed counts frames dropped because they did not decode.
func (s *Server) Malformed() uint64 { return s.malformed.Load() }

// Serve announces every export with a broadcast Query Config response, then
// answers requests until ctx is done or the link fails. It returns nil when
// ctx ends it.
func (s *Server) Serve(ctx context.Context) error {
	// A deadline left by an earlier Serve on the same link is cleared.
	_ = s.link.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = s.link.SetReadDeadline(time.Now()) })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(s.work)
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range s.work {
				s.do(j)
			}
		}()
	}
	s.serving.Store(true)
	defer s.serving.Store(false)
	for _, e := range s.exports.Load().list {
		s.announce(e)
	}
	if br, ok := s.link.(proto.BatchReader); ok {
		return s.serveBatches(ctx, br)
	}
	for {
		var buf []byte
		select {
		case buf = <-s.free:
		case <-ctx.Done():
			return nil
		}
		n, src, _, err := s.link.ReadFrom(buf)
		if err != nil {
			s.free <- buf
			if ctx.Err() != nil {
				return nil
			}
			if proto.IsTimeout(err) {
				continue
			}
			return fmt.Errorf("target: reading link: %w", err)
		}
		switch j, fate := s.handle(buf, n, src); fate {
		case serveHere:
			s.doATA(j)
		case toDisk:
			s.dispatch(j)
		case answered:
			s.free <- buf
		}
	}
}

// replyInline runs the jobs the reader serves itself and sends their
// replies.
func (s *Server) replyInline(jobs []job) {
	if len(jobs) == 0 {
		return
	}
	for i := range jobs {
		jobs[i].reply = s.execATA(&jobs[i])
	}
	s.reply(jobs)
}

// reply sends each job's reply, j.buf[:j.reply] (none when j.reply is 0),
// one batch per run of jobs with the same source when the link can, then
// finishes the jobs.
func (s *Server) reply(jobs []job) {
	bw, batch := s.link.(proto.BatchWriter)
	var payloads [][]byte
	for i := 0; i < len(jobs); {
		dst := jobs[i].src
		payloads = payloads[:0]
		k := i
		for ; k < len(jobs) && jobs[k].src == dst; k++ {
			if jobs[k].reply > 0 {
				payloads = append(payloads, jobs[k].buf[:jobs[k].reply])
			}
		}
		if batch && len(payloads) > 1 {
			if err := bw.WriteBatch(payloads, dst); err != nil {
				s.log.Debug("aoe target: send ATA replies", "dst", dst, "err", err)
			}
		} else {
			for _, p := range payloads {
				if err := s.link.WriteTo(p, dst); err != nil {
					s.log.Debug("aoe target: send ATA reply", "dst", dst, "err", err)
				}
			}
		}
		for ; i < k; i++ {
			s.finishATA(&jobs[i])
		}
	}
}

// announce broadcasts an unsolicited Query Config response for e.
func (s *Server) announce(e *Export) {
	rep := aoe.Frame{Header: aoe.Header{Version: aoe.Version, Flags: aoe.FlagResponse,
		Shelf: e.cfg.Shelf, Slot: e.cfg.Slot, Command: aoe.CmdConfig}}
	e.configReply(&aoe.ConfigArg{Cmd: aoe.ConfigRead}, proto.MAC{}, s.spf, &rep)
	s.send(&rep, proto.Broadcast)
}

// fate is what handle did with a frame.
type fate uint8

const (
	answered  fate = iota // answered or dropped: the buffer is free again
	kept                  // the buffer is kept (a request queued behind an overlapping write, or served on its own goroutine)
	serveHere             // the caller serves the returned job itself (page cache)
	toDisk                // the returned job waits on the disk: the caller dispatches it to the workers
)

// handle processes one frame. The job it returns, with serveHere or
// toDisk, holds buf.
func (s *Server) handle(buf []byte, n int, src proto.MAC) (j job, fate fate) {
	var f aoe.Frame
	if err := f.UnmarshalBinary(buf[:n]); err != nil {
		s.malformed.Add(1)
		return job{}, answered
	}
	if f.IsResponse() || src.IsMulticast() {
		return job{}, answered
	}
	broadcast := f.Shelf == aoe.BroadcastShelf || f.Slot == aoe.BroadcastSlot
	t := s.exports.Load()
	var one [1]*Export
	var targets []*Export
	if e := t.byAddr[addr(f.Shelf, f.Slot)]; e != nil {
		one[0] = e
		targets = one[:]
	} else if broadcast {
		for _, e := range t.list {
			if (f.Shelf == aoe.BroadcastShelf || f.Shelf == e.cfg.Shelf) && (f.Slot == aoe.BroadcastSlot || f.Slot == e.cfg.Slot) {
				targets = append(targets, e)
			}
		}
	} else {
		s.unknownTarget.Add(1)
		return job{}, answered
	}
	for _, e := range targets {
		if !e.allowed(src) {
			e.masked.Add(1)
			continue
		}
		rep := aoe.Frame{Header: f.Header}
		rep.Flags = aoe.FlagResponse
		rep.Error = 0
		rep.Shelf, rep.Slot = e.cfg.Shelf, e.cfg.Slot
		if f.Version != aoe.Version {
			s.wrongVersion.Add(1)
			if !broadcast {
				s.fail(e, &rep, f, aoe.ErrUnsupportedVersion, src)
			}
			continue
		}
		switch f.Command {
		case aoe.CmdATA:
			if broadcast {
				continue
			}
			if !e.mayChange(src) {
				e.conflicts.Add(1)
				s.fail(e, &rep, f, aoe.ErrTargetReserved, src)
				continue
			}
			if code := s.checkATA(&f); code != 0 {
				s.fail(e, &rep, f, code, src)
				continue
			}
			if !e.ref() {
				continue // removed meanwhile
			}
			j = job{e: e, src: src, buf: buf, f: f}
			if e.fence.on && gated(f.ATA.CmdStatus) {
				ep, code := e.fence.admit(src)
				if code != 0 {
					e.unref()
					e.epochRefusals.Add(1)
					s.fail(e, &rep, f, code, src)
					continue
				}
				j.epoch, j.gated = ep, true
			}
			if !e.order.admit(&j) {
				return job{}, kept
			}
			if e.inline && (isRead(&j.f) || e.cfg.WriteBack && isWrite(&j.f)) {
				// From the page cache: the reader serves it. A request
				// that waits for the disk always goes to a worker, even
				// alone: a slow disk must never hold up the reader and
				// with it every other export.
				return j, serveHere
			}
			return j, toDisk
		case aoe.CmdConfig:
			if e.configReply(&f.Config, src, s.spf, &rep) {
				s.countErr(e, &rep)
				s.send(&rep, src)
			}
		case aoe.CmdMACMask:
			e.maskReply(&f.MACMask, src, &rep)
			s.countErr(e, &rep)
			s.send(&rep, src)
		case aoe.CmdReserve:
			e.reserveReply(&f.Reserve, src, &rep)
			s.countErr(e, &rep)
			s.send(&rep, src)
		case aoe.CmdEpoch:
			if broadcast {
				continue
			}
			if f.Epoch.Op == aoe.EpochRegister && !e.mayChange(src) {
				e.conflicts.Add(1)
				s.fail(e, &rep, f, aoe.ErrTargetReserved, src)
				continue
			}
			if f.Epoch.Op != aoe.EpochRead && f.Epoch.Op != aoe.EpochRegister {
				s.fail(e, &rep, f, aoe.ErrBadArgument, src)
				continue
			}
			if !e.ref() {
				continue
			}
			// A registration may raise the epoch, which calls OnEpoch
			// and waits for older requests: never on the reader.
			go s.epoch(e, src, rep.Header, f.Epoch)
		default:
			if !broadcast {
				s.fail(e, &rep, f, aoe.ErrUnrecognizedCommand, src)
			}
		}
	}
	return job{}, answered
}

// epoch answers an epoch command; it runs on its own goroutine and holds
// a reference to e.
func (s *Server) epoch(e *Export, src proto.MAC, h aoe.Header, req aoe.EpochArg) {
	defer e.unref()
	rep := aoe.Frame{Header: h, Epoch: e.fence.register(src, req)}
	s.send(&rep, src)
}

func isRead(f *aoe.Frame) bool {
	return f.ATA.CmdStatus == 0x20 || f.ATA.CmdStatus == 0x24
}

func isWrite(f *aoe.Frame) bool {
	return f.ATA.CmdStatus == 0x30 || f.ATA.CmdStatus == 0x34
}

// checkATA returns the AoE error for an ATA request whose sector count the
// frame cannot carry, or 0.
func (s *Server) checkATA(f *aoe.Frame) aoe.ErrorCode {
	switch f.ATA.CmdStatus {
	case 0x20, 0x24, 0x30, 0x34:
	default:
		return 0
	}
	if int(f.ATA.SectorCount) > s.spf {
		return aoe.ErrBadArgument
	}
	if f.ATA.Flags&aoe.ATAFlagWrite != 0 || f.ATA.CmdStatus == 0x30 || f.ATA.CmdStatus == 0x34 {
		if len(f.Data) < int(f.ATA.SectorCount)*aoe.SectorSize {
			return aoe.ErrBadArgument
		}
	}
	return 0
}

func (s *Server) countErr(e *Export, rep *aoe.Frame) {
	if rep.IsError() {
		e.aoeErrors.Add(1)
	}
}

// fail answers req with an AoE error, echoing its argument.
func (s *Server) fail(e *Export, rep *aoe.Frame, req aoe.Frame, code aoe.ErrorCode, dst proto.MAC) {
	e.aoeErrors.Add(1)
	rep.Flags |= aoe.FlagError
	rep.Error = code
	rep.ATA, rep.Config, rep.MACMask, rep.Reserve, rep.Epoch = req.ATA, req.Config, req.MACMask, req.Reserve, req.Epoch
	rep.Data = nil
	if rep.Command >= aoe.CmdVendorLo || rep.Command > aoe.CmdReserve {
		rep.Command = req.Command
	}
	s.send(rep, dst)
}

func (s *Server) send(f *aoe.Frame, dst proto.MAC) {
	b := make([]byte, max(f.PaddedLen(), proto.MinPayload))
	n, err := f.MarshalTo(b)
	if err != nil {
		s.log.Warn("aoe target: marshal reply", "err", err)
		return
	}
	if err := s.link.WriteTo(b[:n], dst); err != nil {
		s.log.Debug("aoe target: send reply", "dst", dst, "err", err)
	}
}

// do serves a disk job: one request, or a run of them.
func (s *Server) do(j job) {
	if j.run != nil {
		s.doRun(j)
	} else {
		s.doATA(j)
	}
}

// doATA runs one ATA request on a worker (or the reader), reusing the
// request buffer for the reply.
func (s *Server) doATA(j job) {
	if m := s.execATA(&j); m > 0 {
		if err := s.link.WriteTo(j.buf[:m], j.src); err != nil {
			s.log.Debug("aoe target: send ATA reply", "dst", j.src, "err", err)
		}
	}
	s.finishATA(&j)
}

// execATA executes j and marshals its reply into j.buf, returning its
// length (0: no reply).
func (s *Server) execATA(j *job) int {
	f := aoe.Frame{Header: j.f.Header}
	f.Flags = aoe.FlagResponse
	f.Shelf, f.Slot = j.e.cfg.Shelf, j.e.cfg.Slot
	if j.gated && !j.e.fence.still(j.src, j.epoch) {
		// The epoch rose while the request waited: it is stale now.
		j.e.epochRefusals.Add(1)
		j.e.aoeErrors.Add(1)
		f.Flags |= aoe.FlagError
		f.Error, f.ATA = aoe.ErrEpochStale, j.f.ATA
	} else {
		data := j.buf[aoe.HeaderLen+aoe.ATAHeaderLen:]
		rep, n, nospace := j.e.ata(j.f.ATA, data)
		f.ATA, f.Data = rep, data[:n]
		if nospace {
			j.e.noSpace.Add(1)
			if j.e.fence.registered(j.src) {
				// The source speaks mvstack's vendor errors.
				j.e.aoeErrors.Add(1)
				f.Flags |= aoe.FlagError
				f.Error, f.ATA, f.Data = aoe.ErrNoSpace, j.f.ATA, nil
			}
		}
	}
	return s.marshalReply(&f, j.buf)
}

// marshalReply marshals f into buf, returning its length (0 when it does
// not fit, which a request buffer always does).
func (s *Server) marshalReply(f *aoe.Frame, buf []byte) int {
	m, err := f.MarshalTo(buf)
	if err != nil {
		s.log.Warn("aoe target: marshal ATA reply", "err", err)
		return 0
	}
	return m
}

// dispatch hands j to the workers.
func (s *Server) dispatch(j job) { s.work <- j }

// finishATA frees j's buffer and starts the requests that waited for it.
func (s *Server) finishATA(j *job) {
	s.free <- j.buf
	for _, r := range j.e.order.done(j) {
		s.dispatch(r)
	}
	if j.gated {
		j.e.fence.leave(j.epoch)
	}
	j.e.unref()
}
