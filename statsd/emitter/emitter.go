package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/statframe"
)

// Purpose is the proto datagram purpose label of stat frames.
const Purpose = "mvstack stats v1"

// Interval bounds: from seconds to minutes.
const (
	MinInterval     = time.Second
	MaxInterval     = time.Hour
	DefaultInterval = 10 * time.Second
)

// Domain is one sample of a domain's counters (what node/domain.Stats
// holds, plus the domain's UUID).
type Domain struct {
	ID     int       // instance number; the domain is dnN
	UUID   [16]byte  // zero when unknown
	At     time.Time // when the counters were read; zero: the sample time
	VCPUs  []VCPU
	Memory Memory
	VIFs   []VIF
	VBDs   []VBD
}

// VCPU is a vCPU's accumulated CPU time.
type VCPU struct {
	ID   int
	Time time.Duration
}

// Memory is a domain's memory in bytes.
type Memory struct{ Current, Max uint64 }

// VIF holds the eight counters of a virtual interface.
type VIF struct {
	ID                                    int
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// VBD holds a virtual block device's counters.
type VBD struct {
	ID                        int
	Backing                   string // "file", "nbd", "aoe", "block"
	Device                    string // guest name, e.g. vda
	Outstanding               uint64
	ReadReqs, WriteReqs       uint64
	ReadSectors, WriteSectors uint64
}

// Pool is one CPU pool of the node.
type Pool struct {
	ID     int
	Load   float64 // average load of the pool
	CPUs   int
	Guests int
}

// DomainSource gives the emitter the node's domains. Domains is called
// once per interval, from one goroutine at a time.
type DomainSource interface {
	Domains(ctx context.Context) ([]Domain, error)
}

// PoolSource is an optional ability of a DomainSource: the node's CPU pools.
type PoolSource interface {
	Pools(ctx context.Context) ([]Pool, error)
}

// Config configures an Emitter.
type Config struct {
	// Link sends the frames; its EtherType must be proto.EtherTypeStats.
	Link proto.Link
	// Keys seals the frames (the cluster key).
	Keys *proto.Keyring
	// Dest is the aggregator's MAC, or proto.Broadcast (the default).
	Dest proto.MAC
	// Interval between samples, MinInterval to MaxInterval.
	Interval time.Duration
	// Source gives the domains; nil: the node reports none.
	Source DomainSource
	// ProcFS and SysFS are where proc and sysfs are mounted.
	ProcFS, SysFS string
	// MaxPayload caps a frame's records in bytes; 0: the link MTU less
	// proto.DatagramOverhead.
	MaxPayload int
	// Now gives sample timestamps; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil: discard
}

// DefaultConfig returns a configuration with every default; Link and Keys
// must still be set.
func DefaultConfig() Config {
	return Config{Dest: proto.Broadcast, Interval: DefaultInterval, ProcFS: "/proc", SysFS: "/sys"}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Link == nil {
		return errors.New("emitter: Config.Link is nil")
	}
	if c.Keys == nil {
		return errors.New("emitter: Config.Keys is nil: stat frames are sealed with the cluster key")
	}
	if c.Dest.IsZero() {
		return errors.New("emitter: Config.Dest is zero: use the aggregator's MAC or proto.Broadcast")
	}
	if c.Interval < MinInterval || c.Interval > MaxInterval {
		return fmt.Errorf("emitter: Config.Interval %v out of range %v..%v", c.Interval, MinInterval, MaxInterval)
	}
	if c.ProcFS == "" || c.SysFS == "" {
		return errors.New("emitter: Config.ProcFS and Config.SysFS must be set")
	}
	if max := c.maxPayload(); max < statframe.HeaderLen+statframe.RecordHeaderLen+88 {
		return fmt.Errorf("emitter: frames of %d bytes cannot hold a VBD record (MTU %d)", max, c.Link.MTU())
	}
	return nil
}

func (c Config) maxPayload() int {
	if c.MaxPayload > 0 {
		return min(c.MaxPayload, c.Link.MTU()-proto.DatagramOverhead)
	}
	return c.Link.MTU() - proto.DatagramOverhead
}

// Stats counts what an Emitter did.
type Stats struct {
	Samples, Frames, Records, Bytes uint64
	// Errors counts samples or sends that failed.
	Errors uint64
}

// Emitter samples and sends stat frames.
type Emitter struct {
	cfg  Config
	log  *slog.Logger
	seal *proto.Sealer
	host *hostReader

	mu   sync.Mutex // one sample at a time
	prev map[vcpuKey]vcpuPrev

	samples, frames, records, bytes, errs atomic.Uint64
}

type vcpuKey struct{ dom, vcpu int }

type vcpuPrev struct {
	at   time.Time
	time time.Duration
}

// New returns an Emitter.
func New(cfg Config) (*Emitter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := proto.NewSealer(cfg.Keys, Purpose, cfg.Link.Addr())
	if err != nil {
		return nil, fmt.Errorf("emitter: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := newHostReader(cfg.ProcFS, cfg.SysFS)
	if err != nil {
		return nil, err
	}
	return &Emitter{cfg: cfg, log: log, seal: s, host: h, prev: map[vcpuKey]vcpuPrev{}}, nil
}

// Run sends a sample at once and then every interval until ctx ends; it
// returns ctx's error. A failed sample is logged and counted, not fatal.
func (e *Emitter) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if err := e.Emit(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("stats sample failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Emit takes one sample and sends it.
func (e *Emitter) Emit(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	recs, now, err := e.sample(ctx)
	if err != nil {
		e.errs.Add(1)
		return err
	}
	frames, err := statframe.Pack(now.UnixNano(), recs, e.cfg.maxPayload())
	if err != nil {
		e.errs.Add(1)
		return fmt.Errorf("emitter: %w", err)
	}
	sealed := make([][]byte, len(frames))
	var n uint64
	for i, f := range frames {
		sealed[i] = e.seal.Seal(nil, e.cfg.Dest, f)
		n += uint64(len(sealed[i]))
	}
	if bw, ok := e.cfg.Link.(proto.BatchWriter); ok {
		err = bw.WriteBatch(sealed, e.cfg.Dest)
	} else {
		for _, f := range sealed {
			if err = e.cfg.Link.WriteTo(f, e.cfg.Dest); err != nil {
				break
			}
		}
	}
	if err != nil {
		e.errs.Add(1)
		return fmt.Errorf("emitter: send to %s: %w", e.cfg.Dest, err)
	}
	e.samples.Add(1)
	e.frames.Add(uint64(len(sealed)))
	e.records.Add(uint64(len(recs)))
	e.bytes.Add(n)
	return nil
}

// Stats returns the counters.
func (e *Emitter) Stats() Stats {
	return Stats{Samples: e.samples.Load(), Frames: e.frames.Load(), Records: e.records.Load(),
		Bytes: e.bytes.Load(), Errors: e.errs.Load()}
}

func (e *Emitter) now() time.Time {
	if e.cfg.Now != nil {
		return e.cfg.Now()
	}
	return time.Now()
}

// sample builds one interval's records: host, pCPUs, NUMA nodes, pools,
// then each domain's.
func (e *Emitter) sample(ctx context.Context) ([]statframe.Record, time.Time, error) {
	var doms []Domain
	var pools []Pool
	if e.cfg.Source != nil {
		var err error
		if doms, err = e.cfg.Source.Domains(ctx); err != nil {
			return nil, time.Time{}, fmt.Errorf("emitter: domains: %w", err)
		}
		if ps, ok := e.cfg.Source.(PoolSource); ok {
			if pools, err = ps.Pools(ctx); err != nil {
				return nil, time.Time{}, fmt.Errorf("emitter: pools: %w", err)
			}
		}
	}
	now := e.now()
	h, err := e.host.read()
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(pools) == 0 {
		pools = []Pool{{ID: 0, Load: h.load[0], CPUs: len(h.cpus), Guests: len(doms)}}
	}
	ts := now.UnixNano()
	recs := []statframe.Record{&statframe.Host{Time: ts, PCPUs: u16(len(h.cpus)), Pools: u16(len(pools)),
		NUMANodes: u16(len(h.numa)), Guests: u16(len(doms)), MemTotal: h.memTotal, MemFree: h.memFree,
		Load1: h.load[0], Load5: h.load[1], Load15: h.load[2]}}
	for _, c := range h.cpus {
		recs = append(recs, &statframe.PCPU{ID: c.id, Time: ts, CPUTime: c.busy})
	}
	for _, n := range h.numa {
		recs = append(recs, &statframe.NUMA{ID: n.id, MemTotal: n.total, MemFree: n.free})
	}
	for _, p := range pools {
		recs = append(recs, &statframe.Pool{ID: u16(p.ID), Load: p.Load, CPUs: u16(p.CPUs), Guests: u16(p.Guests)})
	}
	seen := make(map[vcpuKey]vcpuPrev)
	for _, d := range doms {
		at := d.At
		if at.IsZero() {
			at = now
		}
		dt := at.UnixNano()
		id := uint32(d.ID)
		recs = append(recs, &statframe.Domain{Domain: id, UUID: d.UUID},
			&statframe.Memory{Domain: id, Time: dt, Current: d.Memory.Current, Max: d.Memory.Max})
		for _, v := range d.VCPUs {
			k := vcpuKey{d.ID, v.ID}
			util := math.NaN()
			if p, ok := e.prev[k]; ok && at.After(p.at) && v.Time >= p.time {
				util = 100 * float64(v.Time-p.time) / float64(at.Sub(p.at))
			}
			seen[k] = vcpuPrev{at, v.Time}
			recs = append(recs, &statframe.VCPU{Domain: id, ID: u16(v.ID), Time: dt, Util: util, CPUTime: uint64(max(v.Time, 0))})
		}
		for _, v := range d.VIFs {
			recs = append(recs, &statframe.VIF{Domain: id, ID: u16(v.ID), Time: dt,
				RxBytes: v.RxBytes, RxPackets: v.RxPackets, RxErrors: v.RxErrors, RxDrops: v.RxDrops,
				TxBytes: v.TxBytes, TxPackets: v.TxPackets, TxErrors: v.TxErrors, TxDrops: v.TxDrops})
		}
		for _, v := range d.VBDs {
			recs = append(recs, &statframe.VBD{Domain: id, ID: u16(v.ID), Time: dt,
				Backing: statframe.ParseBacking(v.Backing), Device: v.Device, Outstanding: v.Outstanding,
				ReadReqs: v.ReadReqs, WriteReqs: v.WriteReqs, ReadSectors: v.ReadSectors, WriteSectors: v.WriteSectors})
		}
	}
	e.prev = seen // domains that went away are forgotten
	return recs, now, nil
}

func u16(n int) uint16 { return uint16(min(max(n, 0), math.MaxUint16)) }
