package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/dbbackup"
	"github.com/mvstack/mvstack/controller/localcluster"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// fakeNode is a node's storage side on a real interface: it sends
// heartbeats, answers probes and the storage methods, and records them.
// Its repair puts the stale replica back with set_in_sync, as mvnode does.
type fakeNode struct {
	t       *testing.T
	id      string
	mac     proto.MAC
	ctl     proto.MAC
	ep      *proto.Endpoint
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	session uint64
	calls   map[string]int
	assign  []nodeclient.ReplicaAssignment
	fences  []nodeclient.FenceRequest
	// the replicas exported over AoE, backed by files in dir
	aoe   *target.Server
	dir   string
	files map[string]string // volume → file
}

func (n *fakeNode) hb() nodeclient.Heartbeat {
	n.mu.Lock()
	defer n.mu.Unlock()
	return nodeclient.Heartbeat{NodeID: n.id, MAC: n.mac, Epoch: n.session, At: time.Now()}
}

func (n *fakeNode) count(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

func (n *fakeNode) note(method string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls[method]++
}

// export serves the replicas of list over AoE, each from a sparse file.
func (n *fakeNode) export(list []nodeclient.ReplicaAssignment) {
	for _, a := range list {
		if _, ok := n.files[a.Volume]; ok {
			continue
		}
		path := filepath.Join(n.dir, n.id+"-"+a.Volume+".img")
		f, err := os.Create(path)
		if err == nil {
			err = f.Truncate(int64(a.SizeMB) << 20)
			f.Close()
		}
		var be *target.File
		if err == nil {
			be, err = target.OpenFile(path, target.FileOptions{})
		}
		if err == nil {
			_, err = n.aoe.AddExport(target.ExportConfig{Shelf: a.Shelf, Slot: a.Slot, Backend: be, BufferCount: 64, Epoch: max(a.Epoch, 1)})
		}
		if err != nil {
			n.t.Errorf("node %s: exporting volume %s: %v", n.id, a.Volume, err)
			continue
		}
		n.files[a.Volume] = path
	}
}

func startFakeNode(t *testing.T, iface string, keys *proto.Keyring, ctl proto.MAC) *fakeNode {
	t.Helper()
	link, err := proto.OpenPacketLink(iface, proto.EtherTypeControl, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	ep, err := proto.NewEndpoint(link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{t: t, id: link.Addr().NodeID(), mac: link.Addr(), ctl: ctl, ep: ep, session: uint64(time.Now().UnixNano()), calls: map[string]int{},
		done: make(chan struct{}), dir: t.TempDir(), files: map[string]string{}}
	alink, err := proto.OpenPacketLink(iface, proto.EtherTypeAoE, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.aoe, err = target.NewServer(alink, target.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() { defer close(adone); n.aoe.Serve(actx) }()
	t.Cleanup(func() { acancel(); alink.Close(); <-adone })
	nodeclient.Handle(ep, nodeclient.MethodProbe, func(ctx context.Context, from proto.MAC, req nodeclient.ProbeRequest) (nodeclient.Heartbeat, error) {
		return n.hb(), nil
	})
	nodeclient.Handle(ep, nodeclient.MethodAssign, func(ctx context.Context, from proto.MAC, req nodeclient.AssignRequest) (nodeclient.AssignReply, error) {
		n.note(nodeclient.MethodAssign)
		n.mu.Lock()
		defer n.mu.Unlock()
		n.assign = req.Replicas
		n.export(req.Replicas)
		return nodeclient.AssignReply{}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodFence, func(ctx context.Context, from proto.MAC, req nodeclient.FenceRequest) (nodeclient.AssignReply, error) {
		n.note(nodeclient.MethodFence)
		n.mu.Lock()
		n.fences = append(n.fences, req)
		n.mu.Unlock()
		return nodeclient.AssignReply{}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodAttach, func(ctx context.Context, from proto.MAC, req nodeclient.AttachRequest) (nodeclient.VolumeStatus, error) {
		n.note(nodeclient.MethodAttach)
		return nodeclient.VolumeStatus{Volume: req.Volume.ID, Attached: true, Socket: req.Socket, Epoch: req.Volume.Epoch, BlockSize: 65536}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodDetach, func(ctx context.Context, from proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeStatus, error) {
		n.note(nodeclient.MethodDetach)
		return nodeclient.VolumeStatus{Volume: req.Volume}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodVolumeStatus, func(ctx context.Context, from proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeStatus, error) {
		return nodeclient.VolumeStatus{Volume: req.Volume, Attached: true, Socket: "/tmp/v.sock", Dirty: 5, BlockSize: 65536}, nil
	})
	nodeclient.Handle(ep, nodeclient.MethodRepair, func(ctx context.Context, from proto.MAC, req nodeclient.RepairRequest) (nodeclient.ResyncReport, error) {
		n.note(nodeclient.MethodRepair)
		var in []string
		for _, r := range req.Volume.Replicas {
			in = append(in, r.Node)
		}
		sp, err := nodeclient.SetInSync(ctx, ep, n.ctl, nodeclient.SetInSyncRequest{Volume: req.Volume.ID, Epoch: req.Volume.Epoch, InSync: in})
		if err != nil {
			return nodeclient.ResyncReport{}, err
		}
		return nodeclient.ResyncReport{Volume: req.Volume.ID, Node: req.Node, Dirty: 5, Blocks: 5, Bytes: 5 << 16, Duration: time.Millisecond, Epoch: sp.Epoch, At: time.Now()}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		for ctx.Err() == nil {
			hctx, c := context.WithTimeout(ctx, time.Second)
			nodeclient.SendHeartbeat(hctx, ep, ctl, n.hb())
			c()
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond): // a node's heartbeat interval
			}
		}
	}()
	t.Cleanup(n.stop)
	return n
}

// stop silences the node for good.
func (n *fakeNode) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.ep.Close()
		n.cancel = nil
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ethRig is a real mvcontroller process with --iface on a bridge with two
// fake nodes, and the osd binary.
type ethRig struct {
	t                         *testing.T
	ctx                       context.Context
	dir, bin, osdBin, keyFile string
	tokFile, tok              string
	raftAddr, httpAddr        string
	ifaces                    map[string]string
	keys                      *proto.Keyring
	ctlMAC                    proto.MAC
	a, b                      *fakeNode
	cl                        *client.Client
	cmd                       *exec.Cmd
	logs                      *syncBuffer
}

func newEthRig(t *testing.T, ctx context.Context, serveArgs ...string) *ethRig {
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_NET_ADMIN and CAP_NET_RAW (veth, a bridge, AF_PACKET): run as root")
	}
	r := &ethRig{t: t, ctx: ctx, dir: t.TempDir(), ifaces: map[string]string{}}
	// A bridge with the controller and two nodes, each on a veth.
	tag := os.Getpid() % 10000
	br := fmt.Sprintf("mvbr%d", tag)
	sh(t, "ip", "link", "add", br, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", br).Run() })
	sh(t, "ip", "link", "set", br, "up")
	for i, name := range []string{"c", "a", "b"} {
		in, out := fmt.Sprintf("mvt%s%d", name, tag), fmt.Sprintf("mvt%s%dp", name, tag)
		sh(t, "ip", "link", "add", in, "type", "veth", "peer", "name", out)
		t.Cleanup(func() { exec.Command("ip", "link", "del", in).Run() })
		sh(t, "ip", "link", "set", in, "address", fmt.Sprintf("0c:c4:7a:00:%02x:%02x", os.Getpid()%251, i+1))
		sh(t, "ip", "link", "set", out, "master", br)
		sh(t, "ip", "link", "set", out, "up")
		sh(t, "ip", "link", "set", in, "up")
		r.ifaces[name] = in
	}
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	r.keyFile = filepath.Join(r.dir, "cluster.key")
	if err := proto.WriteKeyFile(r.keyFile, k); err != nil {
		t.Fatal(err)
	}
	if r.keys, err = proto.LoadKeyring(r.keyFile); err != nil {
		t.Fatal(err)
	}
	r.bin, r.osdBin = filepath.Join(r.dir, "mvcontroller"), filepath.Join(r.dir, "osd")
	if err := localcluster.Build(ctx, ".", r.bin); err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Build(ctx, "../osd", r.osdBin); err != nil {
		t.Fatal(err)
	}
	r.tokFile = filepath.Join(r.dir, "admin.token")
	r.raftAddr = freeAddr(t)
	r.serve(filepath.Join(r.dir, "data"), append([]string{"--bootstrap", "c1=" + r.raftAddr + "/" + r.httpAddr}, serveArgs...)...)
	r.ctlMAC = macOf(t, r.ifaces["c"])
	r.a = startFakeNode(t, r.ifaces["a"], r.keys, r.ctlMAC)
	r.b = startFakeNode(t, r.ifaces["b"], r.keys, r.ctlMAC)
	if err := localcluster.Retry(ctx, func() error {
		bs, err := os.ReadFile(r.tokFile)
		r.tok = strings.TrimSpace(string(bs))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.cl = client.New(r.httpAddr, r.tok)
	for _, n := range []*fakeNode{r.a, r.b} {
		inv := map[string]any{"hostname": "n" + n.id, "disks": []map[string]any{{"name": "sda", "size_mb": 1000}}}
		if err := localcluster.Retry(ctx, func() error {
			return r.cl.Do(ctx, "POST", "/api/nodes", map[string]any{"mac": n.mac.String(), "inventory": inv}, nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// serve starts mvcontroller serve as replica c1 on dataDir (a new HTTP
// address each time), stopping the one before.
func (r *ethRig) serve(dataDir string, extra ...string) {
	r.t.Helper()
	r.stop()
	r.httpAddr = freeAddr(r.t)
	for i, a := range extra { // the bootstrap names the HTTP address
		if strings.HasSuffix(a, "/") {
			extra[i] = a + r.httpAddr
		}
	}
	r.logs = &syncBuffer{}
	r.cmd = exec.Command(r.bin, append([]string{"serve", "--id", "c1", "--raft-addr", r.raftAddr, "--http-addr", r.httpAddr, "--data-dir", dataDir,
		"--admin-token-file", r.tokFile, "--iface", r.ifaces["c"], "--key", r.keyFile}, extra...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	cmd, logs := r.cmd, r.logs
	r.t.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if r.t.Failed() {
			r.t.Logf("mvcontroller:\n%s", logs.String())
		}
	})
	if r.cl != nil {
		r.cl = client.New(r.httpAddr, r.tok)
	}
}

// stop kills the running serve process.
func (r *ethRig) stop() {
	if r.cmd != nil && r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

func (r *ethRig) osd(args ...string) (string, error) {
	c := exec.CommandContext(r.ctx, r.osdBin, append([]string{"--url", r.httpAddr, "--token", r.tok}, args...)...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("osd %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), err
}

func (r *ethRig) wait(what string, cond func() bool) {
	r.t.Helper()
	for !cond() {
		if r.ctx.Err() != nil {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling a real process
	}
}

// disks returns the disk ids, in the order get_disks lists them.
func (r *ethRig) disks() []string {
	r.t.Helper()
	out, err := r.osd("get_disks", "--json", "--filter", "id")
	if err != nil {
		r.t.Fatal(err)
	}
	var dl []struct{ ID string }
	json.Unmarshal([]byte(out), &dl)
	var ids []string
	for _, d := range dl {
		ids = append(ids, d.ID)
	}
	return ids
}

func assigned(n *fakeNode) []nodeclient.ReplicaAssignment {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.assign)
}

// TestServeDrivesVolumesOverEthernet runs a real mvcontroller process with
// --iface on a bridge with two fake nodes, and drives every storage action
// through the osd binary: assignments, set_in_sync, attach, status, repair,
// fence, detach, and the fence of a writer that dies.
func TestServeDrivesVolumesOverEthernet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // building both binaries included
	defer cancel()
	r := newEthRig(t, ctx, "--db-backup-interval", "0")
	a, b, ctlMAC, osd, wait := r.a, r.b, r.ctlMAC, r.osd, r.wait
	if _, err := osd("create_datastore", "--name=ds", "--disks="+strings.Join(r.disks(), ","), "--replicas=2"); err != nil {
		t.Fatal(err)
	}
	if _, err := osd("create_volume", "--name=v", "--datastore=1", "--size=100"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*fakeNode{a, b} {
		wait("node "+n.id+"'s assignment", func() bool { l := assigned(n); return len(l) == 1 && l[0].Disk == "sda" && l[0].Epoch == 1 })
	}

	// Attach to a; a drops b at the epoch it saw; the stale decision is refused.
	out, err := osd("attach_volume", "--id=1", "--node="+a.id, "--socket=/tmp/v1.sock", "--filter", "attached,socket")
	if want := "attached=true\nsocket=/tmp/v1.sock\n"; err != nil || out != want {
		t.Fatalf("attach_volume: %v\n%s", err, out)
	}
	sp, err := nodeclient.SetInSync(ctx, a.ep, ctlMAC, nodeclient.SetInSyncRequest{Volume: "1", Epoch: 1, InSync: []string{a.id}})
	if err != nil || sp.Epoch != 2 {
		t.Fatalf("set_in_sync: %+v %v", sp, err)
	}
	if _, err := nodeclient.SetInSync(ctx, b.ep, ctlMAC, nodeclient.SetInSyncRequest{Volume: "1", Epoch: 1, InSync: []string{b.id}}); !errors.Is(err, nodeclient.ErrStaleEpoch) {
		t.Errorf("stale set_in_sync: %v, want ErrStaleEpoch", err)
	}
	wait("b's assignment out of sync", func() bool { l := assigned(b); return len(l) == 1 && !l[0].InSync && l[0].Epoch == 2 })
	out, err = osd("volume_status", "--id=1", "--filter", "attached_to,epoch,in_sync,live.dirty")
	if want := "attached_to=" + a.id + "\nepoch=2\nin_sync=" + a.id + "\nlive.dirty=5\n"; err != nil || out != want {
		t.Errorf("volume_status:\n%s\nwant:\n%s(%v)", out, want, err)
	}

	// Repair: a (the writer) copies and puts b back.
	out, err = osd("repair_volume", "--id=1", "--filter", "started.0.node,started.0.repairer")
	if want := "started.0.node=" + b.id + "\nstarted.0.repairer=" + a.id + "\n"; err != nil || out != want {
		t.Errorf("repair_volume: %v\n%s\nwant:\n%s", err, out, want)
	}
	wait("the repair recorded", func() bool {
		out, _ := osd("volume_status", "--id=1", "--filter", "last_repair.blocks")
		return out == "last_repair.blocks=5\n"
	})
	out, _ = osd("volume_status", "--id=1", "--filter", "epoch,in_sync")
	if want := "epoch=3\nin_sync=" + strings.Join(slices.Sorted(slices.Values([]string{a.id, b.id})), ",") + "\n"; out != want {
		t.Errorf("after the repair:\n%s\nwant:\n%s", out, want)
	}

	// Fence a off: the epoch goes up, the replicas are reserved for the controller.
	out, err = osd("fence_volume", "--id=1", "--node="+a.id, "--filter", "allow,detached,epoch")
	if want := "allow=" + ctlMAC.String() + "\ndetached=true\nepoch=4\n"; err != nil || out != want {
		t.Errorf("fence_volume: %v\n%s\nwant:\n%s", err, out, want)
	}
	for _, n := range []*fakeNode{a, b} {
		n.mu.Lock()
		last := n.fences[len(n.fences)-1]
		n.mu.Unlock()
		if last.Epoch != 4 || !slices.Equal(last.Allow, []proto.MAC{ctlMAC}) {
			t.Errorf("node %s's last fence %+v, want epoch 4 for the controller only", n.id, last)
		}
	}

	// Attach to b, detach.
	if _, err := osd("attach_volume", "--id=1", "--node="+b.id); err != nil {
		t.Fatal(err)
	}
	if out, err := osd("detach_volume", "--id=1", "--filter", "node"); err != nil || out != "node="+b.id+"\n" {
		t.Errorf("detach_volume: %v %q", err, out)
	}

	// b restarts (new session): it is sent its list again at once.
	before := b.count(nodeclient.MethodAssign)
	b.mu.Lock()
	b.session++
	b.mu.Unlock()
	wait("b's re-push after its restart", func() bool { return b.count(nodeclient.MethodAssign) > before })

	// The writer dies: the controller fences it by itself.
	if _, err := osd("attach_volume", "--id=1", "--node="+a.id); err != nil {
		t.Fatal(err)
	}
	a.stop()
	wait("the dead writer fenced", func() bool {
		out, _ := osd("volume_status", "--id=1", "--filter", "attached_to")
		return out == "attached_to=\n"
	})
	out, _ = osd("volume_status", "--id=1", "--filter", "epoch")
	t.Logf("after the writer died: %s", strings.TrimSpace(out))
}

func macOf(t *testing.T, iface string) proto.MAC {
	t.Helper()
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	var m proto.MAC
	copy(m[:], ifc.HardwareAddr)
	return m
}

// TestDBMetadataBackupAndRestoreOverAoE: the leader copies its raft
// snapshots to a db_metadata volume whose replicas the fake nodes export
// over real AoE; the controller is then lost, and restore --from-volume
// (finding the replicas by AoE discovery) starts a new one holding the
// state.
func TestDBMetadataBackupAndRestoreOverAoE(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // building both binaries included
	defer cancel()
	r := newEthRig(t, ctx, "--db-backup-interval", "200ms", "--snapshot-interval", "200ms", "--snapshot-threshold", "1")
	if _, err := r.osd("create_datastore", "--name=db", "--disks="+strings.Join(r.disks(), ","), "--replicas=2", "--db_metadata"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.osd("create_volume", "--name=ctl-db", "--datastore=1", "--size=8"); err != nil {
		t.Fatal(err)
	}
	// Both replicas hold an image.
	image := func(n *fakeNode) bool {
		n.mu.Lock()
		path := n.files["1"]
		n.mu.Unlock()
		if path == "" {
			return false
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		_, _, err = dbbackup.ReadLatest(bytes.NewReader(b), int64(len(b)))
		return err == nil
	}
	r.wait("a snapshot image on both replicas", func() bool { return image(r.a) && image(r.b) })
	// The log line follows the writes.
	r.wait("the controller's log of the copy", func() bool {
		return strings.Contains(r.logs.String(), "raft snapshot copied to the db_metadata volume")
	})

	// The controller is lost; a new one is restored from the volume.
	r.stop()
	restored := filepath.Join(r.dir, "restored")
	r.raftAddr = freeAddr(t)
	out, err := exec.CommandContext(ctx, r.bin, "restore", "--from-volume", "--iface", r.ifaces["c"], "--data-dir", restored,
		"--id", "c1", "--raft-addr", r.raftAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	t.Logf("restore:\n%s", out)
	r.serve(restored)
	var got string
	tries := 0
	r.wait("the restored controller to answer", func() bool {
		got, err = r.osd("get_volumes", "--id=1", "--filter", "name")
		if tries++; err != nil && tries%20 == 0 {
			t.Logf("restored controller: %v", err)
		}
		return err == nil
	})
	if got != "name=ctl-db\n" {
		t.Errorf("restored volume 1: %q, want ctl-db", got)
	}
	out2, err := r.osd("get_datastores", "--filter", "name,db_metadata")
	if err != nil || out2 != "db_metadata=true\nname=db\n" {
		t.Errorf("restored datastores: %v %q", err, out2)
	}
}

// syncBuffer collects a process's output; the test reads it while the
// process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
