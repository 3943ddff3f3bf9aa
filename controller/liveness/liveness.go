package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/state"
)

// Prober asks a node directly whether it is alive. term is the leader's raft
// term; nodes refuse probes (and every command) from an older term.
type Prober interface {
	Probe(ctx context.Context, node string, term uint64) error
}

// Store is the replicated state as the monitor needs it.
type Store interface {
	// Read calls fn with the current state; fn must not keep it.
	Read(fn func(*state.State))
	// Apply proposes a command on the leader.
	Apply(ctx context.Context, c state.Command) (any, error)
}

// Heartbeat is one heartbeat received from a node.
type Heartbeat struct {
	Node string
	// At is when this replica received it. Zero means now.
	At time.Time
	// Monitoring, when not nil, carries the node's figures.
	Monitoring *state.Monitoring
}

// Config tunes the monitor.
type Config struct {
	Tolerance          time.Duration // silence before a node is suspected
	ProbeAttempts      int
	ProbeTimeout       time.Duration
	RecoverHeartbeats  int
	CheckInterval      time.Duration
	MonitoringInterval time.Duration
	Logger             *slog.Logger // nil discards
}

// DefaultConfig puts a dead node in error within 3 s: 1.5 s of silence (TIPC's
// default link tolerance), then 3 probes of 250 ms, checked every 100 ms.
func DefaultConfig() Config {
	return Config{
		Tolerance:          1500 * time.Millisecond,
		ProbeAttempts:      3,
		ProbeTimeout:       250 * time.Millisecond,
		RecoverHeartbeats:  3,
		CheckInterval:      100 * time.Millisecond,
		MonitoringInterval: 10 * time.Second,
	}
}

// Validate checks the fields.
func (c Config) Validate() error {
	switch {
	case c.Tolerance <= 0:
		return fmt.Errorf("liveness: Config.Tolerance %v must be positive", c.Tolerance)
	case c.ProbeAttempts < 1:
		return fmt.Errorf("liveness: Config.ProbeAttempts %d must be at least 1", c.ProbeAttempts)
	case c.ProbeTimeout <= 0:
		return fmt.Errorf("liveness: Config.ProbeTimeout %v must be positive", c.ProbeTimeout)
	case c.RecoverHeartbeats < 1:
		return fmt.Errorf("liveness: Config.RecoverHeartbeats %d must be at least 1", c.RecoverHeartbeats)
	case c.CheckInterval <= 0 || c.CheckInterval > c.Tolerance:
		return fmt.Errorf("liveness: Config.CheckInterval %v must be in (0, Tolerance %v]", c.CheckInterval, c.Tolerance)
	case c.MonitoringInterval < 0:
		return fmt.Errorf("liveness: Config.MonitoringInterval %v is negative", c.MonitoringInterval)
	}
	return nil
}

// WorstCase is the longest a dead node stays unnoticed: the tolerance, a
// check interval, and every probe timing out.
func (c Config) WorstCase() time.Duration {
	return c.Tolerance + c.CheckInterval + time.Duration(c.ProbeAttempts)*c.ProbeTimeout
}

type seen struct {
	last    time.Time
	streak  int // heartbeats each within Tolerance of the previous
	mon     *state.Monitoring
	monAt   time.Time // last monitoring written
	probing bool
}

// Monitor tracks heartbeats and, on the leader, turns silence into health
// changes.
type Monitor struct {
	cfg    Config
	store  Store
	prober Prober
	log    *slog.Logger

	mu    sync.Mutex
	nodes map[string]*seen
}

// New returns a monitor.
func New(cfg Config, store Store, prober Prober) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || prober == nil {
		return nil, errors.New("liveness: New needs a Store and a Prober")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{cfg: cfg, store: store, prober: prober, log: log, nodes: map[string]*seen{}}, nil
}

// Heartbeat records a heartbeat. Safe for concurrent use, on any replica.
func (m *Monitor) Heartbeat(hb Heartbeat) {
	at := hb.At
	if at.IsZero() {
		at = time.Now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.nodes[hb.Node]
	if s == nil {
		s = &seen{}
		m.nodes[hb.Node] = s
	}
	if !s.last.IsZero() && at.Sub(s.last) <= m.cfg.Tolerance {
		s.streak++
	} else {
		s.streak = 1
	}
	if at.After(s.last) {
		s.last = at
	}
	if hb.Monitoring != nil {
		s.mon = hb.Monitoring
	}
}

// Run is the leader loop; start it with leader.Run. It returns when ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	term, _ := leader.Term(ctx)
	since := time.Now()
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m.check(ctx, &wg, term, since)
	}
}

type nodeView struct {
	id     string
	admin  state.AdminState
	health state.Health
}

func (m *Monitor) check(ctx context.Context, wg *sync.WaitGroup, term uint64, since time.Time) {
	var views []nodeView
	m.store.Read(func(s *state.State) {
		for _, n := range s.SortedNodes() {
			views = append(views, nodeView{n.ID, n.Admin, n.Health})
		}
	})
	now := time.Now()
	for _, v := range views {
		if v.admin == state.AdminOffline {
			continue
		}
		m.mu.Lock()
		s := m.nodes[v.id]
		if s == nil {
			s = &seen{}
			m.nodes[v.id] = s
		}
		heard := s.last.After(since) // a heartbeat since this leadership began
		last := s.last
		if last.Before(since) {
			last = since
		}
		silent := now.Sub(last) > m.cfg.Tolerance
		probing := s.probing
		streak := s.streak
		var mon *state.Monitoring
		if s.mon != nil && (s.monAt.IsZero() || now.Sub(s.monAt) >= m.cfg.MonitoringInterval) {
			mon, s.mon, s.monAt = s.mon, nil, now
		}
		if v.health == state.HealthOK && silent && !probing {
			s.probing = true
		}
		m.mu.Unlock()

		if mon != nil {
			m.apply(ctx, state.UpdateMonitoring{At: now.UTC(), Node: v.id, Monitoring: *mon})
		}
		switch v.health {
		case state.HealthOK:
			if silent && !probing {
				wg.Add(1)
				go func() { defer wg.Done(); m.confirm(ctx, v.id, term, now.Sub(last)) }()
			}
		case state.HealthError:
			if heard && !silent {
				m.apply(ctx, state.SetHealth{At: now.UTC(), Node: v.id, Health: state.HealthRetry, Reason: "heartbeats resumed"})
			}
		case state.HealthRetry:
			switch {
			case silent:
				m.apply(ctx, state.SetHealth{At: now.UTC(), Node: v.id, Health: state.HealthError,
					Reason: fmt.Sprintf("heartbeats stopped again for %v", now.Sub(last).Round(time.Millisecond))})
			case heard && streak >= m.cfg.RecoverHeartbeats:
				m.apply(ctx, state.SetHealth{At: now.UTC(), Node: v.id, Health: state.HealthOK,
					Reason: fmt.Sprintf("%d heartbeats in a row", streak)})
			}
		}
	}
}

// confirm probes a suspected node and puts it in error if it never answers.
func (m *Monitor) confirm(ctx context.Context, id string, term uint64, silence time.Duration) {
	defer func() {
		m.mu.Lock()
		m.nodes[id].probing = false
		m.mu.Unlock()
	}()
	var last error
	for i := 0; i < m.cfg.ProbeAttempts; i++ {
		pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
		err := m.prober.Probe(pctx, id, term)
		if err == nil {
			cancel()
			m.Heartbeat(Heartbeat{Node: id})
			m.log.Info("suspected node answered a probe", "node", id, "silence", silence)
			return
		}
		<-pctx.Done()
		cancel()
		if ctx.Err() != nil {
			return
		}
		last = err
	}
	m.mu.Lock()
	fresh := time.Since(m.nodes[id].last) <= m.cfg.Tolerance
	m.mu.Unlock()
	if fresh { // a heartbeat arrived while probing
		return
	}
	m.log.Warn("node in error", "node", id, "silence", silence, "probes", m.cfg.ProbeAttempts, "err", last)
	m.apply(ctx, state.SetHealth{At: time.Now().UTC(), Node: id, Health: state.HealthError,
		Reason: fmt.Sprintf("no heartbeat for %v and %d probes failed: %v", silence.Round(time.Millisecond), m.cfg.ProbeAttempts, last)})
}

func (m *Monitor) apply(ctx context.Context, c state.Command) {
	if _, err := m.store.Apply(ctx, c); err != nil && ctx.Err() == nil {
		m.log.Warn("liveness: apply failed", "command", c.Type(), "err", err)
	}
}
