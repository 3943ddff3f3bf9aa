package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if c.Workers < 1 || c.Workers > 1024 {
		return fmt.Errorf("target: Workers %d: want 1 to 1024", c.Workers)
	}
	return nil
}

// Server answers AoE requests on one link for a set of exports.
type Server struct {
	link    proto.Link
	cfg     Config
	log     *slog.Logger
	exports []*Export
	byAddr  map[uint32]*Export
	spf     int // sectors per frame on this link

	free chan []byte
	work chan job

	malformed, wrongVersion, unknownTarget atomic.Uint64
}

type job struct {
	span span
	e    *Export
	src  proto.MAC
	buf  []byte
	f    aoe.Frame
}

func addr(shelf uint16, slot uint8) uint32 { return uint32(shelf)<<8 | uint32(slot) }

// NewServer builds a server for the exports on link. It does not read from
// the link until Serve.
func NewServer(link proto.Link, cfg Config, exports ...ExportConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(exports) == 0 {
		return nil, errors.New("target: no exports")
	}
	spf := aoe.SectorsPerFrame(link.MTU())
	if spf < 1 {
		return nil, fmt.Errorf("target: link MTU %d cannot carry one sector", link.MTU())
	}
	s := &Server{link: link, cfg: cfg, log: cfg.Logger, byAddr: map[uint32]*Export{}, spf: spf}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	buffers := 0
	for _, ec := range exports {
		e, err := newExport(ec)
		if err != nil {
			return nil, err
		}
		k := addr(ec.Shelf, ec.Slot)
		if _, dup := s.byAddr[k]; dup {
			return nil, fmt.Errorf("target: two exports at %d.%d", ec.Shelf, ec.Slot)
		}
		s.byAddr[k] = e
		s.exports = append(s.exports, e)
		buffers += ec.BufferCount
	}
	buffers += cfg.Workers
	s.free = make(chan []byte, buffers)
	for range buffers {
		s.free <- make([]byte, link.MTU())
	}
	s.work = make(chan job, buffers)
	if rb, ok := link.(interface{ SetReadBuffer(int) error }); ok {
		_ = rb.SetReadBuffer(buffers * (link.MTU() + 256))
	}
	return s, nil
}

// Exports returns the server's exports in the order given.
func (s *Server) Exports() []*Export { return s.exports }

// SectorsPerFrame is the most sectors one request may carry on this link.
func (s *Server) SectorsPerFrame() int { return s.spf }

// Malformed counts frames dropped because they did not decode.
func (s *Server) Malformed() uint64 { return s.malformed.Load() }

// Serve announces every export with a broadcast Query Config response, then
// answers requests until ctx is done or the link fails. It returns nil when
// ctx ends it.
func (s *Server) Serve(ctx context.Context) error {
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
				s.doATA(j)
			}
		}()
	}
	for _, e := range s.exports {
		s.announce(e)
	}
	if br, ok := s.link.(proto.BatchReader); ok {
		return s.readBatches(ctx, br)
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
		kept, inline := s.handle(buf, n, src)
		if inline != nil {
			s.doATA(*inline)
		} else if !kept {
			s.free <- buf
		}
	}
}

// maxBatch is the most frames the reader takes from the link per call.
const maxBatch = 32

// readBatches is the reader loop over a link that reads many frames per
// system call: it takes as many free buffers as are at hand (up to
// maxBatch), reads a batch, handles every frame, and sends the replies it
// produced itself in batches too.
func (s *Server) readBatches(ctx context.Context, br proto.BatchReader) error {
	frames := make([]proto.Frame, maxBatch)
	var inline []job
	for {
		n := 0
		select {
		case b := <-s.free:
			frames[0].Payload = b
			n = 1
		case <-ctx.Done():
			return nil
		}
	more:
		for n < maxBatch {
			select {
			case b := <-s.free:
				frames[n].Payload = b
				n++
			default:
				break more
			}
		}
		got, err := br.ReadBatch(frames[:n])
		// ReadBatch may move buffers between slots; each slot still holds
		// one whole buffer.
		for i := range frames[:n] {
			frames[i].Payload = frames[i].Payload[:cap(frames[i].Payload)]
		}
		if err != nil {
			for i := range frames[:n] {
				s.free <- frames[i].Payload
			}
			if ctx.Err() != nil {
				return nil
			}
			if proto.IsTimeout(err) {
				continue
			}
			return fmt.Errorf("target: reading link: %w", err)
		}
		inline = inline[:0]
		for i := range frames[:got] {
			f := &frames[i]
			kept, j := s.handle(f.Payload, len(f.Payload), f.Src)
			switch {
			case j != nil:
				inline = append(inline, *j)
			case !kept:
				s.free <- f.Payload
			}
		}
		for i := got; i < n; i++ {
			s.free <- frames[i].Payload
		}
		s.replyInline(inline)
	}
}

// replyInline runs the jobs the reader serves itself and sends their
// replies, one batch per destination when the link can.
func (s *Server) replyInline(jobs []job) {
	if len(jobs) == 0 {
		return
	}
	bw, batch := s.link.(proto.BatchWriter)
	var payloads [][]byte
	for i := 0; i < len(jobs); {
		dst := jobs[i].src
		payloads = payloads[:0]
		k := i
		for ; k < len(jobs) && jobs[k].src == dst; k++ {
			if m, ok := s.execATA(&jobs[k]); ok {
				payloads = append(payloads, jobs[k].buf[:m])
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

// handle processes one frame. It returns true when it kept buf (handed to
// a worker, or queued behind an overlapping write), or a job the caller must
// run itself (a page-cache read) with buf.
func (s *Server) handle(buf []byte, n int, src proto.MAC) (bool, *job) {
	var f aoe.Frame
	if err := f.UnmarshalBinary(buf[:n]); err != nil {
		s.malformed.Add(1)
		return false, nil
	}
	if f.IsResponse() || src.IsMulticast() {
		return false, nil
	}
	broadcast := f.Shelf == aoe.BroadcastShelf || f.Slot == aoe.BroadcastSlot
	var targets []*Export
	if e := s.byAddr[addr(f.Shelf, f.Slot)]; e != nil {
		targets = []*Export{e}
	} else if broadcast {
		for _, e := range s.exports {
			if (f.Shelf == aoe.BroadcastShelf || f.Shelf == e.cfg.Shelf) && (f.Slot == aoe.BroadcastSlot || f.Slot == e.cfg.Slot) {
				targets = append(targets, e)
			}
		}
	} else {
		s.unknownTarget.Add(1)
		return false, nil
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
			j := job{e: e, src: src, buf: buf, f: f}
			if e.order.admit(&j) {
				if e.inline && (isRead(&j.f) || e.cfg.WriteBack && isWrite(&j.f)) {
					return true, &j
				}
				s.work <- j
			}
			return true, nil
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
		default:
			if !broadcast {
				s.fail(e, &rep, f, aoe.ErrUnrecognizedCommand, src)
			}
		}
	}
	return false, nil
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
	rep.ATA, rep.Config, rep.MACMask, rep.Reserve = req.ATA, req.Config, req.MACMask, req.Reserve
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

// doATA runs one ATA request on a worker (or the reader), reusing the
// request buffer for the reply.
func (s *Server) doATA(j job) {
	if m, ok := s.execATA(&j); ok {
		if err := s.link.WriteTo(j.buf[:m], j.src); err != nil {
			s.log.Debug("aoe target: send ATA reply", "dst", j.src, "err", err)
		}
	}
	s.finishATA(&j)
}

// execATA executes j and marshals its reply into j.buf, returning its length.
func (s *Server) execATA(j *job) (int, bool) {
	data := j.buf[aoe.HeaderLen+aoe.ATAHeaderLen:]
	rep, n := j.e.ata(j.f.ATA, data)
	f := aoe.Frame{Header: j.f.Header, ATA: rep, Data: data[:n]}
	f.Flags = aoe.FlagResponse
	f.Shelf, f.Slot = j.e.cfg.Shelf, j.e.cfg.Slot
	m, err := f.MarshalTo(j.buf)
	if err != nil {
		s.log.Warn("aoe target: marshal ATA reply", "err", err)
		return 0, false
	}
	return m, true
}

// finishATA frees j's buffer and starts the requests that waited for it.
func (s *Server) finishATA(j *job) {
	s.free <- j.buf
	for _, r := range j.e.order.done(j) {
		s.work <- r
	}
}
