package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/controller/nodetest"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/proto"
)

type rig struct {
	srv   []*controller.Server
	trans []*raft.InmemTransport
	dir   *nodetest.Directory
	token string
}

func inventory(i int) state.Inventory {
	return state.Inventory{Hostname: fmt.Sprintf("mv%d", i), Hypervisor: "sim", MemoryMB: 8192,
		NUMA:     []state.NUMA{{ID: 0, Cores: []uint32{0, 1, 2, 3}, MemoryMB: 8192, Distances: []uint32{10}}},
		Location: state.Location{Rack: "r1", Chassis: "c1", Blade: fmt.Sprint(i)}}
}

func newRig(t *testing.T, nodes int, mods ...func(*controller.Config)) *rig {
	t.Helper()
	r := &rig{dir: nodetest.New()}
	r.token, _, _ = rest.NewToken()
	for i := 1; i <= nodes; i++ {
		r.dir.Add(proto.MAC{0x0c, 0xc4, 0, 0, 0, byte(i)}, inventory(i))
	}
	var peers []replica.Peer
	for i := range 3 {
		addr, tr := raft.NewInmemTransport("")
		r.trans = append(r.trans, tr)
		peers = append(peers, replica.Peer{ID: fmt.Sprintf("c%d", i+1), RaftAddr: string(addr)})
	}
	for i := range r.trans {
		for j := range r.trans {
			if i != j {
				r.trans[i].Connect(r.trans[j].LocalAddr(), r.trans[j])
			}
		}
	}
	for i := range 3 {
		cfg := controller.DefaultConfig()
		cfg.Replica = replicatest.FastConfig()
		cfg.Replica.ID, cfg.Replica.Transport, cfg.Replica.Bootstrap = peers[i].ID, r.trans[i], peers
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.Nodes = r.dir
		cfg.DiscoveryInterval = 500 * time.Millisecond
		cfg.AdminTokens = []string{r.token}
		for _, m := range mods {
			m(&cfg)
		}
		s, err := controller.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.srv = append(r.srv, s)
		t.Cleanup(func() { s.Shutdown(context.Background()) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.dir.Run(ctx, 300*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *rig) leader(t *testing.T, except ...int) int {
	t.Helper()
	reps := make([]*replica.Replica, len(r.srv))
	for i, s := range r.srv {
		reps[i] = s.Replica()
	}
	return replicatest.FindLeader(t, reps, except...)
}

// nodeState asks replica i's REST API for a node's state.
func (r *rig) nodeState(t *testing.T, i int, id string) string {
	req, _ := http.NewRequest("GET", "http://"+r.srv[i].APIAddr()+"/api/nodes/"+id+"/state", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s struct{ State string }
	json.NewDecoder(res.Body).Decode(&s)
	return s.State
}

func (r *rig) count(i int) int {
	var n int
	r.srv[i].Replica().Read(func(s *state.State) { n = len(s.Nodes) })
	return n
}

func TestDiscoveryLivenessAndRecovery(t *testing.T) {
	start := time.Now()
	r := newRig(t, 6)
	l := r.leader(t)
	f := (l + 1) % 3
	replicatest.WaitFor(t, "6 nodes registered", func() bool { return r.count(f) == 6 })
	t.Logf("6 nodes registered %v after start", time.Since(start).Round(time.Millisecond))
	for i := 1; i <= 6; i++ {
		if st := r.nodeState(t, f, fmt.Sprintf("000000%02x", i)); st != "enabled" {
			t.Errorf("node %d: %s, want enabled", i, st)
		}
	}

	// /metrics carries raft and API figures.
	res, err := http.Get("http://" + r.srv[f].APIAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"mvcontroller_raft_term ", "mvcontroller_raft_leader 0", "mvcontroller_raft_applied_index", "mvcontroller_api_requests_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("a follower's /metrics lacks %q", want)
		}
	}

	// Hardware change: the controller's view follows.
	inv := inventory(2)
	inv.MemoryMB = 16384
	r.dir.SetInventory("00000002", inv)
	replicatest.WaitFor(t, "the new inventory", func() bool {
		var mem uint64
		r.srv[f].Replica().Read(func(s *state.State) { mem = s.Nodes["00000002"].Inventory.MemoryMB })
		return mem == 16384
	})

	// A killed node is in error, visible through a follower's REST API.
	killed := time.Now()
	r.dir.SetAlive("00000003", false)
	replicatest.WaitFor(t, "the killed node in error", func() bool { return r.nodeState(t, f, "00000003") == "error" })
	t.Logf("killed node in error after %v (tolerance %v, worst case %v)", time.Since(killed).Round(time.Millisecond),
		controller.DefaultConfig().Liveness.Tolerance, controller.DefaultConfig().Liveness.WorstCase())
	for _, id := range []string{"00000001", "00000002", "00000004", "00000005", "00000006"} {
		if st := r.nodeState(t, f, id); st != "enabled" {
			t.Errorf("live node %s: %s, want enabled", id, st)
		}
	}

	// It comes back through retry.
	r.dir.SetAlive("00000003", true)
	replicatest.WaitFor(t, "the revived node enabled again", func() bool { return r.nodeState(t, f, "00000003") == "enabled" })
	var kinds []string
	r.srv[f].Replica().Read(func(s *state.State) {
		for _, e := range s.Events {
			if e.Node == "00000003" && e.Kind == "state" {
				before, _, _ := strings.Cut(e.Message, ":")
				kinds = append(kinds, before)
			}
		}
	})
	if len(kinds) < 3 || kinds[0] != "enabled -> error" || kinds[1] != "error -> retry" || kinds[2] != "retry -> enabled" {
		t.Errorf("state events of node 3: %q, want enabled -> error, error -> retry, retry -> enabled", kinds)
	}
}

func TestLeaderLossMovesLivenessAndOldTermIsRefused(t *testing.T) {
	r := newRig(t, 3)
	l := r.leader(t)
	replicatest.WaitFor(t, "3 nodes registered", func() bool { return r.count(l) == 3 })
	_, oldTerm := r.srv[l].Replica().Leadership()

	// Cut the leader off: the majority elects a new leader, whose
	// discovery carries the newer term.
	for j := range r.trans {
		if j != l {
			r.trans[l].Disconnect(r.trans[j].LocalAddr())
			r.trans[j].Disconnect(r.trans[l].LocalAddr())
		}
	}
	nl := r.leader(t, l)
	replicatest.WaitFor(t, "the cut-off leader to step down", func() bool { return !r.srv[l].Replica().IsLeader() })
	_, newTerm := r.srv[nl].Replica().Leadership()
	if newTerm <= oldTerm {
		t.Fatalf("new term %d, want above %d", newTerm, oldTerm)
	}
	replicatest.WaitFor(t, "nodes to see the new term", func() bool {
		return errors.Is(r.dir.Probe(context.Background(), "00000001", oldTerm), nodetest.ErrStaleTerm)
	})

	// Liveness now runs on the new leader: a node killed now goes to error.
	r.dir.SetAlive("00000002", false)
	replicatest.WaitFor(t, "node 2 in error under the new leader", func() bool { return r.nodeState(t, nl, "00000002") == "error" })
	if st := r.nodeState(t, nl, "00000001"); st != "enabled" {
		t.Errorf("live node 1 after the leader change: %s, want enabled", st)
	}
}
