package volumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// FenceResult says what a fence did.
type FenceResult struct {
	Volume string `json:"volume"`
	// Node is the node fenced off; Detached whether it had the volume
	// attached (its attachment is cleared).
	Node     string `json:"node"`
	Detached bool   `json:"detached"`
	// Epoch is the volume's new epoch.
	Epoch uint64 `json:"epoch"`
	// Allow is the reserve list set on the replicas: the new writer's MAC,
	// or this controller's.
	Allow []proto.MAC `json:"allow"`
	// Fenced lists the replica nodes that took the new epoch; Failed
	// those that did not, with why (they get the epoch with their next
	// assignment).
	Fenced []string          `json:"fenced"`
	Failed map[string]string `json:"failed,omitempty"`
}

// AttachResult is an attached volume's status on its node.
type AttachResult struct {
	Node string `json:"node"`
	nodeclient.VolumeStatus
	// Fenced is the fence of the previous writer when force moved the
	// volume.
	Fenced *FenceResult `json:"fenced,omitempty"`
}

// Attach attaches volume to node (state.AttachVolume) and asks the node to
// open it and serve it as NBD on socket (empty: the node's default). The
// replicas' reserve list is set to the node. A volume attached elsewhere
// needs force: the old writer is fenced first (epoch raised in raft, then
// MethodFence). When the node fails to attach, the attachment is undone
// and the error wraps ErrNodeFailed. Runs on the leader.
func (m *Manager) Attach(ctx context.Context, volume, node, socket string, force bool) (AttachResult, error) {
	l, _, v, err := m.begin(volume)
	if err != nil {
		return AttachResult{}, err
	}
	old := v.AttachedTo
	res, err := m.apply(ctx, state.AttachVolume{At: m.now().UTC(), Volume: volume, Node: node, Force: force})
	if err != nil {
		return AttachResult{}, err
	}
	nv := res.(state.Volume)
	st := m.read()
	m.awaitReplicas(ctx, l, st, &nv)
	writer := st.mac(node)
	out := AttachResult{Node: node}
	if old != "" && old != node {
		f, err := m.fence(ctx, l, volume, old, []proto.MAC{writer})
		if err != nil {
			return AttachResult{}, fmt.Errorf("fencing node %s, the volume's writer until now: %w", old, err)
		}
		f.Detached = true // by the forced attachment
		out.Fenced = &f
	} else if old == "" {
		// Only the writer may change the replicas from now on.
		m.reserve(ctx, l, st, &nv, []proto.MAC{writer})
	}
	st = m.read()
	if cur := st.volume(volume); cur != nil {
		nv = *cur
	}
	cctx, cancel := m.callCtx(ctx)
	status, err := m.cfg.Nodes.Attach(cctx, writer, l.term, st.spec(&nv), socket)
	cancel()
	if err != nil {
		if _, derr := m.apply(ctx, state.DetachVolume{At: m.now().UTC(), Volume: volume, Node: node}); derr != nil {
			m.log.Warn("undoing a failed attachment failed", "volume", volume, "node", node, "err", derr)
		}
		return AttachResult{}, fmt.Errorf("%w: node %s did not attach volume %s (the attachment is undone): %w", ErrNodeFailed, node, volume, err)
	}
	out.VolumeStatus = status
	m.log.Info("volume attached", "volume", volume, "node", node, "socket", status.Socket, "epoch", status.Epoch)
	return out, nil
}

// Detach asks the node a volume is attached to to close it, then records
// the detachment and lifts the replicas' reserve list. A node that does not
// answer keeps the attachment (ErrNodeFailed): fence the volume to take it
// away from a node that cannot be reached. Runs on the leader.
func (m *Manager) Detach(ctx context.Context, volume string) (AttachResult, error) {
	l, st, v, err := m.begin(volume)
	if err != nil {
		return AttachResult{}, err
	}
	if v.AttachedTo == "" {
		return AttachResult{}, &state.FieldError{Field: "", Err: fmt.Errorf("%w: volume %s (%s) is not attached", state.ErrInvalid, v.ID, v.Name)}
	}
	node := v.AttachedTo
	cctx, cancel := m.callCtx(ctx)
	status, err := m.cfg.Nodes.Detach(cctx, st.mac(node), l.term, volume)
	cancel()
	if err != nil {
		return AttachResult{}, fmt.Errorf("%w: node %s did not detach volume %s (it stays attached; fence it to take it away from a node that does not answer): %w",
			ErrNodeFailed, node, volume, err)
	}
	res, err := m.apply(ctx, state.DetachVolume{At: m.now().UTC(), Volume: volume, Node: node})
	if err != nil {
		return AttachResult{}, err
	}
	nv := res.(state.Volume)
	m.reserve(ctx, l, m.read(), &nv, nil)
	m.log.Info("volume detached", "volume", volume, "node", node)
	return AttachResult{Node: node, VolumeStatus: status}, nil
}

// Status asks the node a volume is attached to how it stands; nil when the
// volume is not attached. Any replica may call it.
func (m *Manager) Status(ctx context.Context, volume string) (*nodeclient.VolumeStatus, error) {
	st := m.read()
	v, err := st.find(volume)
	if err != nil {
		return nil, err
	}
	if v.AttachedTo == "" {
		return nil, nil
	}
	cctx, cancel := m.callCtx(ctx)
	defer cancel()
	s, err := m.cfg.Nodes.VolumeStatus(cctx, st.mac(v.AttachedTo), volume)
	if err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", ErrNodeFailed, v.AttachedTo, err)
	}
	return &s, nil
}

// Fence fences node off volume: the epoch is raised in raft (and when the
// node holds an in-sync replica, that replica leaves the set), the node's
// attachment (if it has the volume) cleared, then every node holding a
// replica is sent the new epoch with this controller as the only writer
// (MethodFence). While the volume is attached to another node the fence is
// refused (the raised epoch would stop that writer). Runs on the leader.
func (m *Manager) Fence(ctx context.Context, volume, node string) (FenceResult, error) {
	l, st, v, err := m.begin(volume)
	if err != nil {
		return FenceResult{}, err
	}
	if node == "" {
		return FenceResult{}, &state.FieldError{Field: "node", Err: fmt.Errorf("%w: node is empty: name the node to fence", state.ErrInvalid)}
	}
	if st.nodes[node] == nil {
		return FenceResult{}, &state.FieldError{Field: "node", Err: fmt.Errorf("%w: node %s is not registered (see GET /api/nodes)", state.ErrInvalid, node)}
	}
	if v.AttachedTo != "" && v.AttachedTo != node {
		return FenceResult{}, &state.FieldError{Field: "node", Err: fmt.Errorf(
			"%w: volume %s (%s) is attached to node %s, not %s: a fence raises the epoch and would stop node %s's writes; fence node %s, or detach first",
			state.ErrInvalid, v.ID, v.Name, v.AttachedTo, node, v.AttachedTo, v.AttachedTo)}
	}
	return m.fence(ctx, l, volume, node, nil)
}

// fence raises the volume's epoch, clears node's attachment, and sends
// MethodFence to each replica's node with allow as the reserve list (nil:
// this controller). The raft changes come first: a node is told the new
// epoch only once it is the volume's.
func (m *Manager) fence(ctx context.Context, l *loopState, volume, node string, allow []proto.MAC) (FenceResult, error) {
	if allow == nil {
		allow = []proto.MAC{m.cfg.Self}
	}
	var nv state.Volume
	for attempt := 0; ; attempt++ {
		v, err := m.read().find(volume)
		if err != nil {
			return FenceResult{}, err
		}
		// A fenced writer's own replica may have taken writes the others
		// refused: it leaves the in-sync set (which raises the epoch too)
		// and comes back only through a full repair.
		var c state.Command = state.SetVolumeEpoch{At: m.now().UTC(), Volume: volume, Epoch: v.Epoch + 1}
		if i := slices.Index(v.InSync, node); i >= 0 && len(v.InSync) > 1 {
			c = state.SetInSync{At: m.now().UTC(), Volume: volume, Epoch: v.Epoch, InSync: slices.Delete(slices.Clone(v.InSync), i, i+1)}
		}
		res, err := m.apply(ctx, c)
		if errors.Is(err, state.ErrStaleEpoch) && attempt < 3 {
			continue // the set changed under us: raise from the new epoch
		}
		if err != nil {
			return FenceResult{}, err
		}
		nv = res.(state.Volume)
		break
	}
	out := FenceResult{Volume: volume, Node: node, Epoch: nv.Epoch, Allow: allow, Fenced: []string{}}
	if nv.AttachedTo == node {
		res, err := m.apply(ctx, state.DetachVolume{At: m.now().UTC(), Volume: volume, Node: node})
		if err != nil {
			return FenceResult{}, err
		}
		nv, out.Detached = res.(state.Volume), true
	}
	out.Fenced, out.Failed = m.fenceReplicas(ctx, l, m.read(), &nv, nv.Epoch, allow)
	m.wake() // assignments carry the new epoch
	m.log.Warn("volume fenced", "volume", volume, "node", node, "epoch", nv.Epoch, "detached", out.Detached,
		"fenced", out.Fenced, "failed", len(out.Failed))
	return out, nil
}

// reserve sets the reserve list of v's replicas at v's epoch (no epoch
// change), best effort: a node that misses it is logged.
func (m *Manager) reserve(ctx context.Context, l *loopState, st snapshot, v *state.Volume, allow []proto.MAC) {
	_, failed := m.fenceReplicas(ctx, l, st, v, v.Epoch, allow)
	for n, e := range failed {
		m.log.Warn("setting a replica's reserve list failed", "volume", v.ID, "node", n, "err", e)
	}
}

// fenceReplicas sends MethodFence to every node holding a replica of v, in
// parallel, and returns the nodes that took it and why the others did not.
func (m *Manager) fenceReplicas(ctx context.Context, l *loopState, st snapshot, v *state.Volume, epoch uint64, allow []proto.MAC) ([]string, map[string]string) {
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		ok     = []string{}
		failed map[string]string
	)
	for _, r := range v.Replicas {
		mac := st.mac(r.Node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := m.callCtx(ctx)
			_, err := m.cfg.Nodes.Fence(cctx, mac, l.term, v.ID, epoch, allow)
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if failed == nil {
					failed = map[string]string{}
				}
				failed[r.Node] = err.Error()
				return
			}
			ok = append(ok, r.Node)
		}()
	}
	wg.Wait()
	sort.Strings(ok)
	return ok, failed
}

// fenceDead fences the volumes attached to nodes liveness put in error.
func (m *Manager) fenceDead(l *loopState, st snapshot) {
	for _, v := range st.volumes {
		n := st.nodes[v.AttachedTo]
		if v.AttachedTo == "" || n == nil || n.Health != state.HealthError {
			continue
		}
		m.mu.Lock()
		busy := l.fencing[v.ID]
		l.fencing[v.ID] = true
		m.mu.Unlock()
		if busy {
			continue
		}
		id, node := v.ID, v.AttachedTo
		l.goWork(func() {
			defer func() {
				m.mu.Lock()
				delete(l.fencing, id)
				m.mu.Unlock()
			}()
			m.log.Warn("node of an attached volume is dead: fencing it", "volume", id, "node", node)
			if _, err := m.fence(l.ctx, l, id, node, nil); err != nil && l.ctx.Err() == nil {
				m.log.Error("fencing a dead node's volume failed", "volume", id, "node", node, "err", err)
			}
		})
	}
}

// Reserve makes allow (nil: this controller) the reserve list of volume's
// replicas at its current epoch, on the leader: the db_metadata backup
// does it before writing. It fails only when no replica took it.
func (m *Manager) Reserve(ctx context.Context, volume string, allow []proto.MAC) error {
	l, st, v, err := m.begin(volume)
	if err != nil {
		return err
	}
	if allow == nil {
		allow = []proto.MAC{m.cfg.Self}
	}
	ok, failed := m.fenceReplicas(ctx, l, st, v, v.Epoch, allow)
	if len(ok) == 0 && len(failed) > 0 {
		return fmt.Errorf("%w: no replica of volume %s took the reserve list: %v", ErrNodeFailed, volume, failed)
	}
	return nil
}

// awaitReplicas waits, at most one call timeout, until every reachable
// node holding a replica of v has taken an assignment list naming it, so
// that a volume attached right after it was created does not find its
// replicas unexported and start out degraded. A node that does not take
// its list in time is left to the writer, which drops its replica.
func (m *Manager) awaitReplicas(ctx context.Context, l *loopState, st snapshot, v *state.Volume) {
	ctx, cancel := m.callCtx(ctx)
	defer cancel()
	for {
		pending := false
		m.mu.Lock()
		for _, r := range v.Replicas {
			if st.reachable(r.Node) && !slices.ContainsFunc(l.sent[r.Node], func(a nodeclient.ReplicaAssignment) bool { return a.Volume == v.ID }) {
				pending = true
			}
		}
		m.mu.Unlock()
		if !pending {
			return
		}
		m.pushAll(l, m.read(), m.now()) // what is not already on its way
		select {
		case <-ctx.Done():
			m.log.Warn("attaching before every replica's node took it", "volume", v.ID)
			return
		case <-time.After(10 * time.Millisecond): // the loop pushes on its own goroutines
		}
	}
}
