package target

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/proto"
)

// ExportConfig describes one export.
type ExportConfig struct {
	Shelf uint16 // major, 0 to 0xfffe
	Slot  uint8  // minor, 0 to 0xfe
	// Backend is what the export serves; required.
	Backend Backend
	// ReadOnly aborts every write.
	ReadOnly bool
	// WriteBack acknowledges writes before they are durable; FLUSH CACHE
	// still syncs. The default is write-through: a write is acked only
	// after Sync.
	WriteBack bool
	// BufferCount is the Buffer Count advertised in Query Config: how many
	// requests an initiator may keep in flight. At least 64.
	BufferCount int
	// Config is the initial config string (up to 1024 bytes).
	Config string
	// MACMask, when not empty, is the only set of sources answered.
	MACMask []proto.MAC
	// Serial, Model and Firmware fill the IDENTIFY page.
	Serial, Model, Firmware string
	// Epoch, when not 0, makes the export keep an epoch for a replicated
	// volume, starting here: ATA reads, writes and flushes are then
	// served only to sources registered at the current epoch with the
	// vendor command aoe.CmdEpoch (others get the vendor errors
	// aoe.ErrEpochUnregistered or aoe.ErrEpochStale and never reach the
	// backend). 0 keeps the export exactly as a standard AoE target.
	Epoch uint64
	// OnEpoch, when set, is called synchronously whenever the export's
	// epoch rises, before any source is told of the new epoch, so the
	// caller can make it durable; an error refuses the raise. It needs
	// Epoch > 0. It must not call the export's own methods.
	OnEpoch func(epoch uint64) error
}

// DefaultExportConfig returns an export's defaults: write-through, Buffer
// Count 64, model "mvstack AoE", firmware "1".
func DefaultExportConfig() ExportConfig {
	return ExportConfig{BufferCount: DefaultBufferCount, Model: "mvstack AoE", Firmware: "1"}
}

// DefaultBufferCount is the Buffer Count an export advertises by default:
// room for a whole 1 MiB request in flight at MTU 9000 (121 frames), so a
// sequential reader at queue depth 1 waits one round trip per request, not
// two. Each costs the server one frame buffer.
const DefaultBufferCount = 128

// MaxMaskLen is the longest MAC mask or reserve list an export keeps.
const MaxMaskLen = 255

// Validate reports the first field out of range.
func (c ExportConfig) Validate() error {
	switch {
	case c.Backend == nil:
		return fmt.Errorf("target: export %d.%d: Backend is nil", c.Shelf, c.Slot)
	case c.Shelf >= aoe.BroadcastShelf:
		return fmt.Errorf("target: export shelf %d: want 0 to %d (0xffff is broadcast)", c.Shelf, aoe.BroadcastShelf-1)
	case c.Slot >= aoe.BroadcastSlot:
		return fmt.Errorf("target: export slot %d: want 0 to %d (0xff is broadcast)", c.Slot, aoe.BroadcastSlot-1)
	case c.BufferCount < 64 || c.BufferCount > 0xffff:
		return fmt.Errorf("target: export %d.%d: BufferCount %d: want 64 to 65535", c.Shelf, c.Slot, c.BufferCount)
	case len(c.Config) > aoe.MaxConfigLen:
		return fmt.Errorf("target: export %d.%d: config string of %d bytes exceeds %d", c.Shelf, c.Slot, len(c.Config), aoe.MaxConfigLen)
	case len(c.MACMask) > MaxMaskLen:
		return fmt.Errorf("target: export %d.%d: MAC mask of %d entries exceeds %d", c.Shelf, c.Slot, len(c.MACMask), MaxMaskLen)
	case c.OnEpoch != nil && c.Epoch == 0:
		return fmt.Errorf("target: export %d.%d: OnEpoch is set but Epoch is 0 (epochs off): want Epoch > 0", c.Shelf, c.Slot)
	case c.Backend.Size() < aoe.SectorSize:
		return fmt.Errorf("target: export %d.%d: backend of %d bytes holds no sector", c.Shelf, c.Slot, c.Backend.Size())
	}
	if _, err := c.identity().MarshalBinary(); err != nil {
		return fmt.Errorf("target: export %d.%d: %w", c.Shelf, c.Slot, err)
	}
	return nil
}

func (c ExportConfig) identity() ata.Identity {
	serial := c.Serial
	if serial == "" {
		serial = fmt.Sprintf("mv%d.%d", c.Shelf, c.Slot)
	}
	return ata.Identity{
		Sectors:    uint64(c.Backend.Size() / aoe.SectorSize),
		Serial:     serial,
		Model:      c.Model,
		Firmware:   c.Firmware,
		WriteCache: c.WriteBack,
	}
}

// Stats counts what an export did.
type Stats struct {
	Reads, Writes, Flushes    uint64 // ATA commands completed
	ReadBytes, WrittenBytes   uint64
	ATAErrors                 uint64 // ATA commands answered with ERR
	AoEErrors                 uint64 // answers with the E flag
	Masked                    uint64 // frames ignored because of the MAC mask
	ConfigQueries, ConfigSets uint64
	ReservationConflicts      uint64
	// EpochRefusals counts ATA commands refused because the source was
	// not registered at the export's epoch; NoSpace writes that failed
	// with ENOSPC.
	EpochRefusals, NoSpace uint64
	// Joined counts reads and writes served as part of one larger backend
	// call with the requests next to them (see [Server]).
	Joined uint64
}

// Export is one backend served at shelf.slot.
type Export struct {
	cfg      ExportConfig
	identity []byte
	sectors  uint64
	gsync    *groupSync
	order    order
	// inline: reads come from the page cache (and write-back writes go
	// to it), so the reader goroutine serves them itself rather than
	// handing them to a worker.
	inline bool
	fence  fence

	// refs counts requests in flight; gone is set by RemoveExport, which
	// then waits for refs to drain (idle is signalled at 0).
	refs atomic.Int64
	gone atomic.Bool
	idle chan struct{}

	mu       sync.Mutex // guards the fields below
	config   []byte
	mask     []proto.MAC
	reserved []proto.MAC
	// maskNow and reservedNow are copies of mask and reserved, replaced
	// (under mu) whenever those change, so every request checks them
	// without a lock.
	maskNow, reservedNow atomic.Pointer[[]proto.MAC]

	reads, writes, flushes, readBytes, writtenBytes atomic.Uint64
	ataErrors, aoeErrors, masked                    atomic.Uint64
	configQueries, configSets, conflicts            atomic.Uint64
	epochRefusals, noSpace, joined                  atomic.Uint64
}

func newExport(cfg ExportConfig) (*Export, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id, err := cfg.identity().MarshalBinary()
	if err != nil {
		return nil, err
	}
	e := &Export{
		cfg:      cfg,
		identity: id,
		sectors:  uint64(cfg.Backend.Size() / aoe.SectorSize),
		gsync:    newGroupSync(),
		config:   []byte(cfg.Config),
		inline:   !isDirect(cfg.Backend),
		mask:     slices.Clone(cfg.MACMask),
		idle:     make(chan struct{}, 1),
	}
	e.fence.init(cfg.Epoch, cfg.OnEpoch)
	e.publish()
	return e, nil
}

// publish makes the current mask and reserve list visible to allowed and
// mayChange. It runs under e.mu (or before the export is shared).
func (e *Export) publish() {
	m, r := slices.Clone(e.mask), slices.Clone(e.reserved)
	e.maskNow.Store(&m)
	e.reservedNow.Store(&r)
}

// ref counts a request in flight; it fails once the export is removed.
func (e *Export) ref() bool {
	e.refs.Add(1)
	if e.gone.Load() {
		e.unref()
		return false
	}
	return true
}

// unref retires a request counted by ref.
func (e *Export) unref() {
	if e.refs.Add(-1) == 0 && e.gone.Load() {
		select {
		case e.idle <- struct{}{}:
		default:
		}
	}
}

// drain marks the export removed and waits for its requests in flight.
func (e *Export) drain() {
	e.gone.Store(true)
	for e.refs.Load() != 0 {
		<-e.idle
	}
}

// isDirect reports whether b bypasses the page cache, so its reads wait on
// the disk and must run on workers in parallel.
func isDirect(b Backend) bool {
	d, ok := b.(interface{ IsDirect() bool })
	return !ok || d.IsDirect()
}

// Shelf and Slot are the export's address.
func (e *Export) Shelf() uint16 { return e.cfg.Shelf }

// Slot is the export's minor address.
func (e *Export) Slot() uint8 { return e.cfg.Slot }

// Config returns the current config string.
func (e *Export) Config() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return string(e.config)
}

// MACMask returns the current MAC mask list.
func (e *Export) MACMask() []proto.MAC {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.mask)
}

// Reserved returns the current reserve list.
func (e *Export) Reserved() []proto.MAC {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reserved)
}

// SetReserve replaces the export's reserve list (as a Reserve/Release
// force set would): only the sources on a non-empty list may then send
// ATA commands and change state; an empty list releases the export. The
// node daemon fences a writer this way.
func (e *Export) SetReserve(macs []proto.MAC) error {
	if len(macs) > MaxMaskLen {
		return fmt.Errorf("target: reserve list of %d.%d: %d entries exceed %d", e.cfg.Shelf, e.cfg.Slot, len(macs), MaxMaskLen)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reserved = slices.Clone(macs)
	e.publish()
	return nil
}

// Stats returns the export's counters.
func (e *Export) Stats() Stats {
	return Stats{
		Reads: e.reads.Load(), Writes: e.writes.Load(), Flushes: e.flushes.Load(),
		ReadBytes: e.readBytes.Load(), WrittenBytes: e.writtenBytes.Load(),
		ATAErrors: e.ataErrors.Load(), AoEErrors: e.aoeErrors.Load(), Masked: e.masked.Load(),
		ConfigQueries: e.configQueries.Load(), ConfigSets: e.configSets.Load(),
		ReservationConflicts: e.conflicts.Load(),
		EpochRefusals:        e.epochRefusals.Load(), NoSpace: e.noSpace.Load(),
		Joined: e.joined.Load(),
	}
}

// allowed reports whether src passes the MAC mask.
func (e *Export) allowed(src proto.MAC) bool {
	m := *e.maskNow.Load()
	return len(m) == 0 || slices.Contains(m, src)
}

// mayChange reports whether src passes the reserve list.
func (e *Export) mayChange(src proto.MAC) bool {
	r := *e.reservedNow.Load()
	return len(r) == 0 || slices.Contains(r, src)
}

// refuse answers error 6 when src is not on a non-empty reserve list. It
// runs under e.mu.
func (e *Export) refuse(src proto.MAC, rep *aoe.Frame) bool {
	if len(e.reserved) == 0 || slices.Contains(e.reserved, src) {
		return false
	}
	rep.Flags |= aoe.FlagError
	rep.Error = aoe.ErrTargetReserved
	e.conflicts.Add(1)
	return true
}

// configReply handles a Query Config request. It returns false when the
// request must go unanswered (a failed test or prefix match).
func (e *Export) configReply(req *aoe.ConfigArg, src proto.MAC, sectors int, rep *aoe.Frame) (answer bool) {
	e.configQueries.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch req.Cmd {
	case aoe.ConfigRead:
	case aoe.ConfigTest:
		if !bytes.Equal(req.Config, e.config) {
			return false
		}
	case aoe.ConfigPrefix:
		if !bytes.HasPrefix(e.config, req.Config) {
			return false
		}
	case aoe.ConfigSet, aoe.ConfigForceSet:
		if e.refuse(src, rep) {
			break
		}
		if req.Cmd == aoe.ConfigSet && len(e.config) != 0 {
			rep.Flags |= aoe.FlagError
			rep.Error = aoe.ErrConfigPresent
			break
		}
		e.config = append(e.config[:0:0], req.Config...)
		e.configSets.Add(1)
	default:
		rep.Flags |= aoe.FlagError
		rep.Error = aoe.ErrBadArgument
	}
	rep.Config = aoe.ConfigArg{
		BufferCount: uint16(e.cfg.BufferCount),
		Firmware:    0x4019,
		SectorCount: uint8(sectors),
		Version:     aoe.Version,
		Cmd:         req.Cmd,
		Config:      slices.Clone(e.config),
	}
	return true
}

// maskReply handles a MAC Mask List request.
func (e *Export) maskReply(req *aoe.MACMaskArg, src proto.MAC, rep *aoe.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rep.MACMask = aoe.MACMaskArg{Cmd: req.Cmd}
	switch req.Cmd {
	case aoe.MaskRead:
	case aoe.MaskEdit:
		if e.refuse(src, rep) {
			break
		}
		defer e.publish() // runs before the deferred Unlock
	edit:
		for _, d := range req.Directives {
			switch d.Cmd {
			case aoe.DirNone:
			case aoe.DirAdd:
				if slices.Contains(e.mask, d.MAC) {
					continue
				}
				if len(e.mask) >= MaxMaskLen {
					rep.MACMask.Error = aoe.MaskErrFull
					break edit
				}
				e.mask = append(e.mask, d.MAC)
			case aoe.DirDelete:
				e.mask = slices.DeleteFunc(e.mask, func(m proto.MAC) bool { return m == d.MAC })
			default:
				rep.MACMask.Error = aoe.MaskErrBadDCmd
				break edit
			}
		}
	default:
		rep.Flags |= aoe.FlagError
		rep.Error = aoe.ErrBadArgument
		return
	}
	for _, m := range e.mask {
		rep.MACMask.Directives = append(rep.MACMask.Directives, aoe.Directive{Cmd: aoe.DirAdd, MAC: m})
	}
}

// reserveReply handles a Reserve/Release request.
func (e *Export) reserveReply(req *aoe.ReserveArg, src proto.MAC, rep *aoe.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rep.Reserve = aoe.ReserveArg{Cmd: req.Cmd}
	switch req.Cmd {
	case aoe.ReserveRead:
	case aoe.ReserveSet:
		if e.refuse(src, rep) {
			break
		}
		e.reserved = slices.Clone(req.MACs)
		e.publish()
	case aoe.ReserveForceSet:
		e.reserved = slices.Clone(req.MACs)
		e.publish()
	default:
		rep.Flags |= aoe.FlagError
		rep.Error = aoe.ErrBadArgument
	}
	rep.Reserve.MACs = slices.Clone(e.reserved)
}

// ata executes one ATA command. data holds the write payload and receives
// read data (its capacity is at least maxSectors sectors). It returns the
// reply's argument, how many data bytes follow it, and whether the command
// failed for lack of space in the backend (ENOSPC, then aborted).
func (e *Export) ata(req aoe.ATAArg, data []byte) (rep aoe.ATAArg, n int, nospace bool) {
	rep = succeeded(req)
	fail := func(errBits uint8) (aoe.ATAArg, int, bool) {
		e.ataErrors.Add(1)
		rep.CmdStatus = ata.StatusDRDY | ata.StatusERR
		rep.ErrFeature = errBits
		return rep, 0, false
	}
	failWrite := func(err error) (aoe.ATAArg, int, bool) {
		if errors.Is(err, syscall.ENOSPC) {
			rep, n, _ := fail(ata.ErrABRT)
			return rep, n, true
		}
		return fail(ata.ErrUNC)
	}
	count := uint64(req.SectorCount)
	lba := req.Sector()
	inRange := e.inRange(lba, count)
	off := int64(lba) * aoe.SectorSize
	size := int(count) * aoe.SectorSize
	switch req.CmdStatus {
	case ata.CmdReadSectors, ata.CmdReadSectorsExt:
		if !inRange {
			return fail(ata.ErrIDNF)
		}
		if err := e.read(data[:size], off); err != nil {
			return fail(ata.ErrUNC)
		}
		e.countRead(size)
		return rep, size, false
	case ata.CmdWriteSectors, ata.CmdWriteSectorsExt:
		if e.cfg.ReadOnly {
			return fail(ata.ErrABRT)
		}
		if !inRange {
			return fail(ata.ErrIDNF)
		}
		if err := e.write(data[:size], off); err != nil {
			return failWrite(err)
		}
		e.countWrite(size)
		return rep, 0, false
	case ata.CmdFlushCache, ata.CmdFlushCacheExt:
		if !e.cfg.ReadOnly {
			if err := e.gsync.sync(e.cfg.Backend.Sync); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					return failWrite(err)
				}
				return fail(ata.ErrABRT)
			}
		}
		e.flushes.Add(1)
		return rep, 0, false
	case ata.CmdIdentify:
		n := copy(data, e.identity)
		return rep, n, false
	case ata.CmdCheckPowerMode:
		rep.SectorCount = ata.PowerActive
		return rep, 0, false
	}
	return fail(ata.ErrABRT)
}

// succeeded is the reply argument of a command that worked: the request's,
// with DRDY and no error.
func succeeded(req aoe.ATAArg) aoe.ATAArg {
	req.ErrFeature = 0
	req.CmdStatus = ata.StatusDRDY
	return req
}

// inRange reports whether count sectors from lba lie inside the export.
func (e *Export) inRange(lba, count uint64) bool {
	return lba <= e.sectors && count <= e.sectors-lba
}

// read reads p at off from the backend.
func (e *Export) read(p []byte, off int64) error {
	_, err := e.cfg.Backend.ReadAt(p, off)
	return err
}

// write writes p at off and, unless the export is write-back, waits until
// it is durable.
func (e *Export) write(p []byte, off int64) error {
	if _, err := e.cfg.Backend.WriteAt(p, off); err != nil {
		return err
	}
	if !e.cfg.WriteBack {
		return e.gsync.sync(e.cfg.Backend.Sync)
	}
	return nil
}

func (e *Export) countRead(size int) {
	e.reads.Add(1)
	e.readBytes.Add(uint64(size))
}

func (e *Export) countWrite(size int) {
	e.writes.Add(1)
	e.writtenBytes.Add(uint64(size))
}
