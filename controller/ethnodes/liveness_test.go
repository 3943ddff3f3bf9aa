package ethnodes_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/controller/ethnodes"
	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/liveness"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// store is the replicated state of one replica without raft: commands
// apply at once.
type store struct {
	mu sync.Mutex
	st *state.State
}

func (s *store) Read(fn func(*state.State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.st)
}

func (s *store) Apply(ctx context.Context, c state.Command) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ApplyCommand(c)
}

func (s *store) node(id string) state.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.st.Nodes[id]; n != nil {
		return *n
	}
	return state.Node{}
}

// replicaOf is what controller.Server does with a NodeSource, without
// raft: registrations become RegisterNode, every report feeds liveness,
// and the monitor runs as leader of term until the returned stop.
func replicaOf(t *testing.T, src *ethnodes.Source, st *store, term uint64) (stop func()) {
	t.Helper()
	mon, err := liveness.New(liveness.DefaultConfig(), st, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	reports := src.Reports(ctx)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for r := range reports {
			if r.Inventory != nil {
				if _, err := st.Apply(ctx, state.RegisterNode{At: time.Now().UTC(), MAC: r.MAC, Inventory: *r.Inventory}); err != nil {
					t.Errorf("registering %s: %v", r.MAC.NodeID(), err)
				}
			}
			mon.Heartbeat(liveness.Heartbeat{Node: r.MAC.NodeID(), At: r.At, Monitoring: r.Monitoring})
		}
	}()
	go func() { defer wg.Done(); mon.Run(leader.WithTerm(ctx, term)) }()
	if err := src.Discover(ctx, term); err != nil {
		t.Fatal(err)
	}
	return stop
}

func TestControllerPutsAKilledNodeInErrorWithinTheTolerance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		src := r.source(ctl1)
		for i := range 3 {
			r.node(nodeMAC(i), ctl1, smallHardware())
		}
		st := &store{st: state.New()}
		replicaOf(t, src, st, 2)
		synctest.Wait()
		for i := range 3 {
			if n := st.node(nodeMAC(i).NodeID()); n.State() != state.HostEnabled || n.Inventory.MemoryMB != 4096 {
				t.Fatalf("node %d after discovery: state %q, %d MB", i, n.State(), n.Inventory.MemoryMB)
			}
		}

		// Ten quiet seconds: heartbeats keep every node enabled, and carry
		// the monitoring figures into the state.
		time.Sleep(10 * time.Second)
		for i := range 3 {
			if n := st.node(nodeMAC(i).NodeID()); n.State() != state.HostEnabled || n.Monitoring.MaxCPU != 800 {
				t.Fatalf("node %d after 10 s of heartbeats: state %q (%s), max_cpu %d", i, n.State(), n.Reason, n.Monitoring.MaxCPU)
			}
		}

		r.kill(nodeMAC(1))
		killed := time.Now()
		worst := liveness.DefaultConfig().WorstCase() + time.Duration(agentHeartbeat)
		for st.node(nodeMAC(1).NodeID()).State() != state.HostError {
			if time.Since(killed) > worst {
				t.Fatalf("node 1 not in error %v after it was killed (worst case %v)", time.Since(killed), worst)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("killed node in error after %v (synctest time; worst case %v): %s", time.Since(killed), worst, st.node(nodeMAC(1).NodeID()).Reason)
		for _, i := range []int{0, 2} {
			if n := st.node(nodeMAC(i).NodeID()); n.State() != state.HostEnabled {
				t.Errorf("live node %d is %q: %s", i, n.State(), n.Reason)
			}
		}
	})
}

// agentHeartbeat is the node agent's default heartbeat interval: the
// silence before a kill may be that much older than the kill.
const agentHeartbeat = time.Second

// A new leader's first discovery moves every node's heartbeats to it: its
// liveness, which starts with a full tolerance of grace, never fails a
// live node, and the old leader's probes are refused.
func TestANewControllerLeaderTakesOverTheHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		old, cur := r.source(ctl1), r.source(ctl2)
		for i := range 3 {
			r.node(nodeMAC(i), ctl1, smallHardware())
		}
		st1 := &store{st: state.New()}
		stop := replicaOf(t, old, st1, 2)
		time.Sleep(5 * time.Second)
		stop() // leadership lost

		st2 := &store{st: state.New()}
		heard := cur.Reports(t.Context())
		replicaOf(t, cur, st2, 3)
		time.Sleep(10 * time.Second)
		beats := map[proto.MAC]int{}
	drain:
		for {
			select {
			case r := <-heard:
				if r.Monitoring != nil {
					beats[r.MAC]++
				}
			default:
				break drain
			}
		}
		for i := range 3 {
			m := nodeMAC(i)
			if n := st2.node(m.NodeID()); n.State() != state.HostEnabled || n.Monitoring.MaxCPU != 800 {
				t.Errorf("node %d at the new leader: state %q (%s), max_cpu %d", i, n.State(), n.Reason, n.Monitoring.MaxCPU)
			}
			if beats[m] < 9 {
				t.Errorf("the new leader got %d heartbeats from node %d in 10 s, want about 10", beats[m], i)
			}
			if err := old.Probe(t.Context(), m.NodeID(), 2); !errors.Is(err, nodeclient.ErrStaleTerm) {
				t.Errorf("the old leader's probe of node %d: %v, want ErrStaleTerm", i, err)
			}
		}
	})
}
