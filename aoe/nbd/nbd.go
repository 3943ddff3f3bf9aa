package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
)

// Device is what an export serves.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Flush() error
}

// Trimmer is implemented by devices that can discard a range.
type Trimmer interface {
	Trim(off, length int64) error
}

// Export is one named device.
type Export struct {
	Name        string
	Description string
	Device      Device
	ReadOnly    bool
}

// Config configures a [Server].
type Config struct {
	// Exports lists the exports; the first also answers the empty name.
	Exports []Export
	// MaxInFlight bounds the requests one connection runs at once.
	MaxInFlight int
	// MaxPayload is the largest READ or WRITE accepted, in bytes.
	MaxPayload int
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 64 requests in flight, 32 MiB payloads.
func DefaultConfig() Config { return Config{MaxInFlight: 64, MaxPayload: 32 << 20} }

// Validate reports the first field out of range.
func (c Config) Validate() error {
	if len(c.Exports) == 0 {
		return errors.New("nbd: Exports is empty: want at least one export")
	}
	seen := map[string]bool{}
	for i, e := range c.Exports {
		if e.Device == nil {
			return fmt.Errorf("nbd: Exports[%d] (%q) has no Device", i, e.Name)
		}
		if len(e.Name) > 4096 {
			return fmt.Errorf("nbd: Exports[%d] name is %d bytes, want at most 4096", i, len(e.Name))
		}
		if seen[e.Name] {
			return fmt.Errorf("nbd: export name %q appears twice", e.Name)
		}
		seen[e.Name] = true
	}
	if c.MaxInFlight < 1 {
		return fmt.Errorf("nbd: MaxInFlight %d: want at least 1", c.MaxInFlight)
	}
	if c.MaxPayload < 4096 || c.MaxPayload > 1<<30 {
		return fmt.Errorf("nbd: MaxPayload %d: want 4096 to 1 GiB", c.MaxPayload)
	}
	return nil
}

// Protocol constants (NBD proto.md).
const (
	magicNBD        = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt        = 0x49484156454f5054 // "IHAVEOPT"
	magicOptReply   = 0x3e889045565a9
	magicRequest    = 0x25609513
	magicReply      = 0x67446698
	flagFixed       = 1 << 0
	flagNoZeroes    = 1 << 1
	clientFixed     = 1 << 0
	clientNoZeroes  = 1 << 1
	optExportName   = 1
	optAbort        = 2
	optList         = 3
	optInfo         = 6
	optGo           = 7
	repAck          = 1
	repServer       = 2
	repInfo         = 3
	repErrUnsup     = 1<<31 + 1
	repErrInvalid   = 1<<31 + 3
	repErrUnknown   = 1<<31 + 6
	infoExport      = 0
	infoName        = 1
	infoDescription = 2
	infoBlockSize   = 3

	tflagHasFlags    = 1 << 0
	tflagReadOnly    = 1 << 1
	tflagFlush       = 1 << 2
	tflagFUA         = 1 << 3
	tflagTrim        = 1 << 5
	tflagWriteZeroes = 1 << 6
	tflagMultiConn   = 1 << 8

	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdTrim        = 4
	cmdWriteZeroes = 6
	cmdFlagFUA     = 1 << 0

	errPerm      = 1
	errIO        = 5
	errInval     = 22
	errNoSpc     = 28
	errOverflow  = 75
	maxOptionLen = 64 << 10
)

// Server serves exports to NBD clients.
type Server struct {
	cfg Config
	log *slog.Logger
}

// NewServer validates cfg and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Serve accepts connections on ln until ctx ends (then it closes ln) and
// serves each on its own goroutine. It returns nil when ctx ended it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("nbd: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.ServeConn(ctx, c); err != nil {
				s.log.Info("nbd: connection ended", "remote", c.RemoteAddr(), "err", err)
			}
		}()
	}
}

// ServeConn runs the handshake and the transmission phase on c, and closes c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	exp, err := s.handshake(c)
	if err != nil || exp == nil {
		return err
	}
	return s.transmit(c, exp)
}

func (s *Server) find(name string) *Export {
	if name == "" {
		return &s.cfg.Exports[0]
	}
	for i := range s.cfg.Exports {
		if s.cfg.Exports[i].Name == name {
			return &s.cfg.Exports[i]
		}
	}
	return nil
}

func (s *Server) tflags(e *Export) uint16 {
	f := uint16(tflagHasFlags | tflagFlush | tflagFUA | tflagTrim | tflagWriteZeroes | tflagMultiConn)
	if e.ReadOnly {
		f |= tflagReadOnly
	}
	return f
}

// handshake negotiates an export. It returns nil without error when the
// client aborted.
func (s *Server) handshake(c net.Conn) (*Export, error) {
	var hello [18]byte
	binary.BigEndian.PutUint64(hello[0:], magicNBD)
	binary.BigEndian.PutUint64(hello[8:], magicOpt)
	binary.BigEndian.PutUint16(hello[16:], flagFixed|flagNoZeroes)
	if _, err := c.Write(hello[:]); err != nil {
		return nil, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c, cf[:]); err != nil {
		return nil, fmt.Errorf("nbd: reading client flags: %w", err)
	}
	clientFlags := binary.BigEndian.Uint32(cf[:])
	if clientFlags&clientFixed == 0 {
		return nil, errors.New("nbd: client does not speak fixed newstyle")
	}
	if clientFlags&^uint32(clientFixed|clientNoZeroes) != 0 {
		return nil, fmt.Errorf("nbd: unknown client flags %#x", clientFlags)
	}
	noZeroes := clientFlags&clientNoZeroes != 0
	for {
		var h [16]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return nil, fmt.Errorf("nbd: reading option: %w", err)
		}
		if binary.BigEndian.Uint64(h[0:]) != magicOpt {
			return nil, errors.New("nbd: option without IHAVEOPT magic")
		}
		opt := binary.BigEndian.Uint32(h[8:])
		n := binary.BigEndian.Uint32(h[12:])
		if n > maxOptionLen {
			return nil, fmt.Errorf("nbd: option %d of %d bytes is too big", opt, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c, data); err != nil {
			return nil, fmt.Errorf("nbd: reading option data: %w", err)
		}
		switch opt {
		case optExportName:
			e := s.find(string(data))
			if e == nil {
				return nil, fmt.Errorf("nbd: client asked for unknown export %q", data)
			}
			b := make([]byte, 10, 10+124)
			binary.BigEndian.PutUint64(b[0:], uint64(e.Device.Size()))
			binary.BigEndian.PutUint16(b[8:], s.tflags(e))
			if !noZeroes {
				b = append(b, make([]byte, 124)...)
			}
			_, err := c.Write(b)
			return e, err
		case optAbort:
			_ = optReply(c, opt, repAck, nil)
			return nil, nil
		case optList:
			if n != 0 {
				if err := optReply(c, opt, repErrInvalid, []byte("LIST takes no data")); err != nil {
					return nil, err
				}
				continue
			}
			for _, e := range s.cfg.Exports {
				b := binary.BigEndian.AppendUint32(nil, uint32(len(e.Name)))
				b = append(b, e.Name...)
				b = append(b, e.Description...)
				if err := optReply(c, opt, repServer, b); err != nil {
					return nil, err
				}
			}
			if err := optReply(c, opt, repAck, nil); err != nil {
				return nil, err
			}
		case optInfo, optGo:
			e, err := s.info(c, opt, data)
			if err != nil {
				return nil, err
			}
			if e != nil && opt == optGo {
				return e, nil
			}
		default:
			if err := optReply(c, opt, repErrUnsup, nil); err != nil {
				return nil, err
			}
		}
	}
}

// info answers NBD_OPT_INFO and NBD_OPT_GO. It returns the export when the
// client may use it.
func (s *Server) info(c net.Conn, opt uint32, data []byte) (*Export, error) {
	if len(data) < 6 {
		return nil, optReply(c, opt, repErrInvalid, []byte("short INFO/GO request"))
	}
	nl := int(binary.BigEndian.Uint32(data))
	if len(data) < 4+nl+2 {
		return nil, optReply(c, opt, repErrInvalid, []byte("INFO/GO name longer than the request"))
	}
	name := string(data[4 : 4+nl])
	nreq := int(binary.BigEndian.Uint16(data[4+nl:]))
	if len(data) != 4+nl+2+2*nreq {
		return nil, optReply(c, opt, repErrInvalid, []byte("INFO/GO request length mismatch"))
	}
	e := s.find(name)
	if e == nil {
		return nil, optReply(c, opt, repErrUnknown, []byte("no such export: "+name))
	}
	b := binary.BigEndian.AppendUint16(nil, infoExport)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Device.Size()))
	b = binary.BigEndian.AppendUint16(b, s.tflags(e))
	if err := optReply(c, opt, repInfo, b); err != nil {
		return nil, err
	}
	for i := 0; i < nreq; i++ {
		switch binary.BigEndian.Uint16(data[4+nl+2+2*i:]) {
		case infoName:
			b := binary.BigEndian.AppendUint16(nil, infoName)
			if err := optReply(c, opt, repInfo, append(b, e.Name...)); err != nil {
				return nil, err
			}
		case infoDescription:
			b := binary.BigEndian.AppendUint16(nil, infoDescription)
			if err := optReply(c, opt, repInfo, append(b, e.Description...)); err != nil {
				return nil, err
			}
		case infoBlockSize:
			b := binary.BigEndian.AppendUint16(nil, infoBlockSize)
			b = binary.BigEndian.AppendUint32(b, 1)
			b = binary.BigEndian.AppendUint32(b, 4096)
			b = binary.BigEndian.AppendUint32(b, uint32(s.cfg.MaxPayload))
			if err := optReply(c, opt, repInfo, b); err != nil {
				return nil, err
			}
		}
	}
	return e, optReply(c, opt, repAck, nil)
}

func optReply(c net.Conn, opt, typ uint32, data []byte) error {
	b := make([]byte, 20, 20+len(data))
	binary.BigEndian.PutUint64(b[0:], magicOptReply)
	binary.BigEndian.PutUint32(b[8:], opt)
	binary.BigEndian.PutUint32(b[12:], typ)
	binary.BigEndian.PutUint32(b[16:], uint32(len(data)))
	_, err := c.Write(append(b, data...))
	return err
}

// request is one transmission-phase request.
type request struct {
	flags  uint16
	typ    uint16
	cookie uint64
	off    uint64
	length uint32
	data   []byte
}

// transmit serves requests until DISC, EOF or an error.
func (s *Server) transmit(c net.Conn, e *Export) error {
	var (
		wmu sync.Mutex
		wg  sync.WaitGroup
	)
	defer wg.Wait()
	sem := make(chan struct{}, s.cfg.MaxInFlight)
	reply := func(cookie uint64, errno uint32, data []byte) {
		var h [16]byte
		binary.BigEndian.PutUint32(h[0:], magicReply)
		binary.BigEndian.PutUint32(h[4:], errno)
		binary.BigEndian.PutUint64(h[8:], cookie)
		wmu.Lock()
		defer wmu.Unlock()
		bufs := net.Buffers{h[:]}
		if errno == 0 && len(data) > 0 {
			bufs = append(bufs, data)
		}
		if _, err := bufs.WriteTo(c); err != nil {
			s.log.Debug("nbd: writing reply", "err", err)
		}
	}
	var h [28]byte
	for {
		if _, err := io.ReadFull(c, h[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("nbd: reading request: %w", err)
		}
		if binary.BigEndian.Uint32(h[0:]) != magicRequest {
			return errors.New("nbd: request without magic")
		}
		r := request{
			flags:  binary.BigEndian.Uint16(h[4:]),
			typ:    binary.BigEndian.Uint16(h[6:]),
			cookie: binary.BigEndian.Uint64(h[8:]),
			off:    binary.BigEndian.Uint64(h[16:]),
			length: binary.BigEndian.Uint32(h[24:]),
		}
		if r.typ == cmdWrite {
			if int(r.length) > s.cfg.MaxPayload {
				return fmt.Errorf("nbd: write of %d bytes exceeds the %d-byte maximum", r.length, s.cfg.MaxPayload)
			}
			r.data = make([]byte, r.length)
			if _, err := io.ReadFull(c, r.data); err != nil {
				return fmt.Errorf("nbd: reading write data: %w", err)
			}
		}
		if r.typ == cmdDisc {
			wg.Wait()
			if err := e.Device.Flush(); err != nil {
				s.log.Warn("nbd: flush at disconnect", "err", err)
			}
			return nil
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			data, errno := s.do(e, &r)
			reply(r.cookie, errno, data)
		}()
	}
}

// do executes one request and returns the read data and the NBD errno.
func (s *Server) do(e *Export, r *request) ([]byte, uint32) {
	size := uint64(e.Device.Size())
	inRange := r.off <= size && uint64(r.length) <= size-r.off
	switch r.typ {
	case cmdRead:
		if int(r.length) > s.cfg.MaxPayload {
			return nil, errOverflow
		}
		if !inRange {
			return nil, errInval
		}
		buf := make([]byte, r.length)
		if _, err := e.Device.ReadAt(buf, int64(r.off)); err != nil && !errors.Is(err, io.EOF) {
			s.log.Warn("nbd: read", "off", r.off, "len", r.length, "err", err)
			return nil, errno(err)
		}
		return buf, 0
	case cmdWrite, cmdWriteZeroes:
		if e.ReadOnly {
			return nil, errPerm
		}
		if !inRange {
			return nil, errNoSpc
		}
		data := r.data
		if r.typ == cmdWriteZeroes {
			if int(r.length) > s.cfg.MaxPayload {
				return nil, errOverflow
			}
			data = make([]byte, r.length)
		}
		if _, err := e.Device.WriteAt(data, int64(r.off)); err != nil {
			s.log.Warn("nbd: write", "off", r.off, "len", r.length, "err", err)
			return nil, errno(err)
		}
		if r.flags&cmdFlagFUA != 0 {
			if err := e.Device.Flush(); err != nil {
				s.log.Warn("nbd: flush (FUA)", "err", err)
				return nil, errno(err)
			}
		}
		return nil, 0
	case cmdFlush:
		if err := e.Device.Flush(); err != nil {
			s.log.Warn("nbd: flush", "err", err)
			return nil, errno(err)
		}
		return nil, 0
	case cmdTrim:
		if e.ReadOnly {
			return nil, errPerm
		}
		if !inRange {
			return nil, errInval
		}
		if t, ok := e.Device.(Trimmer); ok {
			if err := t.Trim(int64(r.off), int64(r.length)); err != nil {
				s.log.Warn("nbd: trim", "off", r.off, "len", r.length, "err", err)
				return nil, errno(err)
			}
		}
		return nil, 0
	}
	return nil, errInval
}

// errno maps a device error to the NBD error the client sees: ENOSPC
// (a thin pool out of space: QEMU's werror=enospc pauses the guest rather
// than failing it), EPERM and EROFS as EPERM, EINVAL as EINVAL, and
// everything else (a fenced or stale writer, a medium error, a timeout)
// as EIO.
func errno(err error) uint32 {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errNoSpc
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES):
		return errPerm
	case errors.Is(err, syscall.EINVAL):
		return errInval
	}
	return errIO
}
