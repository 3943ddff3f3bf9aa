// Package nodetest is an in-memory controller.NodeSource: simulated nodes
// that answer discovery with their inventory, send heartbeats, answer probes
// while alive, and refuse commands from a raft term older than the newest
// they have seen, as real nodes do over the control protocol. The nodes
// also answer the storage methods (volumes.Nodes: assign, attach, detach,
// status, repair, fence) and record every such call (storage.go).
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// Errors of probes.
var (
	ErrDead      = errors.New("nodetest: node does not answer")
	ErrStaleTerm = errors.New("nodetest: command from an older term refused")
	ErrUnknown   = errors.New("nodetest: no such node")
)

type node struct {
	mac     proto.MAC
	inv     state.Inventory
	mon     state.Monitoring
	alive   bool
	term    uint64 // newest term seen
	session uint64 // control-protocol session epoch, new at each Restart
	// storage (storage.go)
	assigned []nodeclient.ReplicaAssignment
	attached map[string]nodeclient.VolumeStatus
}

// Directory is a set of simulated nodes shared by every replica of a test
// cluster. Each replica's Reports call gets its own stream.
type Directory struct {
	mu      sync.Mutex
	nodes   map[string]*node
	subs    map[chan controller.Report]struct{}
	refused int
	// storage (storage.go)
	calls []Call
	hook  func(ctx context.Context, c Call) (any, error)
}

var _ controller.NodeSource = (*Directory)(nil)

// New returns an empty directory.
func New() *Directory {
	return &Directory{nodes: map[string]*node{}, subs: map[chan controller.Report]struct{}{}}
}

// Add adds a live node; it registers at the next discovery.
func (d *Directory) Add(mac proto.MAC, inv state.Inventory) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nodes[mac.NodeID()] = &node{mac: mac, inv: inv, alive: true, session: 1, attached: map[string]nodeclient.VolumeStatus{}}
}

// SetAlive kills (false) or revives (true) a node: a dead node sends no
// heartbeats and answers neither discovery nor probes.
func (d *Directory) SetAlive(id string, alive bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.nodes[id]; n != nil {
		n.alive = alive
	}
}

// SetInventory changes a node's hardware; it re-registers at once.
func (d *Directory) SetInventory(id string, inv state.Inventory) {
	d.mu.Lock()
	n := d.nodes[id]
	if n == nil {
		d.mu.Unlock()
		return
	}
	n.inv = inv
	r := controller.Report{MAC: n.mac, At: time.Now(), Inventory: &inv}
	d.mu.Unlock()
	d.send(r)
}

// SetMonitoring sets the figures the node's heartbeats carry.
func (d *Directory) SetMonitoring(id string, m state.Monitoring) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.nodes[id]; n != nil {
		n.mon = m
	}
}

// Refused counts commands refused for carrying an older term.
func (d *Directory) Refused() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused
}

// Beat sends one heartbeat from every live node.
func (d *Directory) Beat() {
	d.mu.Lock()
	var rs []controller.Report
	for _, n := range d.nodes {
		if n.alive {
			m := n.mon
			rs = append(rs, controller.Report{MAC: n.mac, At: time.Now(), Monitoring: &m, Session: n.session})
		}
	}
	d.mu.Unlock()
	for _, r := range rs {
		d.send(r)
	}
}

// Run sends heartbeats every interval until ctx ends.
func (d *Directory) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d.Beat()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Directory) send(r controller.Report) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- r:
		default: // a slow replica drops reports, as a lossy link would
		}
	}
}

// Reports implements controller.NodeSource.
func (d *Directory) Reports(ctx context.Context) <-chan controller.Report {
	ch := make(chan controller.Report, 1024)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	go func() {
		<-ctx.Done()
		d.mu.Lock()
		delete(d.subs, ch)
		close(ch)
		d.mu.Unlock()
	}()
	return ch
}

// accept applies the term rule; d.mu is held.
func (d *Directory) accept(n *node, term uint64) error {
	if term < n.term {
		d.refused++
		return fmt.Errorf("%w: node %s saw term %d, command has %d", ErrStaleTerm, n.mac.NodeID(), n.term, term)
	}
	n.term = term
	return nil
}

// Discover implements controller.NodeSource: live nodes answer with their
// inventory.
func (d *Directory) Discover(ctx context.Context, term uint64) error {
	d.mu.Lock()
	var rs []controller.Report
	for _, n := range d.nodes {
		if n.alive && d.accept(n, term) == nil {
			inv := n.inv
			rs = append(rs, controller.Report{MAC: n.mac, At: time.Now(), Inventory: &inv, Session: n.session})
		}
	}
	d.mu.Unlock()
	for _, r := range rs {
		d.send(r)
	}
	return nil
}

// Probe implements controller.NodeSource.
func (d *Directory) Probe(ctx context.Context, id string, term uint64) error {
	d.mu.Lock()
	n := d.nodes[id]
	var err error
	switch {
	case n == nil:
		err = ErrUnknown
	case !n.alive:
		err = ErrDead
	default:
		err = d.accept(n, term)
	}
	d.mu.Unlock()
	if errors.Is(err, ErrDead) {
		<-ctx.Done() // a dead node never answers: the probe times out
	}
	return err
}
