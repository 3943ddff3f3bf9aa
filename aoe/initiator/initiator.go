package initiator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/proto"
)

// Config configures an [Initiator].
type Config struct {
	// Links are the interfaces to use; several give multipath. Required.
	// The initiator reads from them until Close, and does not close them.
	Links []proto.Link
	// DiscoverWait is how long Discover collects Query Config answers.
	DiscoverWait time.Duration
	// InitialRTO is the retransmission timeout before any round trip was
	// measured; MinRTO and MaxRTO bound it afterwards.
	InitialRTO, MinRTO, MaxRTO time.Duration
	// RequestTimeout is how long one request is retried before it fails
	// with ErrTimeout (a target that restarts within it loses nothing).
	RequestTimeout time.Duration
	// MaxWindow caps every path's window, whatever the target advertises.
	MaxWindow int
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: discovery waits 300 ms; RTO starts at
// 50 ms and stays within 20 ms to 1 s; a request is retried for 60 s; windows
// are at most 256.
func DefaultConfig() Config {
	return Config{
		DiscoverWait:   300 * time.Millisecond,
		InitialRTO:     50 * time.Millisecond,
		MinRTO:         20 * time.Millisecond,
		MaxRTO:         time.Second,
		RequestTimeout: 60 * time.Second,
		MaxWindow:      256,
	}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case len(c.Links) == 0:
		return errors.New("initiator: Links is empty: want at least one link")
	case c.DiscoverWait <= 0:
		return fmt.Errorf("initiator: DiscoverWait %v: want more than 0", c.DiscoverWait)
	case c.MinRTO <= 0 || c.MaxRTO < c.MinRTO:
		return fmt.Errorf("initiator: MinRTO %v and MaxRTO %v: want 0 < MinRTO <= MaxRTO", c.MinRTO, c.MaxRTO)
	case c.InitialRTO < c.MinRTO || c.InitialRTO > c.MaxRTO:
		return fmt.Errorf("initiator: InitialRTO %v: want between MinRTO %v and MaxRTO %v", c.InitialRTO, c.MinRTO, c.MaxRTO)
	case c.RequestTimeout < c.MaxRTO:
		return fmt.Errorf("initiator: RequestTimeout %v: want at least MaxRTO %v", c.RequestTimeout, c.MaxRTO)
	case c.MaxWindow < 1 || c.MaxWindow > 0xffff:
		return fmt.Errorf("initiator: MaxWindow %d: want 1 to 65535", c.MaxWindow)
	}
	for i, l := range c.Links {
		if l == nil {
			return fmt.Errorf("initiator: Links[%d] is nil", i)
		}
		if aoe.SectorsPerFrame(l.MTU()) < 1 {
			return fmt.Errorf("initiator: Links[%d] MTU %d cannot carry one sector", i, l.MTU())
		}
	}
	return nil
}

// TargetInfo is what a target says of itself in a Query Config answer.
type TargetInfo struct {
	Shelf uint16
	Slot  uint8
	MAC   proto.MAC
	// Link is the index in Config.Links of the link it answered on.
	Link        int
	BufferCount int
	// SectorsPerFrame is the most sectors per request on this path: what
	// the target advertises, bounded by the link's MTU.
	SectorsPerFrame int
	Firmware        uint16
	Version         uint8
	Config          string
}

// Initiator sends AoE requests on a set of links and matches their replies.
type Initiator struct {
	cfg   Config
	log   *slog.Logger
	links []proto.Link

	mu         sync.Mutex
	closed     bool
	nextTag    uint32
	pending    map[uint32]*request
	collectors map[uint32]*collector
	devices    []*Device

	frames sync.Pool // *[]byte request frames

	// corked counts readers letting the callers their replies woke run
	// before writing what those callers queued, in one batch per path
	// (paths that queued meanwhile are on dirty).
	corked  atomic.Int32
	dirtyMu sync.Mutex
	dirty   []*path

	wg   sync.WaitGroup
	done chan struct{}
}

type collector struct {
	shelf uint16
	slot  uint8
	found []TargetInfo
}

// New starts an initiator: one reader goroutine per link.
func New(cfg Config) (*Initiator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	in := &Initiator{
		cfg:        cfg,
		log:        cfg.Logger,
		links:      slices.Clone(cfg.Links),
		nextTag:    uint32(time.Now().UnixNano()) & 0x7fffffff,
		pending:    map[uint32]*request{},
		collectors: map[uint32]*collector{},
		done:       make(chan struct{}),
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	for i, l := range in.links {
		in.wg.Add(1)
		go in.read(i, l)
	}
	return in, nil
}

// Close stops the readers and fails requests still pending with ErrClosed.
// It does not close the links.
func (in *Initiator) Close() error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	close(in.done)
	var reqs []*request
	for _, r := range in.pending {
		if !slices.Contains(reqs, r) {
			reqs = append(reqs, r)
		}
	}
	in.mu.Unlock()
	for _, l := range in.links {
		_ = l.SetReadDeadline(time.Now())
	}
	in.wg.Wait()
	for _, r := range reqs {
		in.finish(r, nil, ErrClosed)
	}
	return nil
}

func (in *Initiator) tag() uint32 {
	in.nextTag++
	if in.nextTag == 0 {
		in.nextTag = 1
	}
	return in.nextTag
}

// read is the reader goroutine of link i.
func (in *Initiator) read(i int, l proto.Link) {
	defer in.wg.Done()
	frames := make([]proto.Frame, 1)
	br, batch := l.(proto.BatchReader)
	if batch {
		frames = make([]proto.Frame, 32)
	}
	bufs := make([][]byte, len(frames))
	for k := range bufs {
		bufs[k] = make([]byte, l.MTU())
	}
	for {
		var (
			n   int
			err error
		)
		if batch {
			for k := range frames {
				frames[k].Payload = bufs[k]
			}
			n, err = br.ReadBatch(frames)
		} else {
			var m int
			m, frames[0].Src, frames[0].Dst, err = l.ReadFrom(bufs[0])
			frames[0].Payload, n = bufs[0][:m], 1
		}
		if err != nil {
			select {
			case <-in.done:
				return
			default:
			}
			if proto.IsTimeout(err) {
				continue
			}
			if errors.Is(err, proto.ErrClosed) {
				return
			}
			in.log.Warn("aoe initiator: reading link", "link", i, "err", err)
			return
		}
		for _, fr := range frames[:n] {
			var f aoe.Frame
			if f.UnmarshalBinary(fr.Payload) != nil || !f.IsResponse() || f.Version != aoe.Version {
				continue
			}
			in.reply(i, fr.Src, &f)
		}
		if batch {
			// ReadBatch may have moved buffers between slots.
			for k := range frames {
				bufs[k] = frames[k].Payload[:cap(frames[k].Payload)]
			}
		}
		switch {
		case n > 1:
			// The replies woke their callers onto this P: let them run
			// first (on a link whose reads block in the kernel, as
			// aoe/rawlink's, they would otherwise wait behind the next
			// read until another thread steals them), and write the
			// requests they queue meanwhile together.
			in.corked.Add(1)
			runtime.Gosched()
			in.uncork()
		case n == 1:
			runtime.Gosched()
		}
	}
}

// reply matches a response to its request, or to a discovery.
func (in *Initiator) reply(link int, src proto.MAC, f *aoe.Frame) {
	in.mu.Lock()
	if r := in.pending[f.Tag]; r != nil && r.from(link, src) {
		in.unpend(r)
		resend := in.account(r, f.Tag)
		in.mu.Unlock()
		for _, s := range resend {
			in.write(s)
		}
		in.finish(r, f, nil)
		return
	}
	if f.Command != aoe.CmdConfig || f.IsError() {
		in.mu.Unlock()
		return
	}
	info := TargetInfo{
		Shelf: f.Shelf, Slot: f.Slot, MAC: src, Link: link,
		BufferCount:     int(f.Config.BufferCount),
		SectorsPerFrame: min(int(f.Config.SectorCount), aoe.SectorsPerFrame(in.links[link].MTU())),
		Firmware:        f.Config.Firmware,
		Version:         f.Config.Version,
		Config:          string(f.Config.Config),
	}
	if info.SectorsPerFrame == 0 {
		// Old targets leave the field 0; AoEr11 then means 2.
		info.SectorsPerFrame = min(2, aoe.SectorsPerFrame(in.links[link].MTU()))
	}
	if c := in.collectors[f.Tag]; c != nil {
		if (c.shelf == aoe.BroadcastShelf || c.shelf == f.Shelf) && (c.slot == aoe.BroadcastSlot || c.slot == f.Slot) &&
			!slices.ContainsFunc(c.found, func(t TargetInfo) bool {
				return t.MAC == src && t.Link == link && t.Shelf == f.Shelf && t.Slot == f.Slot
			}) {
			c.found = append(c.found, info)
		}
	}
	// An announcement (or any config answer) from a new path of an open
	// device adds the path.
	for _, d := range in.devices {
		if d.shelf == f.Shelf && d.slot == f.Slot {
			d.addPath(info)
		}
	}
	in.mu.Unlock()
}

// Discover broadcasts a Query Config read for shelf.slot (BroadcastShelf and
// BroadcastSlot match any) on every link and returns the targets that answer
// within DiscoverWait or before ctx ends.
func (in *Initiator) Discover(ctx context.Context, shelf uint16, slot uint8) ([]TargetInfo, error) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil, ErrClosed
	}
	tag := in.tag()
	c := &collector{shelf: shelf, slot: slot}
	in.collectors[tag] = c
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		delete(in.collectors, tag)
		in.mu.Unlock()
	}()
	f := aoe.Frame{Header: aoe.Header{Version: aoe.Version, Shelf: shelf, Slot: slot, Command: aoe.CmdConfig, Tag: tag}}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, err
	}
	broadcast := func() int {
		sent := 0
		for i, l := range in.links {
			if err := l.WriteTo(b, proto.Broadcast); err != nil {
				in.log.Warn("aoe initiator: discovery broadcast", "link", i, "err", err)
				continue
			}
			sent++
		}
		return sent
	}
	if broadcast() == 0 {
		return nil, fmt.Errorf("initiator: discovery: no link could send")
	}
	// Ask again three more times within the wait, in case a broadcast or
	// an answer was lost; answers are counted once.
	end := time.NewTimer(in.cfg.DiscoverWait)
	defer end.Stop()
	again := time.NewTicker(in.cfg.DiscoverWait / 4)
	defer again.Stop()
wait:
	for {
		select {
		case <-end.C:
			break wait
		case <-again.C:
			broadcast()
		case <-ctx.Done():
			break wait
		case <-in.done:
			return nil, ErrClosed
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	found := slices.Clone(c.found)
	slices.SortFunc(found, func(a, b TargetInfo) int {
		if a.Shelf != b.Shelf {
			return int(a.Shelf) - int(b.Shelf)
		}
		if a.Slot != b.Slot {
			return int(a.Slot) - int(b.Slot)
		}
		if a.Link != b.Link {
			return a.Link - b.Link
		}
		return slices.Compare(a.MAC[:], b.MAC[:])
	})
	return found, nil
}
