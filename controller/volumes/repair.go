package volumes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/proto"
)

// repairKey names one stale replica: a volume and the replica's node.
type repairKey struct{ volume, node string }

// RepairStarted is one repair a manual request started or queued.
type RepairStarted struct {
	Volume string `json:"volume"`
	// Node is the stale replica's node; Repairer the node asked to copy
	// (empty while queued).
	Node     string `json:"node"`
	Repairer string `json:"repairer,omitempty"`
	// Waiting, on a queued repair, says what it waits for besides a free
	// slot (the replica's node to come back).
	Waiting string `json:"waiting,omitempty"`
	// Full is true when the repairer has no bitmap (the volume is not
	// attached to it) and copies every block.
	Full bool `json:"full"`
}

// RepairResult answers a manual repair.
type RepairResult struct {
	Volume  string          `json:"volume"`
	Started []RepairStarted `json:"started"`
	// Queued wait for a free slot of the datastore's num_of_repairs.
	Queued []RepairStarted `json:"queued"`
}

// stale lists v's replicas outside the in-sync set, in replica order.
func stale(v *state.Volume) []string {
	var out []string
	for _, r := range v.Replicas {
		if !slices.Contains(v.InSync, r.Node) {
			out = append(out, r.Node)
		}
	}
	return out
}

// repairer picks the node that copies to v's stale replica: the node v is
// attached to (it has the dirty bitmap) while it is alive, otherwise the
// first alive node of the in-sync set. full says the copy is of every
// block.
func (st snapshot) repairer(v *state.Volume) (node string, full bool, ok bool) {
	if v.AttachedTo != "" && st.alive(v.AttachedTo) {
		return v.AttachedTo, false, true
	}
	for _, n := range v.InSync {
		if st.alive(n) {
			return n, true, true
		}
	}
	return "", false, false
}

// repairable says why stale replica k cannot be repaired now, "" if it
// can. wait says the reason may pass by itself (the replica's node is
// registered but not alive yet: it is coming back through retry), so a
// queued repair waits for it instead of leaving the queue.
func (st snapshot) repairable(k repairKey) (why string, wait bool) {
	v := st.volume(k.volume)
	switch {
	case v == nil:
		return "the volume is gone", false
	case slices.Contains(v.InSync, k.node):
		return "the replica is in sync", false
	case st.nodes[k.node] == nil:
		return fmt.Sprintf("node %s is not registered", k.node), false
	case st.nodes[k.node].Admin == state.AdminOffline:
		return fmt.Sprintf("node %s is offline", k.node), false
	case !st.alive(k.node):
		return fmt.Sprintf("node %s is %s", k.node, st.nodes[k.node].State()), true
	}
	if _, _, ok := st.repairer(v); !ok {
		return fmt.Sprintf("no node to copy from is alive (attached to %q, in sync on %s)", v.AttachedTo, strings.Join(v.InSync, ",")), false
	}
	return "", false
}

// scheduleRepairs queues the stale replicas of periodic datastores at each
// pass and starts queued repairs while their datastore has a free slot.
func (m *Manager) scheduleRepairs(l *loopState, st snapshot, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ds := range st.datastores {
		id := ds.ID
		if ds.TriggerRepair != state.RepairPeriodic || ds.PeriodicRepairSec <= 0 {
			continue
		}
		if next, ok := l.nextPass[id]; ok && now.Before(next) {
			continue
		}
		l.nextPass[id] = now.Add(time.Duration(ds.PeriodicRepairSec) * time.Second)
		for _, v := range st.volumes {
			if v.Datastore != id {
				continue
			}
			for _, n := range stale(v) {
				k := repairKey{v.ID, n}
				if why, _ := st.repairable(k); why == "" {
					l.enqueue(k)
				}
			}
		}
	}
	m.drain(l, st)
}

// enqueue adds k unless it is queued or running; m.mu is held.
func (l *loopState) enqueue(k repairKey) bool {
	if _, run := l.running[k]; run || slices.Contains(l.queue, k) {
		return false
	}
	l.queue = append(l.queue, k)
	return true
}

// drain starts the queued repairs that may run, in queue order; those no
// longer repairable leave the queue. m.mu is held.
func (m *Manager) drain(l *loopState, st snapshot) []RepairStarted {
	var started []RepairStarted
	busy := map[string]int{}
	for k := range l.running {
		if v := st.volume(k.volume); v != nil {
			busy[v.Datastore]++
		}
	}
	var keep []repairKey
	for _, k := range l.queue {
		if why, wait := st.repairable(k); why != "" {
			if wait {
				keep = append(keep, k)
			} else {
				m.log.Info("queued repair dropped", "volume", k.volume, "node", k.node, "why", why)
			}
			continue
		}
		v := st.volume(k.volume)
		ds := st.datastore(v.Datastore)
		limit := 1
		if ds != nil {
			limit = max(ds.NumOfRepairs, 1)
		}
		if busy[v.Datastore] >= limit {
			keep = append(keep, k)
			continue
		}
		busy[v.Datastore]++
		rep, full, _ := st.repairer(v)
		l.running[k] = rep
		started = append(started, RepairStarted{Volume: k.volume, Node: k.node, Repairer: rep, Full: full})
		vol := *v
		l.goWork(func() { m.repair(l, vol, k.node, rep, full) })
	}
	l.queue = keep
	return started
}

// repair runs one repair: the repairer copies to the stale replica and
// puts it back in sync itself; the outcome is recorded in raft.
func (m *Manager) repair(l *loopState, v state.Volume, node, repairer string, full bool) {
	defer func() {
		m.mu.Lock()
		delete(l.running, repairKey{v.ID, node})
		m.mu.Unlock()
		m.wake() // a slot is free
	}()
	st := m.read()
	mac := st.mac(repairer)
	if v.AttachedTo != repairer {
		// Nobody writes: let the repairer write to the replicas.
		m.reserve(l.ctx, l, st, &v, []proto.MAC{mac})
	}
	m.log.Info("repair started", "volume", v.ID, "node", node, "repairer", repairer, "full", full, "epoch", v.Epoch)
	start := m.now()
	rep, err := m.cfg.Nodes.Repair(l.ctx, mac, l.term, st.spec(&v), node)
	if l.ctx.Err() != nil {
		return // leadership lost: the next leader repairs again
	}
	rec := state.Repair{Node: node, Repairer: repairer, Full: rep.Full, Dirty: rep.Dirty, Blocks: rep.Blocks, Bytes: rep.Bytes,
		Duration: rep.Duration, Epoch: rep.Epoch, At: rep.At.UTC()}
	if rec.At.IsZero() {
		rec.At = m.now().UTC()
	}
	if err != nil {
		rec.Full, rec.Duration, rec.Error = full, m.now().Sub(start), err.Error()
		m.log.Warn("repair failed", "volume", v.ID, "node", node, "repairer", repairer, "err", err)
	} else {
		m.log.Info("repair done", "volume", v.ID, "node", node, "repairer", repairer, "full", rep.Full,
			"blocks", rep.Blocks, "bytes", rep.Bytes, "duration", rep.Duration, "epoch", rep.Epoch)
	}
	ctx, cancel := m.callCtx(l.ctx)
	defer cancel()
	if _, err := m.apply(ctx, state.RecordRepair{At: m.now().UTC(), Volume: v.ID, Repair: rec}); err != nil {
		m.log.Warn("recording a repair failed", "volume", v.ID, "err", err)
	}
}

// Repair asks for the repair of volume's stale replicas now, whatever its
// datastore's trigger_repair: those that fit the datastore's
// num_of_repairs start, the others are queued, as are those whose node is
// registered but not alive yet (coming back: they start once it is).
// ErrNothingToRepair (with why) when no replica can be repaired. Runs on
// the leader.
func (m *Manager) Repair(ctx context.Context, volume string) (RepairResult, error) {
	l, st, v, err := m.begin(volume)
	if err != nil {
		return RepairResult{}, err
	}
	nodes := stale(v)
	if len(nodes) == 0 {
		return RepairResult{}, fmt.Errorf("%w: volume %s (%s): every replica is in sync (%s)", ErrNothingToRepair, v.ID, v.Name, strings.Join(v.InSync, ","))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var why []string
	var added []repairKey
	waiting := map[repairKey]string{}
	for _, n := range nodes {
		k := repairKey{v.ID, n}
		if r, wait := st.repairable(k); r != "" {
			if !wait {
				why = append(why, fmt.Sprintf("replica on node %s: %s", n, r))
				continue
			}
			waiting[k] = r + ": the repair starts once it is back"
		}
		if rep, run := l.running[k]; run {
			why = append(why, fmt.Sprintf("replica on node %s: already being repaired by node %s", n, rep))
			continue
		}
		l.enqueue(k)
		added = append(added, k)
	}
	if len(added) == 0 {
		return RepairResult{}, fmt.Errorf("%w: volume %s (%s): %s", ErrNothingToRepair, v.ID, v.Name, strings.Join(why, "; "))
	}
	out := RepairResult{Volume: v.ID, Started: []RepairStarted{}, Queued: []RepairStarted{}}
	for _, s := range m.drain(l, st) {
		if s.Volume == v.ID && slices.Contains(added, repairKey{s.Volume, s.Node}) {
			out.Started = append(out.Started, s)
		}
	}
	for _, k := range l.queue {
		if slices.Contains(added, k) {
			out.Queued = append(out.Queued, RepairStarted{Volume: k.volume, Node: k.node, Waiting: waiting[k]})
		}
	}
	return out, nil
}
