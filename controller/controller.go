package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/mvstack/mvstack/controller/dbbackup"
	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/liveness"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/proto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Report is one message a node sent: a registration when Inventory is set
// (at start, in answer to discovery, or when its hardware changed), otherwise
// a heartbeat, optionally with monitoring figures.
type Report struct {
	MAC        proto.MAC
	At         time.Time // when this replica received it; zero = now
	Inventory  *state.Inventory
	Monitoring *state.Monitoring
	// Session is the node process's control-protocol session epoch (new
	// at every start; 0 = unknown): a new one means the node restarted.
	Session uint64
}

// NodeSource is the controller's node-facing side. The Ethernet control
// protocol implements it; controller/nodetest implements it in memory.
// Implementations must be safe for concurrent use.
type NodeSource interface {
	// Reports delivers what nodes send to this replica until ctx ends,
	// then closes the channel. It is called once per replica.
	Reports(ctx context.Context) <-chan Report
	// Discover broadcasts a discovery request carrying the leader's term;
	// nodes answer with registrations on Reports.
	Discover(ctx context.Context, term uint64) error
	// Probe asks one node directly whether it is alive; nil means it
	// answered. Nodes refuse a term older than the newest they have seen.
	Probe(ctx context.Context, node string, term uint64) error
}

// Config configures a controller replica.
type Config struct {
	Replica  replica.Config  // ID, RaftAddr, DataDir, Bootstrap, timers
	HTTPAddr string          // where the REST API listens, e.g. ":8080"
	Nodes    NodeSource      // nil: no node-facing side (nodes registered over REST only; no liveness)
	Liveness liveness.Config // see liveness.DefaultConfig
	// Volumes tunes the storage loop (assignment pushes, repairs,
	// fencing); Store, Nodes and Self are filled in. It runs when Nodes
	// also implements volumes.Nodes (ethnodes.Source, nodetest.Directory).
	Volumes volumes.Config
	// DBBackup copies raft snapshots to the db_metadata volume when Open
	// is set (mvcontroller: an AoE initiator on the management interface).
	DBBackup DBBackupConfig
	// DiscoveryInterval is how often the leader broadcasts discovery.
	DiscoveryInterval time.Duration
	// AdminTokens are tokens ("mvs_<id>_<secret>") the leader makes sure
	// exist, e.g. the one an operator generated at bootstrap.
	AdminTokens []string
	Logger      *slog.Logger // nil discards
}

// DBBackupConfig configures the copies of raft snapshots to the
// db_metadata volume (package dbbackup).
type DBBackupConfig struct {
	// Open opens a volume from this controller; nil: no copies.
	Open dbbackup.Opener
	// Interval is how often the newest snapshot is looked at.
	Interval time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Replica:           replica.DefaultConfig(),
		HTTPAddr:          "127.0.0.1:8080",
		Liveness:          liveness.DefaultConfig(),
		Volumes:           volumes.DefaultConfig(),
		DBBackup:          DBBackupConfig{Interval: 30 * time.Second},
		DiscoveryInterval: 5 * time.Second,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.HTTPAddr == "" {
		return errors.New("controller: Config.HTTPAddr is empty")
	}
	if c.DiscoveryInterval <= 0 {
		return fmt.Errorf("controller: Config.DiscoveryInterval %v must be positive", c.DiscoveryInterval)
	}
	for i, t := range c.AdminTokens {
		if _, _, err := rest.ParseToken(t); err != nil {
			return fmt.Errorf("controller: Config.AdminTokens[%d]: %w", i, err)
		}
	}
	if c.Nodes != nil {
		if err := c.Liveness.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Server is a running controller replica.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	rep     *replica.Replica
	http    *http.Server
	monitor *liveness.Monitor
	volumes *volumes.Manager // nil without a storage-capable NodeSource

	mu      sync.Mutex
	pending map[proto.MAC]pendingReg // latest registration per node

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a replica: it listens on HTTPAddr, starts raft, the REST API
// and the loops. Stop it with Shutdown.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("controller: listen %s: %w", cfg.HTTPAddr, err)
	}
	if cfg.Replica.APIAddr == "" {
		cfg.Replica.APIAddr = ln.Addr().String()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Replica.Metrics = reg
	if cfg.Replica.Logger == nil {
		cfg.Replica.Logger = log
	}
	rep, err := replica.New(cfg.Replica)
	if err != nil {
		ln.Close()
		return nil, err
	}
	vm, err := newVolumes(cfg, rep, log)
	if err != nil {
		rep.Shutdown()
		ln.Close()
		return nil, err
	}
	rcfg := rest.Config{Store: rep, Members: rep, Metrics: reg, Logger: log}
	if vm != nil {
		rcfg.Volumes = vm
	}
	h, err := rest.New(rcfg)
	if err != nil {
		rep.Shutdown()
		ln.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, ln: ln, rep: rep, volumes: vm, pending: map[proto.MAC]pendingReg{},
		http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("REST server stopped", "err", err)
		}
	}()
	s.goLeader(ctx, "tokens", s.ensureTokens)
	if cfg.Nodes != nil {
		s.monitor, err = liveness.New(cfg.Liveness, rep, cfg.Nodes)
		if err != nil {
			s.Shutdown(context.Background())
			return nil, err
		}
		reports := cfg.Nodes.Reports(ctx)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.consume(reports) }()
		s.goLeader(ctx, "liveness", s.monitor.Run)
		s.goLeader(ctx, "discovery", s.discover)
		if vm != nil {
			s.goLeader(ctx, "volumes", vm.Run)
		}
	}
	if cfg.DBBackup.Open != nil {
		bcfg := dbbackup.Config{Store: rep, Snapshots: rep, Open: cfg.DBBackup.Open, Interval: cfg.DBBackup.Interval,
			Writer: cfg.Replica.ID, Logger: log}
		if vm != nil {
			bcfg.Reserve = func(ctx context.Context, volume string) error { return vm.Reserve(ctx, volume, nil) }
		}
		b, err := dbbackup.New(bcfg)
		if err != nil {
			s.Shutdown(context.Background())
			return nil, fmt.Errorf("controller: %w", err)
		}
		s.goLeader(ctx, "db_metadata", b.Run)
	}
	return s, nil
}

// newVolumes makes the storage manager when the node source can reach the
// nodes' storage methods, and serves the nodes' storage requests with it.
func newVolumes(cfg Config, rep *replica.Replica, log *slog.Logger) (*volumes.Manager, error) {
	nodes, ok := cfg.Nodes.(volumes.Nodes)
	if !ok {
		return nil, nil
	}
	vc := cfg.Volumes
	vc.Store, vc.Nodes = rep, nodes
	if a, ok := cfg.Nodes.(interface{ Addr() proto.MAC }); ok {
		vc.Self = a.Addr()
	}
	if vc.Logger == nil {
		vc.Logger = log
	}
	vm, err := volumes.New(vc)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if h, ok := cfg.Nodes.(interface{ HandleStorage(volumes.Handler) }); ok {
		h.HandleStorage(vm)
	}
	return vm, nil
}

// Volumes returns the storage manager, nil when the node source has no
// storage side.
func (s *Server) Volumes() *volumes.Manager { return s.volumes }

func (s *Server) goLeader(ctx context.Context, name string, loop leader.Loop) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); leader.Run(ctx, s.rep, name, s.log, loop) }()
}

// Replica returns the raft replica.
func (s *Server) Replica() *replica.Replica { return s.rep }

// APIAddr is the address the REST API listens on.
func (s *Server) APIAddr() string { return s.ln.Addr().String() }

// Handler is the REST API handler.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Shutdown stops the REST server (waiting for requests in flight until ctx
// ends), the loops and raft.
func (s *Server) Shutdown(ctx context.Context) error {
	herr := s.http.Shutdown(ctx)
	s.cancel()
	rerr := s.rep.Shutdown()
	s.wg.Wait()
	return errors.Join(herr, rerr)
}

// consume feeds reports to liveness and keeps the latest registration of
// each node for the discovery loop.
func (s *Server) consume(reports <-chan Report) {
	for r := range reports {
		id := r.MAC.NodeID()
		at := r.At
		if at.IsZero() {
			at = time.Now()
		}
		if r.Inventory != nil {
			s.mu.Lock()
			s.pending[r.MAC] = pendingReg{*r.Inventory, at.UTC()}
			s.mu.Unlock()
		}
		s.monitor.Heartbeat(liveness.Heartbeat{Node: id, At: r.At, Monitoring: r.Monitoring})
		if s.volumes != nil {
			s.volumes.Heard(id, r.Session)
		}
	}
}

// discover runs on the leader: broadcast discovery, and register nodes that
// are new or whose inventory changed.
func (s *Server) discover(ctx context.Context) error {
	term, _ := leader.Term(ctx)
	t := time.NewTicker(s.cfg.DiscoveryInterval)
	defer t.Stop()
	reconcile := time.NewTicker(s.cfg.DiscoveryInterval / 20)
	defer reconcile.Stop()
	if err := s.cfg.Nodes.Discover(ctx, term); err != nil {
		s.log.Warn("discovery broadcast failed", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.cfg.Nodes.Discover(ctx, term); err != nil {
				s.log.Warn("discovery broadcast failed", "err", err)
			}
		case <-reconcile.C:
			s.register(ctx)
		}
	}
}

func (s *Server) register(ctx context.Context) {
	s.mu.Lock()
	regs := make(map[proto.MAC]pendingReg, len(s.pending))
	for m, p := range s.pending {
		regs[m] = p
	}
	s.mu.Unlock()
	for mac, p := range regs {
		var have *state.Node
		s.rep.Read(func(st *state.State) { have = st.Nodes[mac.NodeID()] })
		// A registration older than the node's last update is stale (this
		// replica may have missed a newer one while following).
		if have == nil || (!reflect.DeepEqual(have.Inventory, p.inv) && p.at.After(have.Updated)) {
			if _, err := s.rep.Apply(ctx, state.RegisterNode{At: time.Now().UTC(), MAC: mac, Inventory: p.inv}); err != nil {
				s.log.Warn("registering node failed", "node", mac.NodeID(), "err", err)
				continue
			}
		}
		s.mu.Lock()
		if s.pending[mac].at.Equal(p.at) {
			delete(s.pending, mac)
		}
		s.mu.Unlock()
	}
}

// ensureTokens runs on the leader: the configured admin tokens exist.
func (s *Server) ensureTokens(ctx context.Context) error {
	for _, tok := range s.cfg.AdminTokens {
		id, hash, _ := rest.ParseToken(tok)
		var have bool
		s.rep.Read(func(st *state.State) { _, have = st.Tokens[id] })
		if have {
			continue
		}
		if _, err := s.rep.Apply(ctx, state.CreateToken{At: time.Now().UTC(), ID: id, Name: "admin", Hash: hash}); err != nil {
			return err
		}
	}
	return nil
}

type pendingReg struct {
	inv state.Inventory
	at  time.Time
}
