package rest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// fakeVolumes answers like volumes.Manager and records the calls; err,
// when set, is every call's answer.
type fakeVolumes struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeVolumes) record(format string, a ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	return f.err
}

func (f *fakeVolumes) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func status(vol string) nodeclient.VolumeStatus {
	return nodeclient.VolumeStatus{Volume: vol, Attached: true, Socket: "/run/mvstack/volumes/" + vol + ".sock", Epoch: 2,
		InSync: []string{"00000001"}, Dirty: 3, BlockSize: 64 << 10,
		LastResync: &nodeclient.ResyncReport{Volume: vol, Node: "00000002", Dirty: 3, Blocks: 3, Bytes: 3 << 16, Duration: time.Second, Epoch: 2, At: time.Unix(0, 0).UTC()}}
}

func (f *fakeVolumes) Attach(ctx context.Context, volume, node, socket string, force bool) (volumes.AttachResult, error) {
	if err := f.record("attach %s %s %q %v", volume, node, socket, force); err != nil {
		return volumes.AttachResult{}, err
	}
	return volumes.AttachResult{Node: node, VolumeStatus: status(volume)}, nil
}

func (f *fakeVolumes) Detach(ctx context.Context, volume string) (volumes.AttachResult, error) {
	if err := f.record("detach %s", volume); err != nil {
		return volumes.AttachResult{}, err
	}
	return volumes.AttachResult{Node: "00000001", VolumeStatus: nodeclient.VolumeStatus{Volume: volume}}, nil
}

func (f *fakeVolumes) Status(ctx context.Context, volume string) (*nodeclient.VolumeStatus, error) {
	if err := f.record("status %s", volume); err != nil {
		return nil, err
	}
	s := status(volume)
	return &s, nil
}

func (f *fakeVolumes) Repair(ctx context.Context, volume string) (volumes.RepairResult, error) {
	if err := f.record("repair %s", volume); err != nil {
		return volumes.RepairResult{}, err
	}
	return volumes.RepairResult{Volume: volume, Started: []volumes.RepairStarted{{Volume: volume, Node: "00000002", Repairer: "00000001"}},
		Queued: []volumes.RepairStarted{}}, nil
}

func (f *fakeVolumes) Fence(ctx context.Context, volume, node string) (volumes.FenceResult, error) {
	if err := f.record("fence %s %s", volume, node); err != nil {
		return volumes.FenceResult{}, err
	}
	return volumes.FenceResult{Volume: volume, Node: node, Detached: true, Epoch: 3, Allow: []proto.MAC{{2, 0, 0, 0, 0, 0xc1}},
		Fenced: []string{"00000001", "00000002"}, Failed: map[string]string{"00000003": "no answer"}}, nil
}

func TestVolumeAttachRepairFenceRoutes(t *testing.T) {
	f := &fakeVolumes{}
	e, l, d := storageEnvWith(t, f)
	if r := e.do(l, "POST", "/api/datastores", `{"name":"ds","disks":["`+d[0]+`","`+d[1]+`"],"replicas":2}`); r.status != 201 {
		t.Fatalf("datastore: %d %s", r.status, r.body)
	}
	if r := e.do(l, "POST", "/api/volumes", `{"name":"v","datastore":"1","size_mb":10}`); r.status != 201 {
		t.Fatalf("volume: %d %s", r.status, r.body)
	}
	f1 := (l + 1) % 3
	// Writes reach the manager through any replica (forwarded).
	r := e.do(f1, "POST", "/api/volumes/1/attach", `{"node":"00000003","socket":"/tmp/v.sock"}`)
	var at volumes.AttachResult
	r.json(t, &at)
	if r.status != 200 || at.Socket == "" || at.Node != "00000003" {
		t.Errorf("attach: %d %s", r.status, r.body)
	}
	if got := f.took(); len(got) != 1 || got[0] != `attach 1 00000003 "/tmp/v.sock" false` {
		t.Errorf("manager calls %q", got)
	}
	if r := e.do(l, "POST", "/api/volumes/1/attach", `{"socket":"x"}`, invalidReq()); r.status != 422 || r.errField(t) != "node" {
		t.Errorf("attach without a node: %d %s", r.status, r.body)
	}
	if r := e.do(l, "POST", "/api/volumes/1/attach", `{"node":"1","bogus":1}`, invalidReq()); r.status != 400 || r.errField(t) != "bogus" {
		t.Errorf("attach with an unknown field: %d %s", r.status, r.body)
	}
	if r := e.do(l, "POST", "/api/volumes/1/repair", ""); r.status != 202 || !strings.Contains(string(r.body), `"repairer":"00000001"`) {
		t.Errorf("repair: %d %s", r.status, r.body)
	}
	if r := e.do(l, "POST", "/api/volumes/1/fence", `{"node":"00000003"}`); r.status != 200 || !strings.Contains(string(r.body), `"allow":["02:00:00:00:00:c1"]`) {
		t.Errorf("fence: %d %s", r.status, r.body)
	}
	if r := e.do(l, "POST", "/api/volumes/1/detach", ""); r.status != 200 {
		t.Errorf("detach: %d %s", r.status, r.body)
	}
	f.took()

	// GET shows the attachment, the last repair and the node's live view.
	e.c.Replicas[l].Apply(t.Context(), state.AttachVolume{At: time.Now().UTC(), Volume: "1", Node: "00000003"})
	e.c.Replicas[l].Apply(t.Context(), state.RecordRepair{At: time.Now().UTC(), Volume: "1",
		Repair: state.Repair{Node: "00000002", Repairer: "00000003", Dirty: 3, Blocks: 3, Bytes: 3 << 16, Duration: time.Second, Epoch: 3, At: time.Now().UTC()}})
	var v struct {
		AttachedTo string                   `json:"attached_to"`
		LastRepair *state.Repair            `json:"last_repair"`
		Live       *nodeclient.VolumeStatus `json:"live"`
	}
	e.do(l, "GET", "/api/volumes/1", "").json(t, &v)
	if v.AttachedTo != "00000003" || v.LastRepair == nil || v.LastRepair.Blocks != 3 || v.Live == nil || v.Live.Dirty != 3 {
		t.Errorf("GET volume: %+v", v)
	}
	// The node does not answer: the volume still shows, with why.
	f.err = fmt.Errorf("%w: node 00000003: no answer", volumes.ErrNodeFailed)
	if r := e.do(l, "GET", "/api/volumes/1", ""); r.status != 200 || !strings.Contains(string(r.body), `"live_error"`) {
		t.Errorf("GET with the node silent: %d %s", r.status, r.body)
	}

	// The manager's errors.
	for _, tc := range []struct {
		desc   string
		err    error
		status int
		field  string
	}{
		{"node failed", fmt.Errorf("%w: node 00000003 did not attach", volumes.ErrNodeFailed), 502, ""},
		{"not the leader", volumes.ErrNotLeader, 503, ""},
		{"unknown volume", fmt.Errorf("%w: volume \"9\"", state.ErrNotFound), 404, ""},
		{"invalid node", &state.FieldError{Field: "node", Err: fmt.Errorf("%w: node 0000000f is not registered", state.ErrInvalid)}, 422, "node"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f.err = tc.err
			r := e.do(l, "POST", "/api/volumes/1/attach", `{"node":"00000003","force":true}`)
			if r.status != tc.status || r.errField(t) != tc.field {
				t.Errorf("%d %s, want %d field %q", r.status, r.body, tc.status, tc.field)
			}
		})
	}
	f.err = fmt.Errorf("%w: volume 1 (v): every replica is in sync", volumes.ErrNothingToRepair)
	if r := e.do(l, "POST", "/api/volumes/1/repair", ""); r.status != 422 || !strings.Contains(string(r.body), "every replica is in sync") {
		t.Errorf("nothing to repair: %d %s", r.status, r.body)
	}
	// Deleting an attached volume is refused.
	e.want422(l, "DELETE", "/api/volumes/1", "", "", "attached to node 00000003")
}

func TestVolumeRoutesWithoutNodes(t *testing.T) {
	e := newEnv(t)
	l := e.c.Leader(t)
	for _, p := range []string{"attach", "fence"} {
		if r := e.do(l, "POST", "/api/volumes/1/"+p, `{"node":"1"}`); r.status != 501 {
			t.Errorf("%s without a node-facing side: %d %s", p, r.status, r.body)
		}
	}
	if r := e.do(l, "POST", "/api/volumes/1/repair", ""); r.status != 501 {
		t.Errorf("repair without a node-facing side: %d %s", r.status, r.body)
	}
}
