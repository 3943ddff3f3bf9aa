package ethnodes_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// storageNode is a node's storage side on the switch: it answers the
// storage methods and records what it was sent.
type storageNode struct {
	ep *proto.Endpoint
	mu sync.Mutex
	// assigned and fenced as received
	assigned nodeclient.AssignRequest
	fenced   nodeclient.FenceRequest
	repair   nodeclient.RepairRequest
}

func (r *rack) storageNode(mac proto.MAC) *storageNode {
	r.t.Helper()
	cfg := proto.DefaultConfig()
	cfg.Keys = r.keys
	ep, err := proto.NewEndpoint(r.sw.Link(mac, proto.EtherTypeControl), cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { ep.Close() })
	n := &storageNode{ep: ep}
	nodeclient.Handle(ep, nodeclient.MethodAssign, func(ctx context.Context, from proto.MAC, req nodeclient.AssignRequest) (nodeclient.AssignReply, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.assigned = req
		var rep nodeclient.AssignReply
		for _, a := range req.Replicas {
			rep.Replicas = append(rep.Replicas, nodeclient.ReplicaStatus{Volume: a.Volume, Shelf: a.Shelf, Slot: a.Slot, Epoch: a.Epoch})
		}
		return rep, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodFence, func(ctx context.Context, from proto.MAC, req nodeclient.FenceRequest) (nodeclient.AssignReply, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if req.Term < n.fenced.Term {
			return nodeclient.AssignReply{}, &nodeclient.StaleTermError{Got: req.Term, Highest: n.fenced.Term}
		}
		n.fenced = req
		return nodeclient.AssignReply{Replicas: []nodeclient.ReplicaStatus{{Volume: req.Volume, Epoch: req.Epoch}}}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodRepair, func(ctx context.Context, from proto.MAC, req nodeclient.RepairRequest) (nodeclient.ResyncReport, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.repair = req
		return nodeclient.ResyncReport{Volume: req.Volume.ID, Node: req.Node, Blocks: 3, Bytes: 3 << 16, Epoch: req.Volume.Epoch + 1}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodAttach, func(ctx context.Context, from proto.MAC, req nodeclient.AttachRequest) (nodeclient.VolumeStatus, error) {
		return nodeclient.VolumeStatus{Volume: req.Volume.ID, Attached: true, Socket: req.Socket, Epoch: req.Volume.Epoch}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodVolumeStatus, func(ctx context.Context, from proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeStatus, error) {
		return nodeclient.VolumeStatus{}, fmt.Errorf("%w: volume %s is not attached here", domain.ErrNotFound, req.Volume)
	})
	return n
}

// handler is the controller's answer to nodes: a volume at epoch 4.
type handler struct{ from []proto.MAC }

func (h *handler) SetInSync(ctx context.Context, from proto.MAC, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error) {
	h.from = append(h.from, from)
	if req.Epoch != 4 {
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: decided at %d, the volume is at 4", nodeclient.ErrStaleEpoch, req.Epoch)
	}
	return nodeclient.VolumeSpec{ID: req.Volume, Epoch: 5, Replicas: []nodeclient.SpecReplica{{Node: req.InSync[0], InSync: true}}}, nil
}

func (h *handler) Volume(ctx context.Context, from proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeSpec, error) {
	if req.Volume != "1" {
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: volume %q", domain.ErrNotFound, req.Volume)
	}
	return nodeclient.VolumeSpec{ID: "1", Epoch: 4}, nil
}

func TestStorageCallsCarryTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		n := r.storageNode(nodeMAC(0))
		src := r.source(ctl1)
		ctx := t.Context()
		list := []nodeclient.ReplicaAssignment{{Volume: "1", Name: "a", Disk: "sda", Shelf: 1000, Slot: 0, SizeMB: 100, Epoch: 4, InSync: true}}
		rep, err := src.Assign(ctx, nodeMAC(0), 9, list)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(nodeclient.AssignRequest{Term: 9, Replicas: list}, n.assigned); diff != "" {
			t.Errorf("the node received (-want +got):\n%s", diff)
		}
		if len(rep.Replicas) != 1 || rep.Replicas[0].Shelf != 1000 {
			t.Errorf("assign reply %+v", rep)
		}
		allow := []proto.MAC{ctl1}
		if _, err := src.Fence(ctx, nodeMAC(0), 9, "1", 5, allow); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(nodeclient.FenceRequest{Term: 9, Volume: "1", Epoch: 5, Allow: allow}, n.fenced); diff != "" {
			t.Errorf("fence received (-want +got):\n%s", diff)
		}
		// An older leader is refused with the node's term.
		if _, err := src.Fence(ctx, nodeMAC(0), 8, "1", 6, allow); !errors.Is(err, nodeclient.ErrStaleTerm) {
			t.Errorf("fence from an older term: %v, want ErrStaleTerm", err)
		}
		spec := nodeclient.VolumeSpec{ID: "1", Epoch: 5, Replicas: []nodeclient.SpecReplica{{Node: nodeMAC(0).NodeID(), MAC: nodeMAC(0), InSync: true}}}
		got, err := src.Repair(ctx, nodeMAC(0), 9, spec, "00000002")
		if err != nil || got.Blocks != 3 || got.Epoch != 6 {
			t.Errorf("repair: %+v, %v", got, err)
		}
		if n.repair.Node != "00000002" || n.repair.Term != 9 || n.repair.Volume.ID != "1" {
			t.Errorf("repair received %+v", n.repair)
		}
		st, err := src.Attach(ctx, nodeMAC(0), 9, spec, "/run/v1.sock")
		if err != nil || st.Socket != "/run/v1.sock" || !st.Attached {
			t.Errorf("attach: %+v, %v", st, err)
		}
		if _, err := src.VolumeStatus(ctx, nodeMAC(0), "2"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("status of a volume not attached: %v, want ErrNotFound", err)
		}
	})
}

func TestNodesReachTheControllerStorageHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		n := r.storageNode(nodeMAC(0))
		src := r.source(ctl1)
		h := &handler{}
		src.HandleStorage(h)
		ctx := t.Context()
		sp, err := nodeclient.SetInSync(ctx, n.ep, ctl1, nodeclient.SetInSyncRequest{Volume: "1", Epoch: 4, InSync: []string{"00000001"}})
		if err != nil || sp.Epoch != 5 {
			t.Errorf("set_in_sync: %+v, %v", sp, err)
		}
		_, err = nodeclient.SetInSync(ctx, n.ep, ctl1, nodeclient.SetInSyncRequest{Volume: "1", Epoch: 3, InSync: []string{"00000001"}})
		var ne *nodeclient.Error
		if !errors.Is(err, nodeclient.ErrStaleEpoch) || !errors.As(err, &ne) || ne.Code != nodeclient.CodeStaleEpoch {
			t.Errorf("stale set_in_sync: %v, want code CodeStaleEpoch", err)
		}
		if len(h.from) != 2 || h.from[0] != nodeMAC(0) {
			t.Errorf("the handler saw senders %v, want the node's MAC", h.from)
		}
		if v, err := nodeclient.GetVolume(ctx, n.ep, ctl1, "1"); err != nil || v.Epoch != 4 {
			t.Errorf("volume: %+v, %v", v, err)
		}
		if _, err := nodeclient.GetVolume(ctx, n.ep, ctl1, "9"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("unknown volume: %v, want ErrNotFound", err)
		}
	})
}

func TestReportsCarryTheNodeSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRack(t)
		src := r.source(ctl1)
		reports := src.Reports(t.Context())
		a := r.node(nodeMAC(0), ctl1, smallHardware())
		got := collect(t, reports, 3*time.Second, func(rs []controller.Report) bool { return len(rs) > 0 })
		want := a.Heartbeat().Epoch
		if got[0].Session == 0 || got[0].Session != want {
			t.Errorf("heartbeat report session %d, want the node's epoch %d", got[0].Session, want)
		}
		// A restarted node has a new session.
		r.kill(nodeMAC(0))
		b := r.node(nodeMAC(0), ctl1, smallHardware())
		collect(t, reports, 3*time.Second, func(rs []controller.Report) bool {
			return len(rs) > 0 && rs[len(rs)-1].Session == b.Heartbeat().Epoch
		})
		if b.Heartbeat().Epoch == want {
			t.Errorf("the restarted node kept session %d", want)
		}
	})
}
