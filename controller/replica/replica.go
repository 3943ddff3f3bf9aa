package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors of writes.
var (
	// ErrNotLeader: this replica does not lead; forward to LeaderAPI.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrNoQuorum: the leader lost its quorum or leadership before the
	// command committed; nothing was applied. Retry later.
	ErrNoQuorum = errors.New("replica: no quorum")
)

// Peer is one voter of a bootstrap configuration.
type Peer struct {
	ID       string
	RaftAddr string
	APIAddr  string // may be empty when unknown
}

// Config configures a replica.
type Config struct {
	ID       string // raft server id, unique in the cluster
	RaftAddr string // host:port the TCP transport binds and advertises
	APIAddr  string // host:port of this replica's REST API, for forwarding
	// DataDir holds raft.db (raft-boltdb) and snapshots/. Empty keeps
	// everything in memory (tests).
	DataDir string
	// Transport replaces the TCP transport (tests: raft.InmemTransport).
	Transport raft.Transport
	// Bootstrap, when non-empty and no raft state exists yet, bootstraps a
	// cluster with these voters. Every initial replica may pass the same list.
	Bootstrap []Peer

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	// TrailingLogs is how many entries stay in the log after a snapshot;
	// a follower further behind is sent the snapshot instead.
	TrailingLogs uint64
	// ApplyTimeout bounds the wait to enqueue a command.
	ApplyTimeout time.Duration

	Logger  *slog.Logger          // nil discards
	Metrics prometheus.Registerer // nil registers nothing
}

// DefaultConfig returns raft timers suited to a LAN: a failed leader is
// replaced in about a second.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		SnapshotInterval:   60 * time.Second,
		SnapshotThreshold:  4096,
		ApplyTimeout:       2 * time.Second,
	}
}

// Validate checks the fields against each other.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("replica: Config.ID is empty")
	case c.Transport == nil && c.RaftAddr == "":
		return errors.New("replica: Config.RaftAddr is empty and no Transport given")
	case c.HeartbeatTimeout < 5*time.Millisecond:
		return fmt.Errorf("replica: Config.HeartbeatTimeout %v is under 5ms", c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("replica: Config.ElectionTimeout %v is under HeartbeatTimeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("replica: Config.LeaderLeaseTimeout %v must be in (0, HeartbeatTimeout %v]", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.CommitTimeout <= 0:
		return fmt.Errorf("replica: Config.CommitTimeout %v must be positive", c.CommitTimeout)
	case c.ApplyTimeout <= 0:
		return fmt.Errorf("replica: Config.ApplyTimeout %v must be positive", c.ApplyTimeout)
	}
	for i, p := range c.Bootstrap {
		if p.ID == "" || p.RaftAddr == "" {
			return fmt.Errorf("replica: Config.Bootstrap[%d] needs an ID and a RaftAddr", i)
		}
	}
	return nil
}

// Replica is one running controller replica.
type Replica struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	trans  raft.Transport
	snaps  raft.SnapshotStore
	closer []io.Closer

	mu   sync.Mutex
	subs map[chan<- struct{}]struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	m      *metrics
}

var _ leader.Source = (*Replica)(nil)

// New starts a replica.
func New(cfg Config) (*Replica, error) { return newWithStores(cfg, nil, nil) }

// newWithStores starts a replica over given in-memory stores (tests restart
// a replica over the stores it had).
func newWithStores(cfg Config, st *raft.InmemStore, ss *raft.InmemSnapshotStore) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Replica{cfg: cfg, log: log, fsm: &fsm{s: state.New()}, subs: map[chan<- struct{}]struct{}{}}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: slogWriter{log}, Level: hclog.Warn})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.Logger = hlog

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	switch {
	case st != nil:
		logs, stable, snaps = st, st, ss
	case cfg.DataDir == "":
		st := raft.NewInmemStore()
		logs, stable, snaps = st, st, raft.NewInmemSnapshotStore()
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("replica: data dir: %w", err)
		}
		bs, err := raftboltdb.NewBoltStore(filepath.Join(cfg.DataDir, "raft.db"))
		if err != nil {
			return nil, fmt.Errorf("replica: open %s: %w", filepath.Join(cfg.DataDir, "raft.db"), err)
		}
		r.closer = append(r.closer, bs)
		logs, stable = bs, bs
		fs, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
		if err != nil {
			r.closeAll()
			return nil, fmt.Errorf("replica: snapshot store: %w", err)
		}
		snaps = fs
	}
	r.trans = cfg.Transport
	if r.trans == nil {
		addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
		if err != nil {
			r.closeAll()
			return nil, fmt.Errorf("replica: raft address %q: %w", cfg.RaftAddr, err)
		}
		tt, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, addr, 3, 5*time.Second, hlog)
		if err != nil {
			r.closeAll()
			return nil, fmt.Errorf("replica: raft transport on %s: %w", cfg.RaftAddr, err)
		}
		r.trans = tt
		r.closer = append(r.closer, tt)
	}

	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("replica: %w", err)
	}
	if !has && len(cfg.Bootstrap) == 0 {
		log.Warn("no raft state and no bootstrap configuration: waiting for a leader to add this replica (join it)", "id", cfg.ID)
	}
	if len(cfg.Bootstrap) > 0 {
		if !has {
			var conf raft.Configuration
			for _, p := range cfg.Bootstrap {
				conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
			}
			if err := raft.BootstrapCluster(rc, logs, stable, snaps, r.trans, conf); err != nil {
				r.closeAll()
				return nil, fmt.Errorf("replica: bootstrap: %w", err)
			}
		}
	}
	ra, err := raft.NewRaft(rc, r.fsm, logs, stable, snaps, r.trans)
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("replica: start raft: %w", err)
	}
	r.raft, r.snaps = ra, snaps
	r.m = newMetrics(r, cfg.Metrics)

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.fanOut(ctx) }()
	go func() {
		defer r.wg.Done()
		leader.Run(ctx, r, "replicas", log, r.recordReplicas)
	}()
	return r, nil
}

func (r *Replica) closeAll() {
	for i := len(r.closer) - 1; i >= 0; i-- {
		r.closer[i].Close()
	}
}

// Shutdown stops the replica and closes its stores.
func (r *Replica) Shutdown() error {
	r.cancel()
	err := r.raft.Shutdown().Error()
	r.wg.Wait()
	r.closeAll()
	if err != nil {
		return fmt.Errorf("replica: shutdown: %w", err)
	}
	return nil
}

// ID is the replica's raft server id.
func (r *Replica) ID() string { return r.cfg.ID }

// fanOut forwards raft's leadership signal to every Notify subscriber.
func (r *Replica) fanOut(ctx context.Context) {
	ch := r.raft.LeaderCh()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		r.mu.Lock()
		for s := range r.subs {
			select {
			case s <- struct{}{}:
			default:
			}
		}
		r.mu.Unlock()
	}
}

// Leadership implements leader.Source.
func (r *Replica) Leadership() (bool, uint64) {
	return r.raft.State() == raft.Leader, r.raft.CurrentTerm()
}

// Notify implements leader.Source.
func (r *Replica) Notify(ch chan<- struct{}) func() {
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	select { // let the subscriber read the current leadership
	case ch <- struct{}{}:
	default:
	}
	return func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

// recordReplicas runs on the leader: it records its own API address and
// those of the bootstrap peers so that followers can forward writes.
func (r *Replica) recordReplicas(ctx context.Context) error {
	want := []state.Replica{{ID: r.cfg.ID, APIAddr: r.cfg.APIAddr}}
	for _, p := range r.cfg.Bootstrap {
		if p.ID != r.cfg.ID && p.APIAddr != "" {
			want = append(want, state.Replica{ID: p.ID, APIAddr: p.APIAddr})
		}
	}
	for _, w := range want {
		var have state.Replica
		var ok bool
		r.Read(func(s *state.State) { have, ok = s.Replicas[w.ID] })
		if w.APIAddr == "" || (ok && have.APIAddr == w.APIAddr) || (ok && w.ID != r.cfg.ID) {
			continue
		}
		if _, err := r.Apply(ctx, state.SetReplica{At: time.Now().UTC(), ID: w.ID, APIAddr: w.APIAddr}); err != nil {
			return err
		}
	}
	return nil
}

// Apply proposes c and returns its result once it is committed and applied
// here. Errors: ErrNotLeader, ErrNoQuorum, or the command's own error from
// package state (ErrNotFound, ErrInvalid, ErrTransition).
func (r *Replica) Apply(ctx context.Context, c state.Command) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := state.Encode(c)
	if err != nil {
		return nil, err
	}
	if r.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	start := time.Now()
	// Confirm the quorum before appending: a leader cut off from its
	// followers refuses the write without putting it in its log, where it
	// could otherwise commit later after the partition heals.
	if err := r.raft.VerifyLeader().Error(); err != nil {
		r.m.observe(start, err)
		return nil, fmt.Errorf("%w: %s: %w", ErrNoQuorum, c.Type(), err)
	}
	f := r.raft.Apply(b, r.cfg.ApplyTimeout)
	err = f.Error()
	r.m.observe(start, err)
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader):
		return nil, ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrAbortedByRestore), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return nil, fmt.Errorf("%w: %s: %w", ErrNoQuorum, c.Type(), err)
	default:
		return nil, fmt.Errorf("replica: apply %s: %w", c.Type(), err)
	}
	res, _ := f.Response().(applyResult)
	return res.v, res.err
}

// Read calls fn with the current state under the read lock. fn must not
// keep or modify it.
func (r *Replica) Read(fn func(*state.State)) {
	r.fsm.mu.RLock()
	defer r.fsm.mu.RUnlock()
	fn(r.fsm.s)
}

// LeaderAPI returns the leader's REST address and whether it is known.
func (r *Replica) LeaderAPI() (string, bool) {
	_, id := r.raft.LeaderWithID()
	if id == "" {
		return "", false
	}
	var addr string
	r.Read(func(s *state.State) { addr = s.Replicas[string(id)].APIAddr })
	return addr, addr != ""
}

// IsLeader reports whether this replica leads.
func (r *Replica) IsLeader() bool { return r.raft.State() == raft.Leader }

// Member is one server of the raft configuration.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

// Cluster is the membership as this replica sees it.
type Cluster struct {
	Self         string   `json:"self"`
	Leader       string   `json:"leader"`
	Term         uint64   `json:"term"`
	State        string   `json:"state"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Members      []Member `json:"members"`
}

// Cluster returns the current membership.
func (r *Replica) Cluster() (Cluster, error) {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Cluster{}, fmt.Errorf("replica: configuration: %w", err)
	}
	_, lid := r.raft.LeaderWithID()
	c := Cluster{Self: r.cfg.ID, Leader: string(lid), Term: r.raft.CurrentTerm(), State: r.raft.State().String(),
		CommitIndex: r.raft.CommitIndex(), AppliedIndex: r.raft.AppliedIndex()}
	r.Read(func(s *state.State) {
		for _, sv := range f.Configuration().Servers {
			c.Members = append(c.Members, Member{
				ID: string(sv.ID), RaftAddr: string(sv.Address), APIAddr: s.Replicas[string(sv.ID)].APIAddr,
				Voter: sv.Suffrage == raft.Voter, Leader: sv.ID == lid,
			})
		}
	})
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].ID < c.Members[j].ID })
	return c, nil
}

func (r *Replica) membership(err error, op string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %s: %w", ErrNoQuorum, op, err)
	}
	return fmt.Errorf("replica: %s: %w", op, err)
}

// AddNonvoter adds a replica as a non-voter (leader only) and returns the
// index of the last command the leader's state reflects: the joiner is
// caught up once its AppliedIndex reaches it.
func (r *Replica) AddNonvoter(ctx context.Context, id, raftAddr, apiAddr string) (uint64, error) {
	if id == "" || raftAddr == "" {
		return 0, fmt.Errorf("replica: join needs an id and a raft address")
	}
	if apiAddr != "" {
		if _, err := r.Apply(ctx, state.SetReplica{At: time.Now().UTC(), ID: id, APIAddr: apiAddr}); err != nil {
			return 0, err
		}
	}
	f := r.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, r.cfg.ApplyTimeout)
	if err := r.membership(f.Error(), "add non-voter "+id); err != nil {
		return 0, err
	}
	return r.AppliedIndex(), nil
}

// Promote makes a non-voter a voter (leader only).
func (r *Replica) Promote(ctx context.Context, id string) error {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return r.membership(err, "configuration")
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			af := r.raft.AddVoter(s.ID, s.Address, 0, r.cfg.ApplyTimeout)
			return r.membership(af.Error(), "promote "+id)
		}
	}
	return fmt.Errorf("replica: promote %s: %w", id, state.ErrNotFound)
}

// RemoveMember removes a replica from the cluster (leader only).
func (r *Replica) RemoveMember(ctx context.Context, id string) error {
	f := r.raft.RemoveServer(raft.ServerID(id), 0, r.cfg.ApplyTimeout)
	if err := r.membership(f.Error(), "remove "+id); err != nil {
		return err
	}
	if _, err := r.Apply(ctx, state.RemoveReplica{At: time.Now().UTC(), ID: id}); err != nil && !errors.Is(err, ErrNotLeader) {
		return err
	}
	return nil
}

// AppliedIndex is the index of the last entry the state reflects here.
func (r *Replica) AppliedIndex() uint64 {
	r.fsm.mu.RLock()
	defer r.fsm.mu.RUnlock()
	return r.fsm.index
}

// Stats returns raft's own figures (state, term, indexes, snapshot index…).
func (r *Replica) Stats() map[string]string { return r.raft.Stats() }

// Snapshot takes a snapshot now (tests, operators).
func (r *Replica) Snapshot() error {
	if err := r.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("replica: snapshot: %w", err)
	}
	return nil
}

// slogWriter turns hclog's lines into slog records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Info(string(bytes.TrimSpace(p)))
	return len(p), nil
}
