// Package replicatest runs clusters of controller replicas in memory for
// tests: raft.InmemTransport between them, in-memory stores, short timers,
// and partitions by disconnecting transports.
package replicatest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/mvstack/mvstack/controller/replica"
)

// Cluster is n replicas bootstrapped together.
type Cluster struct {
	Replicas []*replica.Replica
	Trans    []*raft.InmemTransport
	Configs  []replica.Config
}

// FastConfig is replica.DefaultConfig with timers short enough for tests.
func FastConfig() replica.Config {
	c := replica.DefaultConfig()
	c.HeartbeatTimeout = 500 * time.Millisecond
	c.ElectionTimeout = 500 * time.Millisecond
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	return c
}

// New starts len(apiAddrs) replicas named c1, c2, …; replica i advertises
// apiAddrs[i]. They are shut down when the test ends.
func New(t testing.TB, apiAddrs []string) *Cluster {
	t.Helper()
	c := &Cluster{}
	var peers []replica.Peer
	for i := range apiAddrs {
		addr, tr := raft.NewInmemTransport("")
		c.Trans = append(c.Trans, tr)
		peers = append(peers, replica.Peer{ID: fmt.Sprintf("c%d", i+1), RaftAddr: string(addr), APIAddr: apiAddrs[i]})
	}
	for i := range c.Trans {
		for j := range c.Trans {
			if i != j {
				c.Trans[i].Connect(c.Trans[j].LocalAddr(), c.Trans[j])
			}
		}
	}
	for i := range apiAddrs {
		cfg := FastConfig()
		cfg.ID, cfg.APIAddr, cfg.Transport, cfg.Bootstrap = peers[i].ID, peers[i].APIAddr, c.Trans[i], peers
		r, err := replica.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Configs = append(c.Configs, cfg)
		c.Replicas = append(c.Replicas, r)
		t.Cleanup(func() { r.Shutdown() })
	}
	return c
}

// Add starts one more replica, connected to every other but in no
// configuration: it takes part once a leader adds it (AddNonvoter). It
// returns the replica and its raft address.
func (c *Cluster) Add(t testing.TB, id, apiAddr string) (*replica.Replica, string) {
	t.Helper()
	addr, tr := raft.NewInmemTransport("")
	for _, o := range c.Trans {
		o.Connect(addr, tr)
		tr.Connect(o.LocalAddr(), o)
	}
	cfg := FastConfig()
	cfg.ID, cfg.APIAddr, cfg.Transport = id, apiAddr, tr
	r, err := replica.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	c.Trans = append(c.Trans, tr)
	c.Configs = append(c.Configs, cfg)
	c.Replicas = append(c.Replicas, r)
	return r, string(addr)
}

// WaitFor polls cond until it holds, failing the test after 15 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling real raft timers, bounded
	}
}

// Leader waits for a leader among the replicas not in except and returns
// its index.
func (c *Cluster) Leader(t testing.TB, except ...int) int {
	t.Helper()
	return FindLeader(t, c.Replicas, except...)
}

// FindLeader waits until one of reps (nil entries are skipped) not in except
// leads, and returns its index.
func FindLeader(t testing.TB, reps []*replica.Replica, except ...int) int {
	t.Helper()
	idx := -1
	WaitFor(t, "a leader", func() bool {
		for i, r := range reps {
			if r != nil && !slices.Contains(except, i) && r.IsLeader() {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// Isolate cuts replica i off from every other replica.
func (c *Cluster) Isolate(i int) {
	for j := range c.Trans {
		if j != i {
			c.Trans[i].Disconnect(c.Trans[j].LocalAddr())
			c.Trans[j].Disconnect(c.Trans[i].LocalAddr())
		}
	}
}

// Heal reconnects replica i to every other replica.
func (c *Cluster) Heal(i int) {
	for j := range c.Trans {
		if j != i {
			c.Trans[i].Connect(c.Trans[j].LocalAddr(), c.Trans[j])
			c.Trans[j].Connect(c.Trans[i].LocalAddr(), c.Trans[i])
		}
	}
}
