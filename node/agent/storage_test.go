package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/node/agent"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

var (
	nodeBMAC = proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xb0}
	probeMAC = proto.MAC{0x02, 0, 0, 0, 0, 0x99} // the test's own AoE initiator
)

// volController is a controller's storage side on the switch: it answers
// SetInSync as a compare-and-set on the epoch (a changed set raises the
// epoch by one) and Volume, for one volume, and acknowledges heartbeats.
type volController struct {
	mu    sync.Mutex
	spec  nodeclient.VolumeSpec
	calls []nodeclient.SetInSyncRequest
}

func (c *volController) serve(ep *proto.Endpoint) {
	nodeclient.HandleHeartbeats(ep, func(proto.MAC, nodeclient.Heartbeat) {})
	nodeclient.Handle(ep, nodeclient.MethodSetInSync, func(ctx context.Context, _ proto.MAC, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.calls = append(c.calls, req)
		if req.Volume != c.spec.ID {
			return nodeclient.VolumeSpec{}, fmt.Errorf("no volume %s", req.Volume)
		}
		if req.Epoch != c.spec.Epoch {
			return nodeclient.VolumeSpec{}, fmt.Errorf("epoch %d is not %d: %w", req.Epoch, c.spec.Epoch, nodeclient.ErrStaleEpoch)
		}
		changed := false
		for i, r := range c.spec.Replicas {
			in := slices.Contains(req.InSync, r.Node)
			changed = changed || in != r.InSync
			c.spec.Replicas[i].InSync = in
		}
		if changed {
			c.spec.Epoch++
		}
		return c.cloneLocked(), nil
	})
	nodeclient.Handle(ep, nodeclient.MethodVolume, func(ctx context.Context, _ proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeSpec, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.cloneLocked(), nil
	})
}

func (c *volController) cloneLocked() nodeclient.VolumeSpec {
	s := c.spec
	s.Replicas = slices.Clone(s.Replicas)
	return s
}

func (c *volController) get() nodeclient.VolumeSpec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cloneLocked()
}

// storageNode is a running agent with one blank drive file.
type storageNode struct {
	agent *agent.Agent
	drive string
	aoe   *linktest.Link // the target's link: SetDown cuts the replica off
	stop  func()
}

// startStorageNode starts an agent at mac with a blank 64 MiB drive
// named name, following the controller at ctlMAC.
func startStorageNode(t *testing.T, sw *linktest.Switch, keys *proto.Keyring, mac proto.MAC, name, stateDir string) *storageNode {
	t.Helper()
	drive := filepath.Join(filepath.Dir(stateDir), name)
	if _, err := os.Stat(drive); err != nil {
		f, err := os.Create(drive)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(64 << 20); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	n := &storageNode{drive: drive, aoe: sw.Link(mac, proto.EtherTypeAoE)}
	cfg := agent.DefaultConfig()
	cfg.Link = sw.Link(mac, proto.EtherTypeControl)
	cfg.AoELink = n.aoe
	cfg.InitiatorLink = sw.Link(mac, proto.EtherTypeAoE)
	cfg.Keys = keys
	cfg.SimHardware = smallHardware()
	cfg.DriveFiles = []string{drive}
	cfg.Controller = ctlMAC.String()
	cfg.StateDir = stateDir
	cfg.VolumeDir = filepath.Join(filepath.Dir(stateDir), "vols")
	cfg.VolumeIOTimeout = agent.Duration(3 * time.Second)
	cfg.StatsInterval = 0
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	n.agent = a
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(n.stop)
	return n
}

// storageRig is two storage nodes (A uses the volume, B holds its other
// replica) and a controller, on one switch.
type storageRig struct {
	sw     *linktest.Switch
	keys   *proto.Keyring
	ctl    *volController
	client *nodeclient.Client
	a, b   *storageNode
	dir    string
}

func newStorageRig(t *testing.T) *storageRig {
	t.Helper()
	r := &storageRig{sw: linktest.NewSwitch(linktest.Config{MTU: 9000}), keys: testKeys(t), ctl: &volController{}, dir: t.TempDir()}
	t.Cleanup(r.sw.Close)
	pcfg := proto.DefaultConfig()
	pcfg.Keys = r.keys
	ep, err := proto.NewEndpoint(r.sw.Link(ctlMAC, proto.EtherTypeControl), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	r.ctl.serve(ep)
	r.client = nodeclient.New(ep).WithTerm(1)
	r.a = startStorageNode(t, r.sw, r.keys, nodeMAC, "a.img", filepath.Join(r.dir, "a"))
	r.b = startStorageNode(t, r.sw, r.keys, nodeBMAC, "b.img", filepath.Join(r.dir, "b"))
	r.ctl.spec = nodeclient.VolumeSpec{ID: "1", Name: "db", SizeMB: 16, Epoch: 1, Replicas: []nodeclient.SpecReplica{
		{Node: r.a.agent.NodeID(), MAC: nodeMAC, Shelf: 1000, Slot: 0, InSync: true},
		{Node: r.b.agent.NodeID(), MAC: nodeBMAC, Shelf: 1000, Slot: 1, InSync: true},
	}}
	return r
}

func (r *storageRig) assignment(slot uint8, disk string) nodeclient.ReplicaAssignment {
	return nodeclient.ReplicaAssignment{Volume: "1", Name: "db", Disk: disk, Shelf: 1000, Slot: slot, SizeMB: 16, Epoch: 1, InSync: true}
}

// assign sends a node its list, once more if the node restarted since the
// last call (the session says so once).
func (r *storageRig) assign(t *testing.T, node proto.MAC, list ...nodeclient.ReplicaAssignment) (nodeclient.AssignReply, error) {
	t.Helper()
	rep, err := r.client.Assign(ctx(t), node, list)
	if errors.Is(err, proto.ErrPeerRestarted) {
		rep, err = r.client.Assign(ctx(t), node, list)
	}
	return rep, err
}

// assignBoth places the volume's replicas on A and B.
func (r *storageRig) assignBoth(t *testing.T) {
	t.Helper()
	for _, x := range []struct {
		mac  proto.MAC
		asg  nodeclient.ReplicaAssignment
		node string
	}{{nodeMAC, r.assignment(0, "a.img"), "A"}, {nodeBMAC, r.assignment(1, "b.img"), "B"}} {
		rep, err := r.client.Assign(ctx(t), x.mac, []nodeclient.ReplicaAssignment{x.asg})
		if err != nil {
			t.Fatalf("Assign to %s: %v", x.node, err)
		}
		if len(rep.Replicas) != 1 || rep.Replicas[0].Error != "" || rep.Replicas[0].Epoch != 1 {
			t.Fatalf("Assign to %s answered %+v, want the replica served at epoch 1", x.node, rep)
		}
	}
}

// probeDevice opens shelf 1000 slot slot from the switch as another
// initiator registered at epoch, and returns it with its close.
func (r *storageRig) probeDevice(t *testing.T, slot uint8, epoch uint64) (*initiator.Device, func()) {
	t.Helper()
	icfg := initiator.DefaultConfig()
	icfg.Links = []proto.Link{r.sw.Link(probeMAC, proto.EtherTypeAoE)}
	in, err := initiator.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := in.Open(ctx(t), 1000, slot)
	if err != nil {
		in.Close()
		t.Fatalf("opening 1000.%d: %v", slot, err)
	}
	closeAll := func() { d.Close(); in.Close() }
	if err := d.SetEpoch(ctx(t), epoch); err != nil {
		closeAll()
		t.Fatalf("registering at %d on 1000.%d: %v", epoch, slot, err)
	}
	return d, closeAll
}

// probe reads shelf 1000 slot slot from the switch as another initiator
// registered at epoch: what the replica holds.
func (r *storageRig) probe(t *testing.T, slot uint8, epoch uint64, off int64, n int) []byte {
	t.Helper()
	d, closeAll := r.probeDevice(t, slot, epoch)
	defer closeAll()
	p := make([]byte, n)
	if _, err := d.ReadAtContext(ctx(t), p, off); err != nil {
		t.Fatalf("reading 1000.%d: %v", slot, err)
	}
	return p
}

func qemuIO(t *testing.T, socket string, cmds ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("qemu-io")
	if err != nil {
		t.Skip("needs qemu-io (apt qemu-utils)")
	}
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, "nbd+unix:///?socket="+socket)
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(c, bin, args...).CombinedOutput()
	return string(out), err
}

// A node serves the replicas it is assigned from pools on its drives,
// attaches the volume for a guest as NBD (its own replica in the pool, the
// other over AoE), and a fence on the other replica stops its writes.
func TestStorageAssignAttachFenceDetach(t *testing.T) {
	r := newStorageRig(t)
	r.assignBoth(t)
	socket := filepath.Join(r.dir, "vol1.sock")
	st, err := r.client.Attach(ctx(t), nodeMAC, r.ctl.get(), socket)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if !st.Attached || st.Socket != socket || st.Epoch != 1 || len(st.InSync) != 2 {
		t.Fatalf("Attach answered %+v, want attached at %s, epoch 1, both replicas in sync", st, socket)
	}
	out, err := qemuIO(t, socket, "write -P 0x5a 1M 256k", "flush", "read -P 0x5a 1M 256k")
	if err != nil || strings.Contains(out, "failed") {
		t.Fatalf("qemu-io through the attached volume: %v\n%s", err, out)
	}
	if got := r.probe(t, 1, 1, 1<<20, 256<<10); !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 256<<10)) {
		t.Errorf("the remote replica does not hold what was written through NBD")
	}

	// The controller fences the volume on B: A's next write is refused
	// there, fails, and B's disk does not change.
	if _, err := r.client.Fence(ctx(t), nodeBMAC, "1", 5, nil); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	out, err = qemuIO(t, socket, "write -P 0x77 1M 4k")
	if err == nil && !strings.Contains(out, "error") && !strings.Contains(out, "failed") {
		t.Errorf("a write after the fence succeeded:\n%s", out)
	}
	if got := r.probe(t, 1, 5, 1<<20, 4096); !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 4096)) {
		t.Errorf("a fenced write reached the fenced replica")
	}
	if len(r.ctl.get().Replicas) != 2 || r.ctl.get().Epoch != 1 {
		t.Errorf("a fenced client changed the controller's volume: %+v", r.ctl.get())
	}

	st, err = r.client.Detach(ctx(t), nodeMAC, "1")
	if err != nil || st.Attached {
		t.Fatalf("Detach = %+v, %v", st, err)
	}
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after Detach: %v", err)
	}
}

// A replica that stops answering is dropped through the controller; when
// it is back, a repair on the node that has the volume attached copies
// exactly the blocks it missed, and the replicas are the same again.
func TestStorageRepairAfterAReplicaFailed(t *testing.T) {
	r := newStorageRig(t)
	r.assignBoth(t)
	socket := filepath.Join(r.dir, "vol1.sock")
	if _, err := r.client.Attach(ctx(t), nodeMAC, r.ctl.get(), socket); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if out, err := qemuIO(t, socket, "write -P 0x11 0 1M"); err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	r.b.aoe.SetDown(true)
	if out, err := qemuIO(t, socket, "write -P 0x22 2M 128k", "write -P 0x33 5M 64k"); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("writes with replica B down: %v\n%s", err, out)
	}
	spec := r.ctl.get()
	if spec.Epoch != 2 || spec.Replicas[1].InSync {
		t.Fatalf("controller's volume after B failed: %+v, want epoch 2 and B out of sync", spec)
	}
	st, err := r.client.VolumeStatus(ctx(t), nodeMAC, "1")
	if err != nil || st.Dirty != 3 || len(st.InSync) != 1 {
		t.Fatalf("VolumeStatus = %+v, %v; want 3 dirty blocks, one replica in sync", st, err)
	}
	r.b.aoe.SetDown(false)
	rep, err := r.client.Repair(ctx(t), nodeMAC, spec, r.b.agent.NodeID())
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	if rep.Full || rep.Dirty != 3 || rep.Blocks != 3 || rep.Bytes != 3*64<<10 {
		t.Errorf("repair report %+v, want 3 dirty blocks copied, not full", rep)
	}
	if spec := r.ctl.get(); spec.Epoch != 3 || !spec.Replicas[1].InSync || rep.Epoch != 3 {
		t.Errorf("controller's volume after the repair: %+v (report epoch %d), want epoch 3, both in sync", spec, rep.Epoch)
	}
	a, b := r.probe(t, 0, 3, 0, 8<<20), r.probe(t, 1, 3, 0, 8<<20)
	if !bytes.Equal(a, b) {
		t.Errorf("the replicas differ after the repair")
	}
	st, err = r.client.VolumeStatus(ctx(t), nodeMAC, "1")
	if err != nil || st.LastResync == nil || st.LastResync.Blocks != 3 || st.Dirty != 0 {
		t.Errorf("VolumeStatus after the repair = %+v, %v; want the last resync and no dirty block", st, err)
	}
}

// A drive that holds something else is refused, never overwritten; an
// empty list removes exports but deletes nothing; a list that leaves a
// volume out deletes it; replicas come back after a restart.
func TestStorageDriveSafetyAndRestart(t *testing.T) {
	r := newStorageRig(t)
	// B's drive holds data that is not a pool.
	r.b.stop()
	junk := bytes.Repeat([]byte("not a pool "), 100)
	f, err := os.OpenFile(r.b.drive, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(junk, 0)
	f.Close()
	r.b = startStorageNode(t, r.sw, r.keys, nodeBMAC, "b.img", filepath.Join(r.dir, "b"))
	rep, err := r.assign(t, nodeBMAC, r.assignment(1, "b.img"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Replicas) != 1 || !strings.Contains(rep.Replicas[0].Error, "not an mvstack pool") {
		t.Errorf("Assign on a drive with data = %+v, want an error saying it is not a pool", rep)
	}
	if b, _ := os.ReadFile(r.b.drive); !bytes.Equal(b[:len(junk)], junk) {
		t.Errorf("the drive with data was overwritten")
	}

	// A: write through a remote initiator, then an empty list.
	if _, err := r.client.Assign(ctx(t), nodeMAC, []nodeclient.ReplicaAssignment{r.assignment(0, "a.img")}); err != nil {
		t.Fatal(err)
	}
	write := func(fill byte) {
		t.Helper()
		d, closeAll := r.probeDevice(t, 0, 1)
		defer closeAll()
		if _, err := d.WriteAtContext(ctx(t), bytes.Repeat([]byte{fill}, 4096), 0); err != nil {
			t.Fatal(err)
		}
	}
	write(0x42)
	if rep, err := r.client.Assign(ctx(t), nodeMAC, nil); err != nil || len(rep.Replicas) != 0 {
		t.Fatalf("empty Assign = %+v, %v", rep, err)
	}
	if got := r.a.agent.Replicas(); len(got) != 0 {
		t.Errorf("replicas served after an empty list: %+v", got)
	}
	if _, err := r.client.Assign(ctx(t), nodeMAC, []nodeclient.ReplicaAssignment{r.assignment(0, "a.img")}); err != nil {
		t.Fatal(err)
	}
	if got := r.probe(t, 0, 1, 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{0x42}, 4096)) {
		t.Errorf("an empty list deleted the replica's data")
	}

	// Restart: the replica is served again at its persisted epoch.
	if _, err := r.client.Fence(ctx(t), nodeMAC, "1", 4, nil); err != nil {
		t.Fatal(err)
	}
	r.a.stop()
	r.a = startStorageNode(t, r.sw, r.keys, nodeMAC, "a.img", filepath.Join(r.dir, "a"))
	got := r.a.agent.Replicas()
	if len(got) != 1 || got[0].Volume != "1" || got[0].Epoch != 4 || got[0].Error != "" {
		t.Fatalf("replicas after a restart: %+v, want volume 1 served at epoch 4", got)
	}
	if b := r.probe(t, 0, 4, 0, 4096); !bytes.Equal(b, bytes.Repeat([]byte{0x42}, 4096)) {
		t.Errorf("the replica's data is not served after a restart")
	}

	// A list that leaves volume 1 out deletes it.
	other := nodeclient.ReplicaAssignment{Volume: "2", Disk: "a.img", Shelf: 1000, Slot: 5, SizeMB: 8, Epoch: 1}
	if _, err := r.assign(t, nodeMAC, other); err != nil {
		t.Fatal(err)
	}
	asg := r.assignment(0, "a.img")
	if _, err := r.client.Assign(ctx(t), nodeMAC, []nodeclient.ReplicaAssignment{other, asg}); err != nil {
		t.Fatal(err)
	}
	if b := r.probe(t, 0, 1, 0, 4096); !bytes.Equal(b, make([]byte, 4096)) {
		t.Errorf("volume 1 was not deleted when a list left it out: it still holds its data")
	}
}

// The node's own replica is read and written in its pool, not over AoE,
// and obeys the same fence as the export: once the controller fences the
// volume on this node, the attached volume's writes stop reaching it.
func TestStorageLocalReplicaObeysTheFence(t *testing.T) {
	r := newStorageRig(t)
	r.ctl.mu.Lock()
	r.ctl.spec.Replicas = r.ctl.spec.Replicas[:1] // one replica, on A
	r.ctl.mu.Unlock()
	if _, err := r.client.Assign(ctx(t), nodeMAC, []nodeclient.ReplicaAssignment{r.assignment(0, "a.img")}); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(r.dir, "vol1.sock")
	if _, err := r.client.Attach(ctx(t), nodeMAC, r.ctl.get(), socket); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if out, err := qemuIO(t, socket, "write -P 0x31 0 64k", "flush"); err != nil || strings.Contains(out, "failed") {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	if got := r.probe(t, 0, 1, 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{0x31}, 4096)) {
		t.Fatalf("the local replica does not hold what was written")
	}
	if _, err := r.client.Fence(ctx(t), nodeMAC, "1", 2, nil); err != nil {
		t.Fatalf("Fence: %v", err)
	}
	out, err := qemuIO(t, socket, "write -P 0x32 0 64k")
	if err == nil && !strings.Contains(out, "error") && !strings.Contains(out, "failed") {
		t.Errorf("a write through the fenced local replica succeeded:\n%s", out)
	}
	if got := r.probe(t, 0, 2, 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{0x31}, 4096)) {
		t.Errorf("a write after the fence reached the local replica")
	}
}
