package volumes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// Errors of the operator actions. State errors (state.ErrNotFound,
// state.ErrInvalid with a *state.FieldError) come through unchanged.
var (
	// ErrNotLeader: this replica does not lead (or its loop has not
	// started yet); retry at the leader.
	ErrNotLeader = errors.New("volumes: this controller replica does not lead")
	// ErrNodeFailed: the node did not do what it was asked (it refused or
	// did not answer); the error carries the node's.
	ErrNodeFailed = errors.New("volumes: node failed")
	// ErrNothingToRepair: a manual repair found no replica to repair; the
	// message says why. It wraps state.ErrInvalid.
	ErrNothingToRepair = fmt.Errorf("%w: nothing to repair", state.ErrInvalid)
)

// Nodes reaches the nodes' storage methods: ethnodes.Source over the
// control protocol, nodetest.Directory in memory. The methods mirror
// nodeclient.Client's storage calls one to one; term is the leader's raft
// term (nodes refuse older ones). Implementations must be safe for
// concurrent use.
type Nodes interface {
	Assign(ctx context.Context, node proto.MAC, term uint64, replicas []nodeclient.ReplicaAssignment) (nodeclient.AssignReply, error)
	Attach(ctx context.Context, node proto.MAC, term uint64, v nodeclient.VolumeSpec, socket string) (nodeclient.VolumeStatus, error)
	Detach(ctx context.Context, node proto.MAC, term uint64, volume string) (nodeclient.VolumeStatus, error)
	VolumeStatus(ctx context.Context, node proto.MAC, volume string) (nodeclient.VolumeStatus, error)
	Repair(ctx context.Context, node proto.MAC, term uint64, v nodeclient.VolumeSpec, stale string) (nodeclient.ResyncReport, error)
	Fence(ctx context.Context, node proto.MAC, term uint64, volume string, epoch uint64, allow []proto.MAC) (nodeclient.AssignReply, error)
}

// Handler answers the requests nodes send the controller
// (nodeclient.MethodSetInSync, nodeclient.MethodVolume). *Manager is one;
// ethnodes.Source.HandleStorage serves it on the control protocol.
type Handler interface {
	SetInSync(ctx context.Context, from proto.MAC, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error)
	Volume(ctx context.Context, from proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeSpec, error)
}

// Store is the replicated state (*replica.Replica).
type Store interface {
	Read(fn func(*state.State))
	Apply(ctx context.Context, c state.Command) (any, error)
}

// Config configures a Manager. Start from DefaultConfig.
type Config struct {
	Store Store // required
	Nodes Nodes // required
	// Self is this replica's MAC on the management interface: the reserve
	// list of a fenced volume that no node is attached to.
	Self proto.MAC
	// PushInterval is how often the loop compares the nodes' assignment
	// lists with what it sent them, fences and schedules repairs.
	PushInterval time.Duration
	// HealInterval: every node's list is sent again this often.
	HealInterval time.Duration
	// RetryMin and RetryMax bound the backoff of a failed push.
	RetryMin, RetryMax time.Duration
	// CallTimeout bounds node calls other than a repair's copy.
	CallTimeout time.Duration
	// EpochGrace: an in-sync replica of an attached volume is told of an
	// epoch raise through its assignment only this long after the raise.
	// The writer registers the new epoch on it first (that raises the
	// export's epoch with the writer already on it); an export raised by
	// the assignment before would refuse the writer's requests still in
	// flight at the old epoch, which fences the writer.
	EpochGrace time.Duration
	// Now is the clock; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil discards
}

// DefaultConfig: lists compared every 250 ms and sent to every node every
// 30 s, failed pushes retried after 500 ms doubling to 30 s, 5 s per call,
// epoch raises reach a writer's in-sync replicas by assignment after 2 s.
func DefaultConfig() Config {
	return Config{
		PushInterval: 250 * time.Millisecond,
		HealInterval: 30 * time.Second,
		RetryMin:     500 * time.Millisecond,
		RetryMax:     30 * time.Second,
		CallTimeout:  5 * time.Second,
		EpochGrace:   2 * time.Second,
	}
}

// Validate checks the fields; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("volumes: Config.Store is nil")
	case c.Nodes == nil:
		return errors.New("volumes: Config.Nodes is nil")
	case c.PushInterval <= 0:
		return fmt.Errorf("volumes: Config.PushInterval %v must be positive", c.PushInterval)
	case c.HealInterval < c.PushInterval:
		return fmt.Errorf("volumes: Config.HealInterval %v is below PushInterval %v", c.HealInterval, c.PushInterval)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("volumes: Config.RetryMin %v and RetryMax %v: want 0 < RetryMin <= RetryMax", c.RetryMin, c.RetryMax)
	case c.CallTimeout <= 0:
		return fmt.Errorf("volumes: Config.CallTimeout %v must be positive", c.CallTimeout)
	case c.EpochGrace < 0:
		return fmt.Errorf("volumes: Config.EpochGrace %v is negative", c.EpochGrace)
	}
	return nil
}

// Manager is the storage side of one controller replica. It is safe for
// concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	kick chan struct{} // wakes the loop early

	mu sync.Mutex
	// The running leader loop: its context (work it starts ends with the
	// leadership) and term; nil when not leading.
	loop *loopState
	// sessions: the latest control-protocol session epoch heard per node
	// (every replica keeps it, so a new leader knows).
	sessions map[string]uint64
}

// loopState is what one leadership's loop keeps; it is dropped with it.
type loopState struct {
	ctx  context.Context
	term uint64
	wg   sync.WaitGroup

	// pushes, by node id
	sent     map[string][]nodeclient.ReplicaAssignment // taken by the node
	inflight map[string]bool
	failures map[string]int
	retryAt  map[string]time.Time
	lastHeal time.Time

	fencing map[string]bool // volume ids being fenced by the loop

	// repairs
	nextPass map[string]time.Time // by datastore
	queue    []repairKey
	running  map[repairKey]string // → the repairing node
}

// New returns a Manager; call Run on the leader.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, now: cfg.Now, kick: make(chan struct{}, 1), sessions: map[string]uint64{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

// Heard records a node's control-protocol session epoch (from a heartbeat
// or registration; 0 = unknown). A new one means the node restarted: its
// assignments are sent again at once.
func (m *Manager) Heard(node string, session uint64) {
	if session == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[node] == session {
		return
	}
	m.sessions[node] = session
	if l := m.loop; l != nil {
		delete(l.sent, node)
		delete(l.retryAt, node)
		delete(l.failures, node)
	}
	m.wake()
}

// wake makes the loop step at once.
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run is the leader-only loop (leader.Run): assignment pushes, fencing of
// volumes attached to dead nodes, repair scheduling. It returns when ctx
// ends, after the work it started has stopped.
func (m *Manager) Run(ctx context.Context) error {
	l := m.start(ctx)
	defer m.stop(l)
	t := time.NewTicker(m.cfg.PushInterval)
	defer t.Stop()
	for {
		m.step(l, m.now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.kick:
		}
	}
}

func (m *Manager) start(ctx context.Context) *loopState {
	term, _ := leader.Term(ctx)
	l := &loopState{ctx: ctx, term: term,
		sent: map[string][]nodeclient.ReplicaAssignment{}, inflight: map[string]bool{},
		failures: map[string]int{}, retryAt: map[string]time.Time{}, fencing: map[string]bool{},
		nextPass: map[string]time.Time{}, running: map[repairKey]string{}}
	m.mu.Lock()
	m.loop = l
	m.mu.Unlock()
	return l
}

// stop waits for the work l started (its context has ended).
func (m *Manager) stop(l *loopState) {
	m.mu.Lock()
	if m.loop == l {
		m.loop = nil
	}
	m.mu.Unlock()
	l.wg.Wait()
}

// current returns the running loop, or ErrNotLeader.
func (m *Manager) current() (*loopState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loop == nil || m.loop.ctx.Err() != nil {
		return nil, ErrNotLeader
	}
	return m.loop, nil
}

// step does one round of the loop's work at now.
func (m *Manager) step(l *loopState, now time.Time) {
	st := m.read()
	m.pushAll(l, st, now)
	m.fenceDead(l, st)
	m.scheduleRepairs(l, st, now)
}

// goWork runs fn under l's wait group.
func (l *loopState) goWork(fn func()) {
	l.wg.Add(1)
	go func() { defer l.wg.Done(); fn() }()
}

// begin starts an operation on volume: the running loop (or
// ErrNotLeader), a snapshot of the state and the volume in it.
func (m *Manager) begin(volume string) (*loopState, snapshot, *state.Volume, error) {
	l, err := m.current()
	if err != nil {
		return nil, snapshot{}, nil, err
	}
	st := m.read()
	v, err := st.find(volume)
	if err != nil {
		return nil, snapshot{}, nil, err
	}
	return l, st, v, nil
}

// read returns a copy of what the manager needs of the state.
func (m *Manager) read() snapshot {
	var st snapshot
	m.cfg.Store.Read(func(s *state.State) { st = takeSnapshot(s) })
	return st
}

// apply proposes c, mapping a lost leadership to ErrNotLeader.
func (m *Manager) apply(ctx context.Context, c state.Command) (any, error) {
	res, err := m.cfg.Store.Apply(ctx, c)
	if err != nil && !errors.Is(err, state.ErrInvalid) && !errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	return res, err
}

// callCtx bounds one node call.
func (m *Manager) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.cfg.CallTimeout)
}
