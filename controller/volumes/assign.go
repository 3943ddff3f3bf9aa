package volumes

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// snapshot is what the manager reads of the state. The values behind the
// pointers never change (Apply replaces them), so copies of the map and
// slices are a consistent view.
type snapshot struct {
	nodes      map[string]*state.Node
	datastores []*state.Datastore // in id order
	volumes    []*state.Volume    // in id order
}

func takeSnapshot(s *state.State) snapshot {
	return snapshot{nodes: maps.Clone(s.Nodes), datastores: s.SortedDatastores(), volumes: s.SortedVolumes()}
}

func (st snapshot) volume(id string) *state.Volume {
	for _, v := range st.volumes {
		if v.ID == id {
			return v
		}
	}
	return nil
}

func (st snapshot) datastore(id string) *state.Datastore {
	for _, d := range st.datastores {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// find is volume id, or state.ErrNotFound naming it.
func (st snapshot) find(id string) (*state.Volume, error) {
	if v := st.volume(id); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("%w: volume %q", state.ErrNotFound, id)
}

// mac is node id's MAC, zero when it is not registered.
func (st snapshot) mac(id string) proto.MAC {
	if n := st.nodes[id]; n != nil {
		return n.MAC
	}
	return proto.MAC{}
}

// reachable: registered, not taken offline, not in error.
func (st snapshot) reachable(id string) bool {
	n := st.nodes[id]
	return n != nil && n.Admin != state.AdminOffline && n.Health != state.HealthError
}

// alive: reachable and its health is ok (not retrying after an error).
func (st snapshot) alive(id string) bool {
	n := st.nodes[id]
	return st.reachable(id) && n.Health == state.HealthOK
}

// diskName is the inventory name of the disk with storage id disk on
// node, "" when the node does not report it.
func (st snapshot) diskName(node, disk string) string {
	n := st.nodes[node]
	if n == nil {
		return ""
	}
	for _, d := range n.Inventory.Disks {
		if state.DiskID(node, d.Name) == disk {
			return d.Name
		}
	}
	return ""
}

// Assignments returns the list of replicas each registered node holds, by
// node id, in volume id order; a node with none has an empty list. A
// replica whose disk its node no longer reports is left out.
func Assignments(s *state.State) map[string][]nodeclient.ReplicaAssignment {
	return takeSnapshot(s).assignments()
}

func (st snapshot) assignments() map[string][]nodeclient.ReplicaAssignment {
	out := make(map[string][]nodeclient.ReplicaAssignment, len(st.nodes))
	for id := range st.nodes {
		out[id] = []nodeclient.ReplicaAssignment{}
	}
	for _, v := range st.volumes {
		for _, r := range v.Replicas {
			if _, ok := out[r.Node]; !ok {
				continue
			}
			name := st.diskName(r.Node, r.Disk)
			if name == "" {
				continue
			}
			out[r.Node] = append(out[r.Node], nodeclient.ReplicaAssignment{Volume: v.ID, Name: v.Name, Disk: name,
				Shelf: r.Shelf, Slot: r.Slot, SizeMB: v.SizeMB, Thick: v.Thick, Epoch: v.Epoch,
				InSync: slices.Contains(v.InSync, r.Node)})
		}
	}
	return out
}

// Spec is what a node needs to open v: its replicas with their nodes'
// MACs and in-sync flags, at v's epoch.
func Spec(s *state.State, v *state.Volume) nodeclient.VolumeSpec {
	return takeSnapshot(s).spec(v)
}

func (st snapshot) spec(v *state.Volume) nodeclient.VolumeSpec {
	sp := nodeclient.VolumeSpec{ID: v.ID, Name: v.Name, SizeMB: v.SizeMB, Epoch: v.Epoch, Replicas: []nodeclient.SpecReplica{}}
	for _, r := range v.Replicas {
		sp.Replicas = append(sp.Replicas, nodeclient.SpecReplica{Node: r.Node, MAC: st.mac(r.Node), Shelf: r.Shelf, Slot: r.Slot,
			InSync: slices.Contains(v.InSync, r.Node)})
	}
	return sp
}

// pushAll sends each reachable node its list when it differs from the
// last one it took, after a failure's backoff; every HealInterval every
// list is sent again.
func (m *Manager) pushAll(l *loopState, st snapshot, now time.Time) {
	want := st.assignments()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(l.lastHeal) >= m.cfg.HealInterval {
		l.lastHeal = now
		clear(l.sent)
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if !st.reachable(id) || l.inflight[id] || now.Before(l.retryAt[id]) {
			continue
		}
		list := m.withheld(st, want[id], l.sent[id], now)
		if prev, ok := l.sent[id]; ok && slices.Equal(prev, list) {
			continue
		}
		l.inflight[id] = true
		mac := st.mac(id)
		l.goWork(func() { m.push(l, id, mac, list) })
	}
}

// push sends one node its list and records the outcome.
func (m *Manager) push(l *loopState, id string, mac proto.MAC, list []nodeclient.ReplicaAssignment) {
	ctx, cancel := m.callCtx(l.ctx)
	rep, err := m.cfg.Nodes.Assign(ctx, mac, l.term, list)
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(l.inflight, id)
	if err != nil {
		if l.ctx.Err() != nil {
			return
		}
		l.failures[id]++
		d := m.cfg.RetryMin << min(l.failures[id]-1, 16)
		if errors.Is(err, proto.ErrUnknownMethod) {
			d = m.cfg.RetryMax // a node without a storage side: ask rarely
		}
		d = min(d, m.cfg.RetryMax)
		l.retryAt[id] = m.now().Add(d)
		lvl := slog.LevelWarn
		if l.failures[id] > 1 {
			lvl = slog.LevelDebug // said once per outage
		}
		m.log.Log(l.ctx, lvl, "sending a node its volume replicas failed; retrying", "node", id, "replicas", len(list), "retry_in", d,
			"failures", l.failures[id], "err", err)
		return
	}
	for _, r := range rep.Replicas {
		if r.Error != "" {
			m.log.Warn("node does not serve a replica", "node", id, "volume", r.Volume, "shelf", r.Shelf, "slot", r.Slot, "err", r.Error)
		}
	}
	l.sent[id] = list
	delete(l.failures, id)
	delete(l.retryAt, id)
	m.log.Debug("node took its volume replicas", "node", id, "replicas", len(list))
}

// withheld returns list with the epoch raises an attached volume's in-sync
// replicas must not hear of yet (Config.EpochGrace) held back at the epoch
// last sent; m.mu is held.
func (m *Manager) withheld(st snapshot, list, sent []nodeclient.ReplicaAssignment, now time.Time) []nodeclient.ReplicaAssignment {
	var out []nodeclient.ReplicaAssignment
	for i, a := range list {
		if !a.InSync {
			continue
		}
		k := slices.IndexFunc(sent, func(p nodeclient.ReplicaAssignment) bool { return p.Volume == a.Volume })
		if k < 0 || sent[k].Epoch >= a.Epoch {
			continue // no raise to hold back
		}
		v := st.volume(a.Volume)
		if v == nil || v.AttachedTo == "" || now.Sub(v.Updated) >= m.cfg.EpochGrace {
			continue
		}
		if out == nil {
			out = slices.Clone(list)
		}
		out[i].Epoch = sent[k].Epoch
	}
	if out == nil {
		return list
	}
	return out
}
