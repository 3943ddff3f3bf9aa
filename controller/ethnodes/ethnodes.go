package ethnodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// Errors of Probe.
var (
	// ErrUnknownNode: this replica has never heard from the node, so it
	// does not know the node's MAC (a node id is only its low 32 bits).
	ErrUnknownNode = errors.New("ethnodes: node never heard from")
	// ErrClosed: the source was closed.
	ErrClosed = errors.New("ethnodes: closed")
)

// Config configures a Source. Start from DefaultConfig.
type Config struct {
	// Link is the management interface's control-protocol link (EtherType
	// 0x88B5): proto.OpenPacketLink in production, a proto/linktest port
	// in tests. The source owns it and closes it. Required.
	Link proto.Link
	// Keys authenticates every frame: the cluster key. Required.
	Keys *proto.Keyring
	// Tolerance is the control protocol's dead-peer tolerance.
	Tolerance time.Duration
	// DiscoverWindow is how long a discovery collects answers.
	DiscoverWindow time.Duration
	// InfoTimeout bounds the node.info call that fetches a node's full
	// inventory after it answered a discovery.
	InfoTimeout time.Duration
	// Logger receives the source's log; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: the protocol's 1.5 s tolerance, a
// 250 ms discovery window and 2 s for a node.info call.
func DefaultConfig() Config {
	return Config{
		Tolerance:      proto.DefaultConfig().Tolerance,
		DiscoverWindow: 250 * time.Millisecond,
		InfoTimeout:    2 * time.Second,
	}
}

// Validate checks the fields; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.Link == nil:
		return errors.New("ethnodes: Config.Link is nil: open the management interface")
	case c.Keys == nil:
		return errors.New("ethnodes: Config.Keys is nil: every frame is authenticated with the cluster key")
	case c.Tolerance < 10*time.Millisecond:
		return fmt.Errorf("ethnodes: Config.Tolerance %v is below 10ms", c.Tolerance)
	case c.DiscoverWindow < 10*time.Millisecond:
		return fmt.Errorf("ethnodes: Config.DiscoverWindow %v is below 10ms", c.DiscoverWindow)
	case c.InfoTimeout <= 0:
		return fmt.Errorf("ethnodes: Config.InfoTimeout %v must be positive", c.InfoTimeout)
	}
	return nil
}

// reportBuffer is each Reports channel's buffer; a consumer that falls
// that far behind loses reports, as a lossy link would.
const reportBuffer = 1024

// known is what this replica last learnt about a node.
type known struct {
	mac proto.MAC
	// summary is the discovery answer the inventory was fetched for; a
	// node whose answer differs (a restart: new epoch; other hardware) is
	// asked for its inventory again.
	summary nodeclient.Summary
	fetched bool
}

// Source is the controller's node-facing side over the control protocol:
// a controller.NodeSource. Every replica runs one on its management
// interface; only the leader calls Discover and Probe. It is safe for
// concurrent use.
type Source struct {
	cfg    Config
	log    *slog.Logger
	ep     *proto.Endpoint
	client *nodeclient.Client

	mu    sync.Mutex
	nodes map[string]*known // by node id
	subs  map[chan controller.Report]struct{}

	dropped atomic.Uint64
	refused atomic.Uint64
}

var _ controller.NodeSource = (*Source)(nil)

// New opens the control-protocol endpoint on cfg.Link and starts receiving
// heartbeats.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		if cfg.Link != nil {
			cfg.Link.Close()
		}
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg := proto.DefaultConfig()
	pcfg.Keys = cfg.Keys
	pcfg.Tolerance = cfg.Tolerance
	pcfg.ProbeInterval = cfg.Tolerance / 8
	pcfg.Logger = log
	ep, err := proto.NewEndpoint(cfg.Link, pcfg)
	if err != nil {
		cfg.Link.Close()
		return nil, fmt.Errorf("ethnodes: %w", err)
	}
	s := &Source{cfg: cfg, log: log, ep: ep, client: nodeclient.New(ep),
		nodes: map[string]*known{}, subs: map[chan controller.Report]struct{}{}}
	nodeclient.HandleHeartbeats(ep, s.onHeartbeat)
	return s, nil
}

// Addr is this replica's MAC on the management interface: where nodes
// send heartbeats.
func (s *Source) Addr() proto.MAC { return s.ep.Addr() }

// Endpoint is the control-protocol endpoint (counters, tests).
func (s *Source) Endpoint() *proto.Endpoint { return s.ep }

// Close closes the endpoint and its link; Reports channels close when their
// contexts end.
func (s *Source) Close() error { return s.ep.Close() }

// Dropped counts reports lost because a Reports consumer was full.
func (s *Source) Dropped() uint64 { return s.dropped.Load() }

// Refused counts probes the nodes refused for carrying an older term.
func (s *Source) Refused() uint64 { return s.refused.Load() }

// MAC returns the MAC of node id as this replica last heard it.
func (s *Source) MAC(id string) (proto.MAC, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.nodes[id]; k != nil {
		return k.mac, true
	}
	return proto.MAC{}, false
}

// Reports implements controller.NodeSource: heartbeats (Monitoring set),
// registrations (Inventory set, from discoveries) and answered probes
// (Monitoring set) as this replica receives them.
func (s *Source) Reports(ctx context.Context) <-chan controller.Report {
	ch := make(chan controller.Report, reportBuffer)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.subs, ch)
		close(ch)
		s.mu.Unlock()
	}()
	return ch
}

func (s *Source) publish(r controller.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- r:
		default:
			s.dropped.Add(1)
		}
	}
}

// learn records the MAC a node id was heard from.
func (s *Source) learn(mac proto.MAC) *known {
	id := mac.NodeID()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.nodes[id]
	if k == nil || k.mac != mac {
		k = &known{mac: mac}
		s.nodes[id] = k
	}
	return k
}

func (s *Source) onHeartbeat(from proto.MAC, hb nodeclient.Heartbeat) {
	s.learn(from)
	m := Monitoring(hb)
	s.publish(controller.Report{MAC: from, At: time.Now(), Monitoring: &m, Session: hb.Epoch})
}

// Discover implements controller.NodeSource: it broadcasts
// nodeclient.MethodDiscover carrying term and asks each node that answers
// and is new to this replica, restarted, or whose summary changed for its
// full inventory (node.info), reported as a registration. Other answers
// report nothing: liveness rests on heartbeats and probes. It returns once
// those calls are done; an error means the broadcast itself failed.
func (s *Source) Discover(ctx context.Context, term uint64) error {
	found, err := s.client.WithTerm(term).Discover(ctx, s.cfg.DiscoverWindow)
	var wg sync.WaitGroup
	for _, f := range found {
		switch {
		case errors.Is(f.Err, proto.ErrUnknownMethod):
			continue // another controller replica, or mvctl: not a node
		case f.Err != nil:
			s.log.Warn("discovery answer refused", "from", f.From.String(), "err", f.Err)
			continue
		}
		k := s.learn(f.From)
		s.mu.Lock()
		stale := !k.fetched || k.summary != hardwareOf(f.Summary)
		s.mu.Unlock()
		if !stale {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.fetch(ctx, f)
		}()
	}
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("ethnodes: discovery: %w", err)
	}
	return nil
}

// hardwareOf is the part of a summary that says whether the inventory may
// have changed: everything but the counts of domains and the term.
func hardwareOf(sum nodeclient.Summary) nodeclient.Summary {
	sum.Domains, sum.Running, sum.Term = 0, 0, 0
	return sum
}

// fetch asks a node for its inventory and reports the registration.
func (s *Source) fetch(ctx context.Context, f nodeclient.Found) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.InfoTimeout)
	defer cancel()
	info, err := retryRestarted(func() (nodeclient.NodeInfo, error) { return s.client.Info(ctx, f.From) })
	if err != nil {
		if ctx.Err() == nil || errors.Is(err, proto.ErrPeerDead) {
			s.log.Warn("node answered discovery but not node.info", "node", f.From.NodeID(), "mac", f.From.String(), "err", err)
		}
		return
	}
	inv := Inventory(&info.Inventory)
	s.mu.Lock()
	if k := s.nodes[f.From.NodeID()]; k != nil && k.mac == f.From {
		k.summary, k.fetched = hardwareOf(f.Summary), true
	}
	s.mu.Unlock()
	s.publish(controller.Report{MAC: f.From, At: time.Now(), Inventory: &inv, Session: info.Epoch})
}

// Probe implements controller.NodeSource: a node.probe call carrying term.
// It fails when the node stays silent (proto.ErrPeerDead, or ctx's end),
// when the node refuses the term (errors.Is nodeclient.ErrStaleTerm: a
// newer leader has talked to it), or when this replica never heard of the
// node (ErrUnknownNode). An answer is also reported as a heartbeat.
func (s *Source) Probe(ctx context.Context, id string, term uint64) error {
	mac, ok := s.MAC(id)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	c := s.client.WithTerm(term)
	hb, err := retryRestarted(func() (nodeclient.Heartbeat, error) { return c.Probe(ctx, mac) })
	if err != nil {
		if errors.Is(err, nodeclient.ErrStaleTerm) {
			s.refused.Add(1)
			s.log.Warn("node refused our term: a newer controller leader has talked to it", "node", id, "term", term, "err", err)
		}
		return fmt.Errorf("ethnodes: probe %s (%s) in term %d: %w", id, mac, term, err)
	}
	m := Monitoring(hb)
	s.publish(controller.Report{MAC: mac, At: time.Now(), Monitoring: &m, Session: hb.Epoch})
	return nil
}

// retryRestarted calls fn again when it failed because the node restarted
// while the call was in flight (the session with the old process ended):
// the new process is alive and answers the second call.
func retryRestarted[T any](fn func() (T, error)) (T, error) {
	v, err := fn()
	for i := 0; i < 2 && errors.Is(err, proto.ErrPeerRestarted); i++ {
		v, err = fn()
	}
	return v, err
}
