package nodetest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// Directory implements volumes.Nodes (checked in controller/volumes' tests:
// importing volumes here would make an import cycle with them).

// Storage method names a Call records (nodeclient's).
const (
	Assign       = nodeclient.MethodAssign
	Attach       = nodeclient.MethodAttach
	Detach       = nodeclient.MethodDetach
	VolumeStatus = nodeclient.MethodVolumeStatus
	Repair       = nodeclient.MethodRepair
	Fence        = nodeclient.MethodFence
)

// Call is one storage request a simulated node received, in arrival
// order (also those it refused).
type Call struct {
	Node   string
	Method string
	Term   uint64
	// Assign
	Replicas []nodeclient.ReplicaAssignment
	// Attach, Repair: the volume as sent; Detach, VolumeStatus, Fence:
	// Volume only.
	Spec   nodeclient.VolumeSpec
	Volume string
	Socket string
	// Repair: the stale replica's node.
	Stale string
	// Fence
	Epoch uint64
	Allow []proto.MAC
}

// SetStorageHook sets fn to be called for every storage call to a live
// node before it answers (nil removes it). fn may block until ctx ends; a
// non-nil error is the node's answer; a non-nil value (of the method's
// answer type) replaces the default answer.
func (d *Directory) SetStorageHook(fn func(ctx context.Context, c Call) (any, error)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hook = fn
}

// Calls returns the storage calls so far.
func (d *Directory) Calls() []Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// ResetCalls forgets the calls so far.
func (d *Directory) ResetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
}

// Assigned returns the replica list node id took last (nil before any).
func (d *Directory) Assigned(id string) []nodeclient.ReplicaAssignment {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.nodes[id]; n != nil {
		return slices.Clone(n.assigned)
	}
	return nil
}

// Restart simulates a restart of node id: a new session epoch, and the
// node forgets its replicas and attachments until told again.
func (d *Directory) Restart(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.nodes[id]; n != nil {
		n.session++
		n.assigned, n.attached = nil, map[string]nodeclient.VolumeStatus{}
	}
}

// storage records c and runs the node's side: term rule, hook, answer.
func storage[T any](ctx context.Context, d *Directory, mac proto.MAC, c Call, mutates bool, answer func(n *node) T) (T, error) {
	var zero T
	c.Node = mac.NodeID()
	d.mu.Lock()
	d.calls = append(d.calls, c)
	n := d.nodes[c.Node]
	var err error
	switch {
	case n == nil || n.mac != mac:
		err = fmt.Errorf("%w: %s", ErrUnknown, mac)
	case !n.alive:
		err = fmt.Errorf("%w: %s", ErrDead, c.Node)
	case mutates:
		err = d.accept(n, c.Term)
	}
	hook := d.hook
	d.mu.Unlock()
	if err != nil {
		return zero, err
	}
	if hook != nil {
		v, err := hook(ctx, c)
		if err != nil {
			return zero, err
		}
		if v != nil {
			d.mu.Lock()
			answer(n) // the node's own bookkeeping still happens
			d.mu.Unlock()
			return v.(T), nil
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return answer(n), nil
}

func statuses(rs []nodeclient.ReplicaAssignment, vol string, epoch uint64) nodeclient.AssignReply {
	var out nodeclient.AssignReply
	for _, r := range rs {
		if vol != "" && r.Volume != vol {
			continue
		}
		e := r.Epoch
		if vol != "" {
			e = epoch
		}
		out.Replicas = append(out.Replicas, nodeclient.ReplicaStatus{Volume: r.Volume, Shelf: r.Shelf, Slot: r.Slot, Epoch: e})
	}
	return out
}

// Assign implements volumes.Nodes: the node takes the list.
func (d *Directory) Assign(ctx context.Context, mac proto.MAC, term uint64, rs []nodeclient.ReplicaAssignment) (nodeclient.AssignReply, error) {
	return storage(ctx, d, mac, Call{Method: Assign, Term: term, Replicas: slices.Clone(rs)}, true, func(n *node) nodeclient.AssignReply {
		n.assigned = slices.Clone(rs)
		return statuses(rs, "", 0)
	})
}

// Attach implements volumes.Nodes: the node "serves" the volume on socket
// (default /run/mvstack/volumes/<id>.sock).
func (d *Directory) Attach(ctx context.Context, mac proto.MAC, term uint64, v nodeclient.VolumeSpec, socket string) (nodeclient.VolumeStatus, error) {
	return storage(ctx, d, mac, Call{Method: Attach, Term: term, Spec: v, Volume: v.ID, Socket: socket}, true, func(n *node) nodeclient.VolumeStatus {
		if socket == "" {
			socket = "/run/mvstack/volumes/" + v.ID + ".sock"
		}
		var in []string
		for _, r := range v.Replicas {
			if r.InSync {
				in = append(in, r.Node)
			}
		}
		st := nodeclient.VolumeStatus{Volume: v.ID, Attached: true, Socket: socket, Epoch: v.Epoch, InSync: in, BlockSize: 64 << 10}
		n.attached[v.ID] = st
		return st
	})
}

// Detach implements volumes.Nodes.
func (d *Directory) Detach(ctx context.Context, mac proto.MAC, term uint64, volume string) (nodeclient.VolumeStatus, error) {
	return storage(ctx, d, mac, Call{Method: Detach, Term: term, Volume: volume}, true, func(n *node) nodeclient.VolumeStatus {
		delete(n.attached, volume)
		return nodeclient.VolumeStatus{Volume: volume}
	})
}

// VolumeStatus implements volumes.Nodes.
func (d *Directory) VolumeStatus(ctx context.Context, mac proto.MAC, volume string) (nodeclient.VolumeStatus, error) {
	return storage(ctx, d, mac, Call{Method: VolumeStatus, Volume: volume}, false, func(n *node) nodeclient.VolumeStatus {
		if st, ok := n.attached[volume]; ok {
			return st
		}
		return nodeclient.VolumeStatus{Volume: volume}
	})
}

// Repair implements volumes.Nodes: by default a report of nothing copied
// (full when the node does not have the volume attached); a hook answers
// otherwise. The simulated node does not call SetInSync itself.
func (d *Directory) Repair(ctx context.Context, mac proto.MAC, term uint64, v nodeclient.VolumeSpec, stale string) (nodeclient.ResyncReport, error) {
	return storage(ctx, d, mac, Call{Method: Repair, Term: term, Spec: v, Volume: v.ID, Stale: stale}, true, func(n *node) nodeclient.ResyncReport {
		_, attached := n.attached[v.ID]
		return nodeclient.ResyncReport{Volume: v.ID, Node: stale, Full: !attached, Epoch: v.Epoch, At: time.Now()}
	})
}

// Fence implements volumes.Nodes: the node's replicas of volume take
// epoch.
func (d *Directory) Fence(ctx context.Context, mac proto.MAC, term uint64, volume string, epoch uint64, allow []proto.MAC) (nodeclient.AssignReply, error) {
	return storage(ctx, d, mac, Call{Method: Fence, Term: term, Volume: volume, Epoch: epoch, Allow: slices.Clone(allow)}, true, func(n *node) nodeclient.AssignReply {
		for i, r := range n.assigned {
			if r.Volume == volume && epoch > r.Epoch {
				n.assigned[i].Epoch = epoch
			}
		}
		return statuses(n.assigned, volume, epoch)
	})
}
