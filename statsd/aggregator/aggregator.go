package aggregator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/statframe"
)

// Drop reasons of frames.
const (
	DropAuth      = "auth"      // wrong key or forged sender
	DropReplay    = "replay"    // a frame seen before, or too old
	DropTruncated = "truncated" // shorter than its headers say
	DropMalformed = "malformed" // does not decode
)

// Drop reasons of updates.
const (
	DropStale    = "stale"    // not later than the entity's last update
	DropOverflow = "overflow" // more pending updates than Config.MaxPending
	DropWrite    = "write"    // the RRD refused it
	DropMirror   = "mirror"   // the mirror (rrdcached) refused it; the RRD has it
)

// Config configures an Aggregator.
type Config struct {
	// Link receives the frames (EtherType proto.EtherTypeStats); nil for
	// an aggregator that only serves what is stored.
	Link proto.Link
	// Keys opens the frames (the cluster key).
	Keys *proto.Keyring
	// Dir is where the RRD files live.
	Dir string
	// Sync is how commits become durable.
	Sync rrd.SyncMode
	// Step is the RRD step (PDP length) in seconds, Heartbeat the longest
	// silence before a data source is unknown.
	Step, Heartbeat uint64
	// RRA are the archives of new files.
	RRA []rrd.RRA
	// FlushInterval is how often pending updates are written and
	// committed together.
	FlushInterval time.Duration
	// MaxPending bounds the updates waiting for the next flush.
	MaxPending int
	// MaxSeries bounds the series (files); updates of further new
	// series are dropped as overflow.
	MaxSeries int
	// ReadBatch is how many frames one read takes at most.
	ReadBatch int
	// Mirror, when set, receives every create, update and commit too:
	// rrdcached (statsd/rrd/rrdcached) for sites that want real .rrd
	// files written by it. The aggregator's own files stay the source of
	// its HTTP API; a mirror's failures are logged and counted
	// (DropMirror), never lose the files' updates. The mirror's files are
	// flat: node/vif/1.rrd becomes node-vif-1.rrd (rrdcached makes no
	// directories).
	Mirror rrd.Backend
	Logger *slog.Logger // nil: discard
}

// DefaultRRA are the default archives: 10 s for a day, 1 min for a week,
// 1 h for 13 months (at a 10 s step); AVERAGE, MIN, MAX and LAST. The
// 10 s archive is AVERAGE only: a one-step archive answers fetches of
// every function with the same values.
func DefaultRRA() []rrd.RRA {
	var out []rrd.RRA
	out = append(out, rrd.RRA{CF: rrd.Average, XFF: 0.5, Steps: 1, Rows: 8640})
	for _, cf := range []rrd.CF{rrd.Average, rrd.Min, rrd.Max, rrd.Last} {
		out = append(out, rrd.RRA{CF: cf, XFF: 0.5, Steps: 6, Rows: 10080})
	}
	for _, cf := range []rrd.CF{rrd.Average, rrd.Min, rrd.Max, rrd.Last} {
		out = append(out, rrd.RRA{CF: cf, XFF: 0.5, Steps: 360, Rows: 9490})
	}
	return out
}

// DefaultConfig returns the defaults for files in dir; Link and Keys must
// still be set to receive.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, Sync: rrd.SyncFS, Step: 10, Heartbeat: 120, RRA: DefaultRRA(),
		FlushInterval: time.Second, MaxPending: 1 << 20, MaxSeries: 1 << 20, ReadBatch: 64}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("aggregator: Config.Dir is empty")
	}
	if c.Link != nil && c.Keys == nil {
		return errors.New("aggregator: Config.Keys is nil: stat frames are sealed with the cluster key")
	}
	if c.Step == 0 || c.Heartbeat < c.Step {
		return fmt.Errorf("aggregator: Config.Step %d and Heartbeat %d: need 0 < step <= heartbeat", c.Step, c.Heartbeat)
	}
	if c.FlushInterval <= 0 {
		return fmt.Errorf("aggregator: Config.FlushInterval %v must be positive", c.FlushInterval)
	}
	if c.MaxPending < 1 || c.MaxSeries < 1 || c.ReadBatch < 1 {
		return fmt.Errorf("aggregator: Config.MaxPending %d, MaxSeries %d and ReadBatch %d must be positive", c.MaxPending, c.MaxSeries, c.ReadBatch)
	}
	if err := spec(KindVIF, c.Step, c.Heartbeat, c.RRA).Validate(); err != nil {
		return fmt.Errorf("aggregator: archives: %w", err)
	}
	return nil
}

// Stats counts what an Aggregator did.
type Stats struct {
	FramesReceived uint64
	FramesDropped  map[string]uint64 // by reason
	Records        uint64
	RecordsSkipped uint64 // of unknown types
	UpdatesWritten uint64
	UpdatesDropped map[string]uint64 // by reason
	Commits        uint64
	Series         int
}

// entity is what the aggregator knows of one series.
type entity struct {
	name   string
	kind   Kind
	labels map[string]string
	last   int64     // Unix ns of the last accepted update; 0 unknown
	latest []float64 // last values as sent
	exists bool      // its file exists
}

// Aggregator receives stat frames and stores them.
type Aggregator struct {
	cfg   Config
	log   *slog.Logger
	store *rrd.Store
	open  *proto.Opener

	mu       sync.Mutex
	entities map[string]*entity
	pending  []rrd.Update

	flushMu sync.Mutex // one flush at a time

	framesIn, records, skipped, written, commits atomic.Uint64
	dropMu                                       sync.Mutex
	frameDrops, updateDrops                      map[string]uint64
}

// New opens the data directory, indexes the series already in it and
// returns an Aggregator.
func New(cfg Config) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc := rrd.DefaultStoreConfig(cfg.Dir)
	sc.Sync, sc.Logger = cfg.Sync, log
	st, err := rrd.OpenStore(sc)
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	a := &Aggregator{cfg: cfg, log: log, store: st, entities: map[string]*entity{},
		frameDrops: map[string]uint64{}, updateDrops: map[string]uint64{}}
	if cfg.Keys != nil {
		a.open = proto.NewOpener(cfg.Keys, emitter.Purpose)
	}
	if err := a.index(); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

// index finds the series files already in the directory.
func (a *Aggregator) index() error {
	return filepath.WalkDir(a.cfg.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".rrd") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(a.cfg.Dir, p)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.ToSlash(rel), ".rrd")
		k, err := kindOf(name)
		if err != nil {
			a.log.Warn("not a series file", "file", p)
			return nil
		}
		e := &entity{name: name, kind: k, labels: labelsOf(name, k), exists: true}
		if t, err := a.store.Last(rel); err == nil {
			e.last = t.Sec*1e9 + t.Usec*1e3
		} else {
			a.log.Warn("series file does not open", "file", p, "err", err)
		}
		a.entities[name] = e
		return nil
	})
}

// Run receives frames until ctx ends or the link fails, flushing every
// Config.FlushInterval; it flushes once more before it returns ctx's error.
func (a *Aggregator) Run(ctx context.Context) error {
	if a.cfg.Link == nil {
		return errors.New("aggregator: no link to receive on")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(a.cfg.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := a.Flush(ctx); err != nil && ctx.Err() == nil {
					a.log.Error("flush failed", "err", err)
				}
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { a.cfg.Link.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err := a.receive(ctx)
	cancel()
	wg.Wait()
	if ferr := a.Flush(context.Background()); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

func (a *Aggregator) receive(ctx context.Context) error {
	n := a.cfg.ReadBatch
	frames := make([]proto.Frame, n)
	bufs := make([][]byte, n)
	for i := range frames {
		bufs[i] = make([]byte, 9216)
	}
	br, batch := a.cfg.Link.(proto.BatchReader)
	for {
		var got int
		var err error
		if batch {
			for i := range frames {
				frames[i].Payload = bufs[i]
			}
			got, err = br.ReadBatch(frames)
		} else {
			var m int
			m, frames[0].Src, frames[0].Dst, err = a.cfg.Link.ReadFrom(bufs[0])
			frames[0].Payload, got = bufs[0][:m], 1
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if proto.IsTimeout(err) {
				continue
			}
			return fmt.Errorf("aggregator: receive: %w", err)
		}
		for _, f := range frames[:got] {
			a.Ingest(f.Payload, f.Src, f.Dst)
		}
	}
}

// Ingest authenticates, decodes and queues one frame's payload from src to
// dst. It reports whether the frame was accepted; a refused frame is
// counted by reason. The payload is decrypted in place.
func (a *Aggregator) Ingest(payload []byte, src, dst proto.MAC) bool {
	a.framesIn.Add(1)
	if a.open == nil {
		a.dropFrame(DropAuth)
		return false
	}
	body, err := a.open.Open(payload, src, dst)
	if err != nil {
		switch {
		case errors.Is(err, proto.ErrAuth):
			a.dropFrame(DropAuth)
		case errors.Is(err, proto.ErrReplay):
			a.dropFrame(DropReplay)
		case errors.Is(err, io.ErrUnexpectedEOF):
			a.dropFrame(DropTruncated)
		default:
			a.dropFrame(DropMalformed)
		}
		return false
	}
	var f statframe.Frame
	if err := f.UnmarshalBinary(body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			a.dropFrame(DropTruncated)
		} else {
			a.dropFrame(DropMalformed)
		}
		return false
	}
	a.records.Add(uint64(len(f.Records)))
	a.skipped.Add(uint64(f.Skipped))
	a.queue(samples(src.NodeID(), &f))
	return true
}

func (a *Aggregator) queue(ss []sample) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range ss {
		s := &ss[i]
		e := a.entities[s.name]
		if e == nil {
			if len(a.entities) >= a.cfg.MaxSeries {
				a.dropUpdate(DropOverflow, 1)
				continue
			}
			e = &entity{name: s.name, kind: s.kind, labels: labelsOf(s.name, s.kind)}
			a.entities[s.name] = e
		}
		setLabel(e.labels, "uuid", s.uuid)
		setLabel(e.labels, "device", s.device)
		setLabel(e.labels, "backing", s.backing)
		if s.raw == nil {
			continue // a label-only record (the domain's UUID)
		}
		if s.t <= e.last {
			a.dropUpdate(DropStale, 1)
			continue
		}
		if len(a.pending) >= a.cfg.MaxPending {
			a.dropUpdate(DropOverflow, 1)
			continue
		}
		e.last, e.latest = s.t, s.raw
		a.pending = append(a.pending, rrd.Update{Name: s.name + ".rrd", Time: rrdTime(s.t), Values: s.values()})
	}
}

// Flush writes the pending updates, creating the files of new series, and
// commits them together.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	batch := a.pending
	a.pending = make([]rrd.Update, 0, max(len(batch), 64))
	var create []*entity
	for _, e := range a.entities {
		if !e.exists && e.last != 0 {
			create = append(create, e)
		}
	}
	a.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if len(create) > 0 {
		// The first update of each new series decides its start.
		first := make(map[string]rrd.Time, len(create))
		for _, e := range create {
			first[e.name+".rrd"] = rrd.Time{}
		}
		for _, u := range batch {
			if t, ok := first[u.Name]; ok && t == (rrd.Time{}) {
				first[u.Name] = u.Time
			}
		}
		for _, e := range create {
			t := first[e.name+".rrd"]
			if t == (rrd.Time{}) {
				continue
			}
			err := a.store.Create(e.name+".rrd", a.cfg.Spec(e.kind), rrd.Time{Sec: t.Sec - 1})
			if err != nil && !a.store.Exists(e.name+".rrd") {
				a.dropUpdate(DropWrite, uint64(len(batch)))
				return fmt.Errorf("aggregator: create %s: %w", e.name, err)
			}
			if a.cfg.Mirror != nil {
				if err := a.cfg.Mirror.Create(mirrorName(e.name+".rrd"), a.cfg.Spec(e.kind), rrd.Time{Sec: t.Sec - 1}); err != nil {
					a.log.Warn("mirror refused a create", "series", e.name, "err", err)
				}
			}
			a.mu.Lock()
			e.exists = true
			a.mu.Unlock()
		}
	}
	written := len(batch)
	for _, u := range batch {
		if err := a.store.Update(u.Name, u.Time, u.Values...); err != nil {
			written--
			a.dropUpdate(DropWrite, 1)
			a.log.Warn("update refused", "series", u.Name, "err", err)
			continue
		}
		if a.cfg.Mirror != nil {
			if err := a.cfg.Mirror.Update(mirrorName(u.Name), u.Time, u.Values...); err != nil {
				a.dropUpdate(DropMirror, 1)
			}
		}
	}
	if err := a.store.Commit(ctx); err != nil {
		a.dropUpdate(DropWrite, uint64(written))
		return fmt.Errorf("aggregator: commit: %w", err)
	}
	if a.cfg.Mirror != nil {
		if err := a.cfg.Mirror.Commit(ctx); err != nil {
			a.dropUpdate(DropMirror, uint64(written))
			a.log.Warn("mirror refused a commit", "err", err)
		}
	}
	a.written.Add(uint64(written))
	a.commits.Add(1)
	return nil
}

// setLabel sets a label that is known, leaving the map alone when it
// holds the value already (the common case, on the hot path).
func setLabel(l map[string]string, k, v string) {
	if v != "" && l[k] != v {
		l[k] = v
	}
}

func (a *Aggregator) dropFrame(reason string) {
	a.dropMu.Lock()
	a.frameDrops[reason]++
	a.dropMu.Unlock()
}

func (a *Aggregator) dropUpdate(reason string, n uint64) {
	a.dropMu.Lock()
	a.updateDrops[reason] += n
	a.dropMu.Unlock()
}

// Stats returns the counters.
func (a *Aggregator) Stats() Stats {
	a.dropMu.Lock()
	fd, ud := maps.Clone(a.frameDrops), maps.Clone(a.updateDrops)
	a.dropMu.Unlock()
	a.mu.Lock()
	n := len(a.entities)
	a.mu.Unlock()
	return Stats{FramesReceived: a.framesIn.Load(), FramesDropped: fd, Records: a.records.Load(),
		RecordsSkipped: a.skipped.Load(), UpdatesWritten: a.written.Load(), UpdatesDropped: ud,
		Commits: a.commits.Load(), Series: n}
}

// Close flushes and closes the files.
func (a *Aggregator) Close() error {
	err := a.Flush(context.Background())
	if cerr := a.store.Close(); err == nil {
		err = cerr
	}
	if a.cfg.Mirror != nil {
		if cerr := a.cfg.Mirror.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// mirrorName is a series' file name in a mirror: flat, since rrdcached
// creates no directories.
func mirrorName(name string) string { return strings.ReplaceAll(name, "/", "-") }
