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

	"github.com/mvstack/mvstack/controller/client"
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
	n := &fakeNode{t: t, id: link.Addr().NodeID(), mac: link.Addr(), ctl: ctl, ep: ep, session: uint64(time.Now().UnixNano()), calls: map[string]int{}, done: make(chan struct{})}
	nodeclient.Handle(ep, nodeclient.MethodProbe, func(ctx context.Context, from proto.MAC, req nodeclient.ProbeRequest) (nodeclient.Heartbeat, error) {
		return n.hb(), nil
	})
	nodeclient.Handle(ep, nodeclient.MethodAssign, func(ctx context.Context, from proto.MAC, req nodeclient.AssignRequest) (nodeclient.AssignReply, error) {
		n.note(nodeclient.MethodAssign)
		n.mu.Lock()
		n.assign = req.Replicas
		n.mu.Unlock()
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

// TestServeDrivesVolumesOverEthernet runs a real mvcontroller process with
// --iface on a bridge with two fake nodes, and drives every storage action
// through the osd binary: assignments, set_in_sync, attach, status, repair,
// fence, detach, and the fence of a writer that dies.
func TestServeDrivesVolumesOverEthernet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_NET_ADMIN and CAP_NET_RAW (veth, a bridge, AF_PACKET): run as root")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// A bridge with the controller and two nodes, each on a veth.
	br := fmt.Sprintf("mvbr%d", os.Getpid()%10000)
	sh(t, "ip", "link", "add", br, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", br).Run() })
	sh(t, "ip", "link", "set", br, "up")
	ifaces := map[string]string{}
	for i, name := range []string{"c", "a", "b"} {
		in, out := fmt.Sprintf("mvt%s%d", name, os.Getpid()%10000), fmt.Sprintf("mvt%s%dp", name, os.Getpid()%10000)
		sh(t, "ip", "link", "add", in, "type", "veth", "peer", "name", out)
		t.Cleanup(func() { exec.Command("ip", "link", "del", in).Run() })
		sh(t, "ip", "link", "set", in, "address", fmt.Sprintf("0c:c4:7a:00:%02x:%02x", os.Getpid()%251, i+1))
		sh(t, "ip", "link", "set", out, "master", br)
		sh(t, "ip", "link", "set", out, "up")
		sh(t, "ip", "link", "set", in, "up")
		ifaces[name] = in
	}
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "cluster.key")
	if err := proto.WriteKeyFile(keyFile, k); err != nil {
		t.Fatal(err)
	}
	keys, err := proto.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	bin, osdBin := filepath.Join(dir, "mvcontroller"), filepath.Join(dir, "osd")
	if err := localcluster.Build(ctx, ".", bin); err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Build(ctx, "../osd", osdBin); err != nil {
		t.Fatal(err)
	}
	raftAddr, httpAddr := freeAddr(t), freeAddr(t)
	tokFile := filepath.Join(dir, "admin.token")
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--id", "c1", "--raft-addr", raftAddr, "--http-addr", httpAddr, "--data-dir", filepath.Join(dir, "data"),
		"--admin-token-file", tokFile, "--iface", ifaces["c"], "--key", keyFile, "--bootstrap", "c1="+raftAddr+"/"+httpAddr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mvcontroller:\n%s", logs.String())
		}
	})
	ctlMAC := macOf(t, ifaces["c"])
	a := startFakeNode(t, ifaces["a"], keys, ctlMAC)
	b := startFakeNode(t, ifaces["b"], keys, ctlMAC)

	var tok string
	if err := localcluster.Retry(ctx, func() error {
		bs, err := os.ReadFile(tokFile)
		tok = strings.TrimSpace(string(bs))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cl := client.New(httpAddr, tok)
	osd := func(args ...string) (string, error) {
		c := exec.CommandContext(ctx, osdBin, append([]string{"--url", httpAddr, "--token", tok}, args...)...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		if err != nil {
			err = fmt.Errorf("osd %s: %w: %s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), err
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond) // polling a real process
		}
	}
	for _, n := range []*fakeNode{a, b} {
		inv := map[string]any{"hostname": "n" + n.id, "disks": []map[string]any{{"name": "sda", "size_mb": 1000}}}
		if err := localcluster.Retry(ctx, func() error {
			return cl.Do(ctx, "POST", "/api/nodes", map[string]any{"mac": n.mac.String(), "inventory": inv}, nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var disks []string
	out, err := osd("get_disks", "--json", "--filter", "id")
	if err != nil {
		t.Fatal(err)
	}
	var dl []struct{ ID string }
	json.Unmarshal([]byte(out), &dl)
	for _, d := range dl {
		disks = append(disks, d.ID)
	}
	if _, err := osd("create_datastore", "--name=ds", "--disks="+strings.Join(disks, ","), "--replicas=2"); err != nil {
		t.Fatal(err)
	}
	if _, err := osd("create_volume", "--name=v", "--datastore=1", "--size=100"); err != nil {
		t.Fatal(err)
	}
	assigned := func(n *fakeNode) []nodeclient.ReplicaAssignment {
		n.mu.Lock()
		defer n.mu.Unlock()
		return slices.Clone(n.assign)
	}
	for _, n := range []*fakeNode{a, b} {
		wait("node "+n.id+"'s assignment", func() bool { l := assigned(n); return len(l) == 1 && l[0].Disk == "sda" && l[0].Epoch == 1 })
	}

	// Attach to a; a drops b at the epoch it saw; the stale decision is refused.
	out, err = osd("attach_volume", "--id=1", "--node="+a.id, "--socket=/tmp/v1.sock", "--filter", "attached,socket")
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
