package replica

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/proto"
)

// testCluster is n replicas over raft.InmemTransport.
type testCluster struct {
	t      *testing.T
	reps   []*Replica
	trans  []*raft.InmemTransport
	stores []*raft.InmemStore
	snaps  []*raft.InmemSnapshotStore
	cfgs   []Config
}

func fastConfig() Config {
	c := DefaultConfig()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.TrailingLogs = 5
	return c
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	tc := &testCluster{t: t}
	var peers []Peer
	for i := range n {
		addr, tr := raft.NewInmemTransport("")
		tc.trans = append(tc.trans, tr)
		peers = append(peers, Peer{ID: fmt.Sprintf("c%d", i+1), RaftAddr: string(addr), APIAddr: fmt.Sprintf("api-c%d:80", i+1)})
	}
	for i := range tc.trans {
		for j := range tc.trans {
			if i != j {
				tc.trans[i].Connect(tc.trans[j].LocalAddr(), tc.trans[j])
			}
		}
	}
	for i := range n {
		cfg := fastConfig()
		cfg.ID, cfg.APIAddr, cfg.Transport, cfg.Bootstrap = peers[i].ID, peers[i].APIAddr, tc.trans[i], peers
		tc.cfgs = append(tc.cfgs, cfg)
		tc.reps = append(tc.reps, nil)
	}
	for i := range n {
		tc.start(i)
	}
	t.Cleanup(func() {
		for _, r := range tc.reps {
			if r != nil {
				r.Shutdown()
			}
		}
	})
	return tc
}

// start (re)starts replica i over its kept in-memory stores.
func (tc *testCluster) start(i int) {
	tc.t.Helper()
	for len(tc.stores) <= i {
		tc.stores = append(tc.stores, raft.NewInmemStore())
		tc.snaps = append(tc.snaps, raft.NewInmemSnapshotStore())
	}
	r, err := newWithStores(tc.cfgs[i], tc.stores[i], tc.snaps[i])
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.reps[i] = r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling real raft goroutines with a bound
	}
}

func (tc *testCluster) leader(except ...int) int {
	tc.t.Helper()
	idx := -1
	waitFor(tc.t, "a leader", func() bool {
		for i, r := range tc.reps {
			if r == nil || contains(except, i) {
				continue
			}
			if r.IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// isolate cuts replica i off from every other replica.
func (tc *testCluster) isolate(i int) {
	for j := range tc.trans {
		if j != i {
			tc.trans[i].Disconnect(tc.trans[j].LocalAddr())
			tc.trans[j].Disconnect(tc.trans[i].LocalAddr())
		}
	}
}

func (tc *testCluster) heal(i int) {
	for j := range tc.trans {
		if j != i {
			tc.trans[i].Connect(tc.trans[j].LocalAddr(), tc.trans[j])
			tc.trans[j].Connect(tc.trans[i].LocalAddr(), tc.trans[i])
		}
	}
}

func register(ctx context.Context, r *Replica, k int) error {
	_, err := r.Apply(ctx, state.RegisterNode{At: time.Unix(int64(k), 0).UTC(), MAC: proto.MAC{2, 0, 0, 0, byte(k >> 8), byte(k)}})
	return err
}

// write registers node k through whichever replica leads (except those in
// except), retrying when leadership moves under load.
func (tc *testCluster) write(k int, except ...int) {
	tc.t.Helper()
	for range 50 {
		err := register(tc.t.Context(), tc.reps[tc.leader(except...)], k)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNoQuorum) && !errors.Is(err, ErrNotLeader) {
			tc.t.Fatalf("write %d: %v", k, err)
		}
	}
	tc.t.Fatalf("write %d: no stable leader", k)
}

func nodeCount(r *Replica) int {
	var n int
	r.Read(func(s *state.State) { n = len(s.Nodes) })
	return n
}

func TestElectionReplicationAndForwardInfo(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	ctx := t.Context()
	for k := 1; k <= 10; k++ {
		tc.write(k)
	}
	l = tc.leader()
	for i, r := range tc.reps {
		waitFor(t, fmt.Sprintf("replica %d to apply 10 nodes", i), func() bool { return nodeCount(r) == 10 })
		if i == l {
			continue
		}
		if err := register(ctx, r, 99); !errors.Is(err, ErrNotLeader) {
			t.Errorf("write on follower %d: %v, want ErrNotLeader", i, err)
		}
		waitFor(t, "the leader's API address", func() bool {
			a, ok := r.LeaderAPI()
			return ok && a == tc.cfgs[l].APIAddr
		})
	}
	c, err := tc.reps[l].Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if c.Leader != tc.cfgs[l].ID || len(c.Members) != 3 || c.Term == 0 {
		t.Errorf("cluster view %+v: want leader %s, 3 members, a term", c, tc.cfgs[l].ID)
	}
}

func TestPartitionedFollowerCatchesUp(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	f := (l + 1) % 3
	tc.isolate(f)
	for k := 1; k <= 20; k++ {
		tc.write(k, f) // writes go on with two of three replicas
	}
	if n := nodeCount(tc.reps[f]); n != 0 {
		t.Fatalf("the cut-off follower applied %d writes", n)
	}
	tc.heal(f)
	waitFor(t, "the healed follower to catch up", func() bool { return nodeCount(tc.reps[f]) == 20 })
}

func TestMinorityLeaderStopsLoops(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	var running atomic.Int32
	var stoppedTerm atomic.Uint64
	started := make(chan uint64, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		leader.Run(ctx, tc.reps[l], "probe", nil, func(ctx context.Context) error {
			term, _ := leader.Term(ctx)
			running.Add(1)
			started <- term
			<-ctx.Done()
			stoppedTerm.Store(term)
			running.Add(-1)
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	term := <-started
	tc.isolate(l)
	waitFor(t, "the minority leader to stop its loop", func() bool { return running.Load() == 0 })
	if stoppedTerm.Load() != term {
		t.Errorf("stopped loop of term %d, want %d", stoppedTerm.Load(), term)
	}
	if err := register(t.Context(), tc.reps[l], 1); !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoQuorum) {
		t.Errorf("write on the isolated old leader: %v, want ErrNotLeader or ErrNoQuorum", err)
	}
	nl := tc.leader(l)
	if _, nt := tc.reps[nl].Leadership(); nt <= term {
		t.Errorf("new leader's term %d, want above %d", nt, term)
	}
	tc.write(2, l) // the majority takes writes
	tc.heal(l)
	waitFor(t, "the old leader to learn the write", func() bool { return nodeCount(tc.reps[l]) == 1 })
	var has bool
	tc.reps[l].Read(func(s *state.State) { _, has = s.Nodes["00000001"] })
	if has {
		t.Error("the write proposed on the minority leader was applied")
	}
}

func TestSnapshotRestoreOnRestart(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	for k := 1; k <= 5; k++ {
		tc.write(k)
	}
	if err := tc.reps[l].Snapshot(); err != nil {
		t.Fatal(err)
	}
	for k := 6; k <= 8; k++ { // entries after the snapshot are replayed from the log
		tc.write(k)
	}
	if err := tc.reps[l].Shutdown(); err != nil {
		t.Fatal(err)
	}
	tc.reps[l] = nil
	tc.start(l)
	waitFor(t, "the restarted replica to restore 8 nodes", func() bool { return nodeCount(tc.reps[l]) == 8 })
}

func TestLaggingFollowerGetsSnapshotThatReplacesItsState(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	f := (l + 1) % 3
	for k := 1; k <= 3; k++ {
		tc.write(k)
	}
	waitFor(t, "the follower to apply 3 nodes", func() bool { return nodeCount(tc.reps[f]) == 3 })
	tc.isolate(f)
	// While it is cut off the cluster deletes a node it knows and adds 40,
	// then compacts its log: the follower can only catch up from a snapshot.
	nl := tc.leader(f)
	if _, err := tc.reps[nl].Apply(t.Context(), state.RemoveNode{At: time.Unix(0, 0).UTC(), Node: "00000001"}); err != nil {
		t.Fatal(err)
	}
	for k := 10; k < 50; k++ {
		tc.write(k, f)
	}
	for i := range tc.reps {
		if i != f {
			if err := tc.reps[i].Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tc.heal(f)
	waitFor(t, "the follower to install the snapshot", func() bool { return nodeCount(tc.reps[f]) == 42 })
	// Raft records the installed snapshot just after the FSM restored it.
	waitFor(t, "the follower to record an installed snapshot (else it caught up from the log and the test did not exercise restore)",
		func() bool { idx := tc.reps[f].Stats()["last_snapshot_index"]; return idx != "0" && idx != "" })
	tc.reps[f].Read(func(s *state.State) {
		if _, ok := s.Nodes["00000001"]; ok {
			t.Error("restore kept a node the snapshot does not have: it must replace the state")
		}
	})
}

func TestJoinPromoteRemove(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	for k := 1; k <= 5; k++ {
		tc.write(k)
	}
	// A fourth replica with no bootstrap configuration joins.
	addr, tr := raft.NewInmemTransport("")
	for _, o := range tc.trans {
		o.Connect(addr, tr)
		tr.Connect(o.LocalAddr(), o)
	}
	tc.trans = append(tc.trans, tr)
	cfg := fastConfig()
	cfg.ID, cfg.APIAddr, cfg.Transport = "c4", "api-c4:80", tr
	tc.cfgs = append(tc.cfgs, cfg)
	tc.reps = append(tc.reps, nil)
	tc.start(3)
	idx, err := tc.reps[l].AddNonvoter(t.Context(), "c4", string(addr), "api-c4:80")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := tc.reps[l].Cluster()
	if m := member(c, "c4"); m == nil || m.Voter {
		t.Fatalf("after join c4 is %+v, want a non-voter", m)
	}
	waitFor(t, "c4 to catch up", func() bool { return tc.reps[3].AppliedIndex() >= idx })
	if n := nodeCount(tc.reps[3]); n != 5 {
		t.Fatalf("caught-up joiner has %d nodes, want 5", n)
	}
	if err := tc.reps[l].Promote(t.Context(), "c4"); err != nil {
		t.Fatal(err)
	}
	c, _ = tc.reps[l].Cluster()
	if m := member(c, "c4"); m == nil || !m.Voter || m.APIAddr != "api-c4:80" {
		t.Fatalf("after promotion c4 is %+v, want a voter with its API address", m)
	}
	if err := tc.reps[l].RemoveMember(t.Context(), "c4"); err != nil {
		t.Fatal(err)
	}
	c, _ = tc.reps[l].Cluster()
	if m := member(c, "c4"); m != nil {
		t.Fatalf("after removal c4 is still %+v", m)
	}
}

func member(c Cluster, id string) *Member {
	for i := range c.Members {
		if c.Members[i].ID == id {
			return &c.Members[i]
		}
	}
	return nil
}
