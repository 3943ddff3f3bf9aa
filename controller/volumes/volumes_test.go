package volumes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/nodetest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

var (
	t0   = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	self = proto.MAC{0x02, 0, 0, 0, 0, 0xc1}
)

var _ volumes.Nodes = (*nodetest.Directory)(nil)

func mac(i int) proto.MAC { return proto.MAC{0x0c, 0xc4, 0, 0, 0, byte(i)} }
func id(i int) string     { return mac(i).NodeID() }

// memStore is the replicated state in memory: commands go through their
// encoding, as in the log. leading false makes Apply fail as a follower's.
type memStore struct {
	mu      sync.Mutex
	s       *state.State
	leading bool
}

func (m *memStore) Read(fn func(*state.State)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.s)
}

var errFollower = errors.New("replica: not the leader")

func (m *memStore) Apply(ctx context.Context, c state.Command) (any, error) {
	b, err := state.Encode(c)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leading {
		return nil, errFollower
	}
	return m.s.Apply(b)
}

func (m *memStore) volume(t *testing.T, id string) state.Volume {
	t.Helper()
	var v *state.Volume
	m.Read(func(s *state.State) { v = s.Volumes[id] })
	if v == nil {
		t.Fatalf("no volume %s", id)
	}
	return *v
}

func (m *memStore) must(t *testing.T, c state.Command) any {
	t.Helper()
	res, err := m.Apply(context.Background(), c)
	if err != nil {
		t.Fatalf("apply %s: %v", c.Type(), err)
	}
	return res
}

// rig is a Manager over a memStore with nodes 1..3 (one 1000 MB disk sda
// each) registered, and the same nodes simulated by a nodetest.Directory.
type rig struct {
	t     *testing.T
	store *memStore
	dir   *nodetest.Directory
	m     *volumes.Manager
	l     *volumes.Loop

	clock sync.Mutex
	at    time.Time
}

// now is the injected clock.
func (r *rig) now() time.Time {
	r.clock.Lock()
	defer r.clock.Unlock()
	return r.at
}

func newRig(t *testing.T, ds state.CreateDatastore) *rig {
	t.Helper()
	r := &rig{t: t, store: &memStore{s: state.New(), leading: true}, dir: nodetest.New(), at: t0}
	var disks []string
	for i := 1; i <= 3; i++ {
		inv := state.Inventory{Hostname: fmt.Sprint("mv", i), Disks: []state.Disk{{Name: "sda", SizeMB: 1000}},
			Location: state.Location{Rack: "r1", Blade: fmt.Sprint(i)}}
		r.store.must(t, state.RegisterNode{At: t0, MAC: mac(i), Inventory: inv})
		r.dir.Add(mac(i), inv)
		disks = append(disks, state.DiskID(id(i), "sda"))
	}
	ds.At, ds.Name, ds.Disks, ds.Replicas, ds.Overcommit = t0, "ds", disks, 2, 1
	if ds.TriggerRepair == "" {
		ds.TriggerRepair = state.RepairManual
	}
	ds.NumOfRepairs = max(ds.NumOfRepairs, 1)
	r.store.must(t, ds)
	cfg := volumes.DefaultConfig()
	cfg.Store, cfg.Nodes, cfg.Self = r.store, r.dir, self
	cfg.Now = r.now
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	m, err := volumes.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	ctx, cancel := context.WithCancel(leader.WithTerm(context.Background(), 7))
	r.l = m.Start(ctx)
	t.Cleanup(func() { cancel(); m.Stop(r.l) })
	return r
}

// step runs one round of the loop at r.now + d and waits for the work it
// started (unless the test blocks it).
func (r *rig) step(d time.Duration) {
	r.clock.Lock()
	r.at = r.at.Add(d)
	now := r.at
	r.clock.Unlock()
	r.m.Step(r.l, now)
}

func (r *rig) settle() { r.l.Settle() }

func (r *rig) volume(name string, size uint64) state.Volume {
	r.t.Helper()
	return r.store.must(r.t, state.CreateVolume{At: t0, Name: name, Datastore: "1", SizeMB: size}).(state.Volume)
}

// calls returns the recorded calls of method, and forgets all calls.
func (r *rig) calls(method string) []nodetest.Call {
	var out []nodetest.Call
	for _, c := range r.dir.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	r.dir.ResetCalls()
	return out
}

func nodesOf(cs []nodetest.Call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Node)
	}
	slices.Sort(out)
	return out
}

func TestAssignmentListsAndRepush(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	r.step(0)
	r.settle()
	var want map[string][]nodeclient.ReplicaAssignment
	r.store.Read(func(s *state.State) { want = volumes.Assignments(s) })
	if got := nodesOf(r.calls(nodetest.Assign)); !cmp.Equal(got, []string{id(1), id(2), id(3)}) {
		t.Fatalf("first pushes went to %v, want every node", got)
	}
	for i := 1; i <= 3; i++ {
		if diff := cmp.Diff(want[id(i)], r.dir.Assigned(id(i))); diff != "" {
			t.Errorf("node %d's list (-want +got):\n%s", i, diff)
		}
	}
	// Each replica's node serves it at the volume's address and epoch, in
	// sync; the third node has an empty list.
	for _, rep := range v.Replicas {
		got := r.dir.Assigned(rep.Node)
		w := []nodeclient.ReplicaAssignment{{Volume: v.ID, Name: "a", Disk: "sda", Shelf: rep.Shelf, Slot: rep.Slot, SizeMB: 100, Epoch: 1, InSync: true}}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("node %s (-want +got):\n%s", rep.Node, diff)
		}
	}

	// Nothing changed: nothing is sent.
	r.step(time.Second)
	r.settle()
	if got := r.calls(nodetest.Assign); len(got) != 0 {
		t.Errorf("unchanged lists were sent again: %v", nodesOf(got))
	}

	// A resize changes the lists of the replicas' nodes only.
	r.store.must(t, state.ResizeVolume{At: t0, ID: v.ID, SizeMB: 200})
	r.step(time.Second)
	r.settle()
	holders := []string{v.Replicas[0].Node, v.Replicas[1].Node}
	slices.Sort(holders)
	if got := nodesOf(r.calls(nodetest.Assign)); !cmp.Equal(got, holders) {
		t.Errorf("after a resize, pushes to %v, want %v", got, holders)
	}
	if got := r.dir.Assigned(holders[0]); got[0].SizeMB != 200 {
		t.Errorf("after a resize node %s serves %d MB, want 200", holders[0], got[0].SizeMB)
	}

	// A restarted node (new session epoch) is sent its list at once.
	r.m.Heard(id(1), 1) // its first session: nothing to do
	r.dir.Restart(id(1))
	r.m.Heard(id(1), 2)
	r.step(time.Millisecond)
	r.settle()
	if got := nodesOf(r.calls(nodetest.Assign)); !cmp.Equal(got, []string{id(1)}) {
		t.Errorf("after node 1 restarted, pushes to %v, want only node 1", got)
	}

	// Every HealInterval every node is sent its list again.
	r.step(volumes.DefaultConfig().HealInterval)
	r.settle()
	if got := nodesOf(r.calls(nodetest.Assign)); len(got) != 3 {
		t.Errorf("heal pushed to %v, want every node", got)
	}

	// A deleted volume leaves empty lists.
	r.store.must(t, state.DeleteVolume{At: t0, ID: v.ID})
	r.step(time.Second)
	r.settle()
	for _, n := range holders {
		if got := r.dir.Assigned(n); len(got) != 0 {
			t.Errorf("after the delete node %s still serves %v", n, got)
		}
	}
}

func TestFailedPushBacksOff(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	r.volume("a", 100)
	r.dir.SetAlive(id(2), false)
	r.step(0)
	r.settle()
	r.calls(nodetest.Assign)
	// Retried after RetryMin, not before; then after twice that.
	r.step(volumes.DefaultConfig().RetryMin / 2)
	r.settle()
	if got := nodesOf(r.calls(nodetest.Assign)); len(got) != 0 {
		t.Errorf("retried before the backoff: %v", got)
	}
	r.step(volumes.DefaultConfig().RetryMin / 2)
	r.settle()
	if got := nodesOf(r.calls(nodetest.Assign)); !cmp.Equal(got, []string{id(2)}) {
		t.Errorf("retry went to %v, want node 2", got)
	}
	r.step(volumes.DefaultConfig().RetryMin)
	r.settle()
	if got := r.calls(nodetest.Assign); len(got) != 0 {
		t.Errorf("second retry came before twice the backoff")
	}
	r.dir.SetAlive(id(2), true)
	r.step(volumes.DefaultConfig().RetryMin)
	r.settle()
	if got := nodesOf(r.calls(nodetest.Assign)); !cmp.Equal(got, []string{id(2)}) {
		t.Errorf("second retry went to %v, want node 2", got)
	}
	if len(r.dir.Assigned(id(2))) == 0 {
		t.Error("node 2 back: still no list")
	}
}

func TestSetInSyncCompareAndSet(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	a, b := v.Replicas[0].Node, v.Replicas[1].Node
	ctx := context.Background()
	// The writer (a replica holder) drops b at the epoch it saw.
	sp, err := r.m.SetInSync(ctx, r.mac(a), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 1, InSync: []string{a}})
	if err != nil {
		t.Fatal(err)
	}
	want := nodeclient.VolumeSpec{ID: v.ID, Name: "a", SizeMB: 100, Epoch: 2, Replicas: []nodeclient.SpecReplica{
		{Node: a, MAC: r.mac(a), Shelf: v.Replicas[0].Shelf, Slot: v.Replicas[0].Slot, InSync: true},
		{Node: b, MAC: r.mac(b), Shelf: v.Replicas[1].Shelf, Slot: v.Replicas[1].Slot, InSync: false},
	}}
	if diff := cmp.Diff(want, sp); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	// The same decision at the old epoch is stale, through the envelope's code.
	before := r.store.volume(t, v.ID)
	_, err = r.m.SetInSync(ctx, r.mac(b), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 1, InSync: []string{b}})
	if !errors.Is(err, nodeclient.ErrStaleEpoch) || nodeclient.ErrorOf(err).Code != nodeclient.CodeStaleEpoch {
		t.Errorf("stale epoch: %v (code %d), want ErrStaleEpoch", err, nodeclient.ErrorOf(err).Code)
	}
	for _, tc := range []struct {
		desc string
		from proto.MAC
		req  nodeclient.SetInSyncRequest
		code nodeclient.Code
	}{
		{"unknown volume", r.mac(a), nodeclient.SetInSyncRequest{Volume: "9", Epoch: 2, InSync: []string{a}}, nodeclient.CodeNotFound},
		{"a node without a replica", r.mac(a), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 2, InSync: []string{a, "0000000f"}}, nodeclient.CodeInvalid},
		{"empty set", r.mac(a), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 2}, nodeclient.CodeInvalid},
		{"an unregistered sender", proto.MAC{2, 9, 9, 9, 9, 9}, nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 2, InSync: []string{a}}, nodeclient.CodeInvalid},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := r.m.SetInSync(ctx, tc.from, tc.req)
			if err == nil || nodeclient.ErrorOf(err).Code != tc.code {
				t.Errorf("%v (code %d), want code %d", err, nodeclient.ErrorOf(err).Code, tc.code)
			}
		})
	}
	// A node with no part in the volume may not change it.
	third := id(1)
	for _, n := range []string{id(1), id(2), id(3)} {
		if n != a && n != b {
			third = n
		}
	}
	if _, err := r.m.SetInSync(ctx, r.mac(third), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 2, InSync: []string{a}}); !errors.Is(err, domain.ErrInvalidSpec) {
		t.Errorf("from node %s without a part: %v, want ErrInvalidSpec", third, err)
	}
	if diff := cmp.Diff(before, r.store.volume(t, v.ID)); diff != "" {
		t.Errorf("refusals changed the volume (-before +after):\n%s", diff)
	}
	// The change reaches the replicas' assignments.
	r.step(0)
	r.settle()
	if got := r.dir.Assigned(b); len(got) != 1 || got[0].InSync || got[0].Epoch != 2 {
		t.Errorf("node %s's assignment after leaving: %+v, want epoch 2 not in sync", b, got)
	}
	// A follower does not apply; the node is told to retry.
	r.store.leading = false
	_, err = r.m.SetInSync(ctx, r.mac(a), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 2, InSync: []string{a, b}})
	if err == nil || nodeclient.ErrorOf(err).Code != nodeclient.CodeInternal {
		t.Errorf("on a follower: %v, want an internal error (retry)", err)
	}
	// MethodVolume answers from any replica.
	got, err := r.m.Volume(ctx, r.mac(a), nodeclient.VolumeRequest{Volume: v.ID})
	if err != nil || got.Epoch != 2 || len(got.Replicas) != 2 {
		t.Errorf("Volume: %+v, %v", got, err)
	}
	if _, err := r.m.Volume(ctx, r.mac(a), nodeclient.VolumeRequest{Volume: "9"}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("Volume of an unknown id: %v", err)
	}
}

func (r *rig) mac(node string) proto.MAC {
	var m proto.MAC
	r.store.Read(func(s *state.State) { m = s.Nodes[node].MAC })
	return m
}

// other returns a node that holds no replica of v.
func other(v state.Volume) string {
	for i := 1; i <= 3; i++ {
		if !slices.ContainsFunc(v.Replicas, func(r state.VolumeReplica) bool { return r.Node == id(i) }) {
			return id(i)
		}
	}
	return ""
}

func TestAttachRules(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	ctx := context.Background()
	r.store.must(t, state.SetAdmin{At: t0, Node: other(v), State: state.AdminDisabled})
	r.dir.ResetCalls()
	for _, tc := range []struct {
		desc, node, mention string
	}{
		{"unknown node", "0000000f", "0000000f is not registered"},
		{"node not enabled", other(v), "is disabled"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := r.m.Attach(ctx, v.ID, tc.node, "", false)
			var fe *state.FieldError
			if !errors.As(err, &fe) || fe.Field != "node" || !errors.Is(err, state.ErrInvalid) {
				t.Fatalf("%v, want an invalid node", err)
			}
			if !contains(err, tc.mention) {
				t.Errorf("%v does not mention %q", err, tc.mention)
			}
		})
	}
	if _, err := r.m.Attach(ctx, "9", id(1), "", false); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("unknown volume: %v", err)
	}
	if got := r.dir.Calls(); len(got) != 0 {
		t.Errorf("refused attachments called nodes: %+v", got)
	}
	if diff := cmp.Diff(v, r.store.volume(t, v.ID)); diff != "" {
		t.Errorf("refused attachments changed the volume:\n%s", diff)
	}

	w := v.Replicas[0].Node
	res, err := r.m.Attach(ctx, v.ID, w, "/tmp/v.sock", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Socket != "/tmp/v.sock" || !res.Attached || res.Node != w {
		t.Errorf("attach answer %+v", res)
	}
	if got := r.store.volume(t, v.ID).AttachedTo; got != w {
		t.Errorf("attached to %q, want %s", got, w)
	}
	// The replicas are reserved for the writer, at the same epoch.
	for _, c := range r.calls(nodetest.Fence) {
		if !cmp.Equal(c.Allow, []proto.MAC{r.mac(w)}) || c.Epoch != 1 {
			t.Errorf("reserve on attach: %+v, want allow [%s] at epoch 1", c, r.mac(w))
		}
	}
	// Elsewhere without force: refused, nothing changes, no node called.
	w2 := v.Replicas[1].Node
	before := r.store.volume(t, v.ID)
	if _, err := r.m.Attach(ctx, v.ID, w2, "", false); !errors.Is(err, state.ErrInvalid) || !contains(err, "detach it first") {
		t.Errorf("attach elsewhere: %v, want detach first", err)
	}
	if got := r.dir.Calls(); len(got) != 0 {
		t.Errorf("refused attachment called nodes: %+v", got)
	}
	if diff := cmp.Diff(before, r.store.volume(t, v.ID)); diff != "" {
		t.Errorf("refused attachment changed the volume:\n%s", diff)
	}

	// A node that fails to attach: the attachment is undone.
	r.store.must(t, state.DetachVolume{At: t0, Volume: v.ID})
	r.dir.SetStorageHook(func(ctx context.Context, c nodetest.Call) (any, error) {
		if c.Method == nodetest.Attach {
			return nil, errors.New("no such disk")
		}
		return nil, nil
	})
	if _, err := r.m.Attach(ctx, v.ID, w2, "", false); !errors.Is(err, volumes.ErrNodeFailed) {
		t.Errorf("failing node: %v, want volumes.ErrNodeFailed", err)
	}
	if got := r.store.volume(t, v.ID).AttachedTo; got != "" {
		t.Errorf("after a failed attach: attached to %q", got)
	}
	r.dir.SetStorageHook(nil)
}

func contains(err error, s string) bool {
	return err != nil && len(s) > 0 && stringsContains(err.Error(), s)
}

// fenceOrder makes every MethodFence check that raft already holds the
// epoch it carries, and records the epochs seen.
func (r *rig) fenceOrder(t *testing.T) {
	r.dir.SetStorageHook(func(ctx context.Context, c nodetest.Call) (any, error) {
		if c.Method != nodetest.Fence {
			return nil, nil
		}
		var have uint64
		r.store.Read(func(s *state.State) { have = s.Volumes[c.Volume].Epoch })
		if have < c.Epoch {
			t.Errorf("MethodFence to %s carries epoch %d before raft has it (raft: %d)", c.Node, c.Epoch, have)
		}
		return nil, nil
	})
}

func TestFenceRaisesEpochInRaftFirst(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	ctx := context.Background()
	w := other(v)
	if _, err := r.m.Attach(ctx, v.ID, w, "", false); err != nil {
		t.Fatal(err)
	}
	r.dir.ResetCalls()
	r.fenceOrder(t)
	res, err := r.m.Fence(ctx, v.ID, w)
	if err != nil {
		t.Fatal(err)
	}
	holders := []string{v.Replicas[0].Node, v.Replicas[1].Node}
	slices.Sort(holders)
	want := volumes.FenceResult{Volume: v.ID, Node: w, Detached: true, Epoch: 2, Allow: []proto.MAC{self}, Fenced: holders}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("fence (-want +got):\n%s", diff)
	}
	got := r.store.volume(t, v.ID)
	if got.Epoch != 2 || got.AttachedTo != "" {
		t.Errorf("after fence: epoch %d attached to %q, want 2 and none", got.Epoch, got.AttachedTo)
	}
	fences := r.calls(nodetest.Fence)
	if !cmp.Equal(nodesOf(fences), holders) {
		t.Errorf("fenced %v, want the replica holders %v", nodesOf(fences), holders)
	}
	for _, c := range fences {
		if c.Epoch != 2 || !cmp.Equal(c.Allow, []proto.MAC{self}) || c.Term != 7 {
			t.Errorf("fence call %+v, want epoch 2, allow the controller, term 7", c)
		}
	}
	// Unknown node: 422 and nothing changes.
	if _, err := r.m.Fence(ctx, v.ID, "0000000f"); !errors.Is(err, state.ErrInvalid) {
		t.Errorf("fence of an unknown node: %v", err)
	}
	// A node other than the writer: 422, the writer keeps writing.
	if _, err := r.m.Attach(ctx, v.ID, v.Replicas[1].Node, "", false); err != nil {
		t.Fatal(err)
	}
	before := r.store.volume(t, v.ID)
	if _, err := r.m.Fence(ctx, v.ID, w); !errors.Is(err, state.ErrInvalid) || !contains(err, "would stop node "+v.Replicas[1].Node) {
		t.Errorf("fence of a node that is not the writer: %v", err)
	}
	if diff := cmp.Diff(before, r.store.volume(t, v.ID)); diff != "" {
		t.Errorf("a refused fence changed the volume:\n%s", diff)
	}
	r.store.must(t, state.DetachVolume{At: t0, Volume: v.ID})

	// Forced attachment elsewhere fences the old writer, reserving the
	// replicas for the new one.
	if _, err := r.m.Attach(ctx, v.ID, w, "", false); err != nil {
		t.Fatal(err)
	}
	w2 := v.Replicas[0].Node
	r.dir.ResetCalls()
	at, err := r.m.Attach(ctx, v.ID, w2, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if at.Fenced == nil || at.Fenced.Node != w || at.Fenced.Epoch != 3 || !cmp.Equal(at.Fenced.Allow, []proto.MAC{r.mac(w2)}) {
		t.Errorf("forced attach fence: %+v", at.Fenced)
	}
	// The order on the wire: fences, then the attach at the new epoch.
	calls := r.dir.Calls()
	last := calls[len(calls)-1]
	if last.Method != nodetest.Attach || last.Node != w2 || last.Spec.Epoch != 3 {
		t.Errorf("last call %+v, want attach on %s at epoch 3", last, w2)
	}
}

// A fenced writer that holds a replica may have written it after the
// others refused: the fence takes that replica out of the in-sync set, so
// only a full repair brings it back.
func TestFencedWriterLosesItsReplica(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	ctx := context.Background()
	w, keep := v.Replicas[0].Node, v.Replicas[1].Node
	if _, err := r.m.Attach(ctx, v.ID, w, "", false); err != nil {
		t.Fatal(err)
	}
	res, err := r.m.Fence(ctx, v.ID, w)
	if err != nil {
		t.Fatal(err)
	}
	got := r.store.volume(t, v.ID)
	if !slices.Equal(got.InSync, []string{keep}) || got.Epoch != 2 || res.Epoch != 2 {
		t.Errorf("after fencing the writer on %s: in sync %v at epoch %d (answer %d), want [%s] at 2", w, got.InSync, got.Epoch, res.Epoch, keep)
	}
}

func TestDeadWriterIsFenced(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	w := other(v)
	if _, err := r.m.Attach(context.Background(), v.ID, w, "", false); err != nil {
		t.Fatal(err)
	}
	r.fenceOrder(t)
	r.dir.ResetCalls()
	r.step(0)
	r.settle()
	if got := r.calls(nodetest.Fence); len(got) != 0 {
		t.Fatalf("a live writer was fenced: %+v", got)
	}
	r.dir.SetAlive(w, false)
	r.store.must(t, state.SetHealth{At: t0, Node: w, Health: state.HealthError, Reason: "silent"})
	r.step(time.Second)
	r.settle()
	got := r.store.volume(t, v.ID)
	if got.AttachedTo != "" || got.Epoch != 2 {
		t.Errorf("after the writer died: attached to %q epoch %d, want none and 2", got.AttachedTo, got.Epoch)
	}
	if fences := r.calls(nodetest.Fence); len(fences) != 2 {
		t.Errorf("fence calls %+v, want one per replica", fences)
	}
	// Once fenced it is not fenced again.
	r.step(time.Second)
	r.settle()
	if fences := r.calls(nodetest.Fence); len(fences) != 0 {
		t.Errorf("fenced again: %+v", fences)
	}
}

// dropReplica makes v's second replica stale, as a failed write would.
func (r *rig) dropReplica(v state.Volume) (keep, stale string) {
	keep, stale = v.Replicas[0].Node, v.Replicas[1].Node
	cur := r.store.volume(r.t, v.ID)
	r.store.must(r.t, state.SetInSync{At: t0, Volume: v.ID, Epoch: cur.Epoch, InSync: []string{keep}})
	return keep, stale
}

func TestPeriodicRepairsBoundedPerDatastore(t *testing.T) {
	r := newRig(t, state.CreateDatastore{TriggerRepair: state.RepairPeriodic, PeriodicRepairSec: 60, NumOfRepairs: 1})
	v1, v2 := r.volume("a", 100), r.volume("b", 100)
	r.dropReplica(v1)
	r.dropReplica(v2)
	release := make(chan struct{})
	var mu sync.Mutex
	var repairs []nodetest.Call
	r.dir.SetStorageHook(func(ctx context.Context, c nodetest.Call) (any, error) {
		if c.Method != nodetest.Repair {
			return nil, nil
		}
		mu.Lock()
		repairs = append(repairs, c)
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nodeclient.ResyncReport{Volume: c.Volume, Node: c.Stale, Full: true, Dirty: 0, Blocks: 1600, Bytes: 100 << 20, Duration: 2 * time.Second, Epoch: c.Spec.Epoch + 1, At: r.now()}, nil
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(repairs) }
	waitFor(t, "the first repair", func() bool { r.step(0); return count() == 1 })
	// num_of_repairs 1: the second waits while the first runs.
	r.step(time.Second)
	r.step(time.Second)
	if n := count(); n != 1 {
		t.Fatalf("%d repairs running at once, num_of_repairs is 1", n)
	}
	release <- struct{}{}
	waitFor(t, "the second repair", func() bool { r.step(time.Millisecond); return count() == 2 })
	release <- struct{}{}
	r.settle()
	// Both recorded. The fake nodes do not put the replicas back (a real
	// node calls SetInSync), so they are still stale.
	for _, id := range []string{v1.ID, v2.ID} {
		lr := r.store.volume(t, id).LastRepair
		if lr == nil || lr.Blocks != 1600 || lr.Bytes != 100<<20 || !lr.Full || lr.Duration != 2*time.Second || lr.Error != "" {
			t.Errorf("volume %s last repair %+v", id, lr)
		}
	}
	// The next pass comes a period after the first.
	close(release)
	r.step(30 * time.Second)
	r.settle()
	if n := count(); n != 2 {
		t.Errorf("%d repairs before the next period, want 2", n)
	}
	r.step(30 * time.Second)
	r.settle()
	r.step(0)
	r.settle()
	if n := count(); n != 4 {
		t.Errorf("%d repairs after the next period, want 4", n)
	}
}

func TestManualRepair(t *testing.T) {
	r := newRig(t, state.CreateDatastore{TriggerRepair: state.RepairManual, NumOfRepairs: 1})
	v := r.volume("a", 100)
	ctx := context.Background()
	if _, err := r.m.Repair(ctx, v.ID); !errors.Is(err, volumes.ErrNothingToRepair) || !contains(err, "every replica is in sync") {
		t.Errorf("repair of an in-sync volume: %v", err)
	}
	keep, stale := r.dropReplica(v)
	r.step(time.Hour)
	r.settle()
	if got := r.calls(nodetest.Repair); len(got) != 0 {
		t.Fatalf("a manual datastore repaired by itself: %+v", got)
	}
	// The stale node is in error: the repair is queued and waits for it.
	r.store.must(t, state.SetHealth{At: t0, Node: stale, Health: state.HealthError, Reason: "silent"})
	res, err := r.m.Repair(ctx, v.ID)
	if err != nil || len(res.Started) != 0 || len(res.Queued) != 1 || !strings.Contains(res.Queued[0].Waiting, "node "+stale+" is error") {
		t.Fatalf("repair with the stale node dead: %+v %v, want it queued, waiting for the node", res, err)
	}
	r.step(time.Second)
	r.settle()
	if got := r.calls(nodetest.Repair); len(got) != 0 {
		t.Fatalf("repaired while the node is dead: %+v", got)
	}
	// Asked again: already queued, nothing new to do.
	if _, err := r.m.Repair(ctx, v.ID); err != nil {
		t.Errorf("second ask while waiting: %v", err)
	}
	// It comes back (retry, then ok): the queued repair starts.
	r.store.must(t, state.SetHealth{At: t0, Node: stale, Health: state.HealthRetry})
	r.step(time.Second)
	r.settle()
	if got := r.calls(nodetest.Repair); len(got) != 0 {
		t.Fatalf("repaired while the node is retrying: %+v", got)
	}
	r.store.must(t, state.SetHealth{At: t0, Node: stale, Health: state.HealthOK})
	r.step(time.Second)
	r.settle()
	if got := r.calls(nodetest.Repair); len(got) != 1 || got[0].Node != keep || got[0].Stale != stale {
		t.Fatalf("after the node came back: repairs %+v, want one by %s", got, keep)
	}
	// An offline node is not waited for.
	r.store.must(t, state.SetAdmin{At: t0, Node: stale, State: state.AdminOffline})
	if _, err := r.m.Repair(ctx, v.ID); !errors.Is(err, volumes.ErrNothingToRepair) || !contains(err, "node "+stale+" is offline") {
		t.Errorf("repair with the stale node offline: %v", err)
	}
	r.store.must(t, state.SetAdmin{At: t0, Node: stale, State: state.AdminEnabled})
	// Attached: the writer repairs from its bitmap.
	w := other(v)
	if _, err := r.m.Attach(ctx, v.ID, w, "", false); err != nil {
		t.Fatal(err)
	}
	r.dir.ResetCalls()
	res, err = r.m.Repair(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := volumes.RepairResult{Volume: v.ID, Started: []volumes.RepairStarted{{Volume: v.ID, Node: stale, Repairer: w}}, Queued: []volumes.RepairStarted{}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("repair answer (-want +got):\n%s", diff)
	}
	r.settle()
	calls := r.calls(nodetest.Repair)
	if len(calls) != 1 || calls[0].Node != w || calls[0].Stale != stale {
		t.Errorf("repair calls %+v, want one to %s for %s", calls, w, stale)
	}
	// Not attached: a node of the in-sync set copies everything.
	r.store.must(t, state.DetachVolume{At: t0, Volume: v.ID})
	res, err = r.m.Repair(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Started) != 1 || res.Started[0].Repairer != keep || !res.Started[0].Full {
		t.Errorf("repair answer %+v, want a full copy by %s", res, keep)
	}
	r.settle()
}

func TestLeaderOnly(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	ctx := context.Background()
	r.m.Stop(r.l)
	for name, fn := range map[string]func() error{
		"attach": func() error { _, err := r.m.Attach(ctx, v.ID, id(1), "", false); return err },
		"detach": func() error { _, err := r.m.Detach(ctx, v.ID); return err },
		"fence":  func() error { _, err := r.m.Fence(ctx, v.ID, id(1)); return err },
		"repair": func() error { _, err := r.m.Repair(ctx, v.ID); return err },
	} {
		if err := fn(); !errors.Is(err, volumes.ErrNotLeader) {
			t.Errorf("%s without leading: %v, want volumes.ErrNotLeader", name, err)
		}
	}
	if got := r.dir.Calls(); len(got) != 0 {
		t.Errorf("a replica that does not lead called nodes: %+v", got)
	}
	// Run stops with its leadership, and what it started with it.
	lctx, cancel := context.WithCancel(leader.WithTerm(ctx, 8))
	done := make(chan error)
	go func() { done <- r.m.Run(lctx) }()
	waitFor(t, "the loop's first pushes", func() bool { return len(r.dir.Assigned(id(1))) > 0 || len(r.dir.Calls()) > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, err := r.m.Fence(ctx, v.ID, id(1)); !errors.Is(err, volumes.ErrNotLeader) {
		t.Errorf("fence after the loop stopped: %v", err)
	}
	for _, c := range r.dir.Calls() {
		if c.Term != 8 {
			t.Errorf("call %s to %s carries term %d, want 8", c.Method, c.Node, c.Term)
		}
	}
}

// waitFor polls cond (which may step the rig) until it holds; the work
// under test runs in goroutines the test does not own.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func stringsContains(s, sub string) bool { return strings.Contains(s, sub) }

// An epoch raise reaches the in-sync replicas of an attached volume by
// assignment only after EpochGrace: the writer registers the new epoch on
// them first, or its requests in flight would be refused and it fenced.
func TestEpochRaiseWaitsForTheWriter(t *testing.T) {
	r := newRig(t, state.CreateDatastore{})
	v := r.volume("a", 100)
	w := other(v)
	ctx := context.Background()
	if _, err := r.m.Attach(ctx, v.ID, w, "", false); err != nil {
		t.Fatal(err)
	}
	r.step(0)
	r.settle()
	a, b := v.Replicas[0].Node, v.Replicas[1].Node
	if _, err := r.m.SetInSync(ctx, r.mac(w), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 1, InSync: []string{a}}); err != nil {
		t.Fatal(err)
	}
	r.step(time.Millisecond)
	r.settle()
	if got := r.dir.Assigned(b); len(got) != 1 || got[0].Epoch != 2 || got[0].InSync {
		t.Errorf("the replica that left: %+v, want epoch 2 out of sync at once", got)
	}
	if got := r.dir.Assigned(a); len(got) != 1 || got[0].Epoch != 1 || !got[0].InSync {
		t.Errorf("the writer's in-sync replica within the grace: %+v, want still epoch 1", got)
	}
	r.step(volumes.DefaultConfig().EpochGrace)
	r.settle()
	if got := r.dir.Assigned(a); len(got) != 1 || got[0].Epoch != 2 {
		t.Errorf("after the grace: %+v, want epoch 2", got)
	}
	// A volume nobody writes hears of its raises at once.
	r.store.must(t, state.DetachVolume{At: r.now(), Volume: v.ID})
	if _, err := r.m.SetInSync(ctx, r.mac(a), nodeclient.SetInSyncRequest{Volume: v.ID, Epoch: 2, InSync: []string{a, b}}); err != nil {
		t.Fatal(err)
	}
	r.step(time.Millisecond)
	r.settle()
	if got := r.dir.Assigned(a); len(got) != 1 || got[0].Epoch != 3 {
		t.Errorf("not attached: %+v, want epoch 3 at once", got)
	}
}
