package netns_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/node/pool"
	"github.com/mvstack/mvstack/test/netns"
)

// storageLab is issue 9's rack: one mvcontroller (host 0), three sim
// mvnodes with a drive file each (hosts 1-3) and a spare host (4) from
// which the test reaches the REST API. Jumbo frames, as AoE wants.
type storageLab struct {
	t      *testing.T
	lab    *netns.Lab
	bin    map[string]string
	dir    string
	key    string
	token  string
	ctl    *netns.Host
	cproc  *netns.Process
	nodes  []*netns.Host
	nproc  []*netns.Process
	drives []string
	spare  *netns.Host
	http   *http.Client
	work   string // fio and qemu-io run here
}

const (
	storageNodes = 3
	driveSize    = 1 << 30
)

func newStorageLab(t *testing.T) *storageLab {
	t.Helper()
	netns.RequireRoot(t)
	needTools(t, map[string]string{"qemu-io": "qemu-utils", "fio": "fio"})
	lab := netns.New(t, netns.Config{Hosts: storageNodes + 2, MTU: 9000, IPv4: true})
	bin := netns.BuildBinaries(t, "./cmd/mvcontroller", "./cmd/mvnode")
	dir := t.TempDir()
	key, tok, _ := clusterFiles(t, dir)
	sl := &storageLab{t: t, lab: lab, bin: bin, dir: dir, key: key, token: tok, ctl: lab.Hosts[0],
		nodes: lab.Hosts[1 : 1+storageNodes], spare: lab.Hosts[1+storageNodes], work: t.TempDir()}
	sl.nproc = make([]*netns.Process, storageNodes)
	sl.http = sl.spare.HTTPClient(30 * time.Second)
	for i := range sl.nodes {
		// A sparse file stands in for each node's drive.
		f := filepath.Join(dir, fmt.Sprintf("n%d-drive0.img", i+1))
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, driveSize); err != nil {
			t.Fatal(err)
		}
		sl.drives = append(sl.drives, f)
	}
	return sl
}

// start runs the controller and the three nodes and waits until every
// node is registered with its drive.
func (sl *storageLab) start(ctx context.Context) {
	sl.t.Helper()
	tokFile := filepath.Join(sl.dir, "admin.token")
	h := sl.ctl
	sl.cproc = h.Start(sl.t, sl.bin["mvcontroller"], "serve", "--id", "c1", "--raft-addr", h.IPv4.String()+":7000",
		"--http-addr", h.IPv4.String()+":8080", "--data-dir", filepath.Join(sl.dir, "c1"),
		"--admin-token-file", tokFile, "--iface", h.Iface, "--key", sl.key, "--log-level", "info",
		"--bootstrap", fmt.Sprintf("c1=%s:7000/%s:8080", h.IPv4, h.IPv4))
	if err := sl.cproc.WaitOutput(ctx, "nodes on "+h.Iface); err != nil {
		sl.t.Fatal(err)
	}
	for i := range sl.nodes {
		sl.startNode(ctx, i)
	}
	poll(sl.t, ctx, 60*time.Second, "three nodes registered with their drives", func() (bool, error) {
		disks, err := sl.disks(ctx)
		return len(disks) == storageNodes, err
	})
}

// startNode (re)starts node i with its drive and state directory.
func (sl *storageLab) startNode(ctx context.Context, i int) {
	sl.t.Helper()
	h := sl.nodes[i]
	sl.nproc[i] = h.Start(sl.t, sl.bin["mvnode"], "--iface", h.Iface, "--key", sl.key, "--driver", "sim",
		"--sim-hardware", "1x2x1,4G,0", "--rack", "r1", "--blade", h.Name,
		"--state-dir", filepath.Join(sl.dir, fmt.Sprintf("n%d-state", i+1)),
		"--volume-dir", filepath.Join(sl.dir, fmt.Sprintf("n%d-volumes", i+1)),
		"--drive-file", sl.drives[i], "--controller", sl.ctl.MAC.String(), "--log-level", "info",
		// A dead replica stalls writes this long before it is dropped
		// (30 s by default); the test need not wait that long, and a loaded
		// machine must not drop a live one.
		"--volume-io-timeout", "10s")
	if err := sl.nproc[i].WaitOutput(ctx, "answering on"); err != nil {
		sl.t.Fatal(err)
	}
}

func (sl *storageLab) api() *client.Client {
	c := client.New("http://"+sl.ctl.IPv4.String()+":8080", sl.token)
	c.HTTP = sl.http
	return c
}

type diskView struct {
	ID, Node, Name, State string
	SizeMB                uint64 `json:"size_mb"`
}

func (sl *storageLab) disks(ctx context.Context) ([]diskView, error) {
	var out struct{ Items []diskView }
	err := sl.api().Do(ctx, "GET", "/api/disks", nil, &out)
	return out.Items, err
}

type volumeView struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	SizeMB   uint64   `json:"size_mb"`
	Epoch    uint64   `json:"epoch"`
	InSync   []string `json:"in_sync"`
	Replicas []struct {
		Node, Disk  string
		Shelf, Slot int
	}
	AttachedTo string `json:"attached_to"`
	LastRepair *struct {
		Node   string `json:"node"`
		Full   bool   `json:"full"`
		Dirty  int    `json:"dirty"`
		Blocks int    `json:"blocks"`
		Bytes  int64  `json:"bytes"`
	} `json:"last_repair"`
}

func (v volumeView) replicaNodes() []string {
	var out []string
	for _, r := range v.Replicas {
		out = append(out, r.Node)
	}
	return out
}

func (sl *storageLab) volume(ctx context.Context, id string) (volumeView, error) {
	var v volumeView
	err := sl.api().Do(ctx, "GET", "/api/volumes/"+id, nil, &v)
	return v, err
}

// datastore creates a datastore of the given drives (all when none).
func (sl *storageLab) datastore(ctx context.Context, name string, replicas int, overcommit float64, nodes ...int) string {
	sl.t.Helper()
	disks, err := sl.disks(ctx)
	if err != nil {
		sl.t.Fatal(err)
	}
	var ids []string
	for _, d := range disks {
		if len(nodes) == 0 || slices.ContainsFunc(nodes, func(i int) bool { return d.Node == sl.nodeID(i) }) {
			ids = append(ids, d.ID)
		}
	}
	var out struct{ ID string }
	req := map[string]any{"name": name, "disks": ids, "replicas": replicas, "overcommit": overcommit, "trigger_repair": "manual"}
	if err := sl.api().Do(ctx, "POST", "/api/datastores", req, &out); err != nil {
		sl.t.Fatalf("create datastore %s: %v", name, err)
	}
	return out.ID
}

func (sl *storageLab) createVolume(ctx context.Context, name, ds string, sizeMB uint64) volumeView {
	sl.t.Helper()
	var v volumeView
	if err := sl.api().Do(ctx, "POST", "/api/volumes", map[string]any{"name": name, "datastore": ds, "size_mb": sizeMB}, &v); err != nil {
		sl.t.Fatalf("create volume %s: %v", name, err)
	}
	return v
}

// attach attaches volume id to node i and returns the NBD socket; the
// controller retries while the replicas' nodes set up their exports.
func (sl *storageLab) attach(ctx context.Context, id string, i int) string {
	sl.t.Helper()
	var st struct{ Socket string }
	poll(sl.t, ctx, 60*time.Second, "volume "+id+" attached to "+sl.nodeID(i), func() (bool, error) {
		err := sl.api().Do(ctx, "POST", "/api/volumes/"+id+"/attach", map[string]any{"node": sl.nodeID(i)}, &st)
		return err == nil && st.Socket != "", err
	})
	return st.Socket
}

func (sl *storageLab) nodeID(i int) string { return sl.nodes[i].MAC.NodeID() }

func (sl *storageLab) nodeIndex(id string) int {
	for i := range sl.nodes {
		if sl.nodeID(i) == id {
			return i
		}
	}
	sl.t.Fatalf("no node %s in the lab", id)
	return -1
}

// run runs a tool in the work directory and returns its output; failing
// is the caller's to judge.
func (sl *storageLab) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = sl.work
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// replicaHash stops node i and hashes its replica of volume id straight
// from the drive's pool.
func (sl *storageLab) replicaHash(ctx context.Context, i int, id string) string {
	sl.t.Helper()
	if p := sl.nproc[i]; p != nil && !p.Exited() {
		if err := p.Stop(ctx); err != nil {
			sl.t.Logf("stopping node %d: %v", i, err)
		}
	}
	p, err := pool.Open(sl.drives[i])
	if err != nil {
		sl.t.Fatal(err)
	}
	defer p.Close()
	v, err := p.Volume(id)
	if err != nil {
		sl.t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(v, 0, v.Size())); err != nil {
		sl.t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestStorageReplicaFailureAndResync is issue 9's first acceptance point:
// fio writes with verify through NBD on a 2-replica volume while one
// replica's node is killed; fio finishes without a verify error; the node
// comes back, a repair moves exactly the dirty blocks, the replica rejoins
// and both replicas hash the same.
func TestStorageReplicaFailureAndResync(t *testing.T) {
	sl := newStorageLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sl.start(ctx)
	ds := sl.datastore(ctx, "replicated", 2, 1)
	vol := sl.createVolume(ctx, "fio", ds, 512)
	if len(vol.Replicas) != 2 || vol.Replicas[0].Node == vol.Replicas[1].Node {
		t.Fatalf("volume replicas %+v: want two on distinct nodes", vol.Replicas)
	}
	// The volume is used on the node without a replica: both replicas
	// are remote, reached over AoE.
	user := -1
	for i := range sl.nodes {
		if !slices.Contains(vol.replicaNodes(), sl.nodeID(i)) {
			user = i
		}
	}
	sock := sl.attach(ctx, vol.ID, user)
	victim := sl.nodeIndex(vol.Replicas[1].Node)
	survivor := sl.nodeIndex(vol.Replicas[0].Node)

	fio := exec.CommandContext(ctx, "fio", "--name=storage", "--ioengine=nbd", "--uri=nbd+unix:///?socket="+sock,
		"--rw=randwrite", "--bs=4k-64k", "--iodepth=16", "--size=384m", "--verify=crc32c", "--verify_fatal=1",
		"--do_verify=1", "--output-format=json")
	fio.Dir = sl.work
	var fout strings.Builder
	fio.Stdout, fio.Stderr = &fout, &fout
	base := allocated(t, sl.drives[survivor])
	if err := fio.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill mid-way: once 64 of fio's 384 MiB are on the surviving drive.
	poll(t, ctx, 2*time.Minute, "fio writing its first 64 MiB", func() (bool, error) {
		return allocated(t, sl.drives[survivor]) >= base+64<<20, nil
	})
	t.Logf("killing node %s (replica %d.%d)", sl.nodeID(victim), vol.Replicas[1].Shelf, vol.Replicas[1].Slot)
	sl.nproc[victim].Kill()
	if err := fio.Wait(); err != nil {
		t.Fatalf("fio with verify failed while a replica's node died: %v\n%s", err, fout.String())
	}
	if !strings.Contains(fout.String(), `"error" : 0`) {
		t.Fatalf("fio did not finish cleanly:\n%s", fout.String())
	}
	poll(t, ctx, 30*time.Second, "the dead replica out of the in-sync set", func() (bool, error) {
		v, err := sl.volume(ctx, vol.ID)
		return err == nil && slices.Equal(v.InSync, []string{sl.nodeID(survivor)}), err
	})

	sl.startNode(ctx, victim)
	if err := sl.api().Do(ctx, "POST", "/api/volumes/"+vol.ID+"/repair", nil, nil); err != nil {
		t.Fatalf("repair: %v", err)
	}
	var v volumeView
	poll(t, ctx, 60*time.Second, "the replica resynced and back in sync", func() (bool, error) {
		var err error
		v, err = sl.volume(ctx, vol.ID)
		return err == nil && len(v.InSync) == 2 && v.LastRepair != nil, err
	})
	r := v.LastRepair
	t.Logf("repair: %d dirty blocks, %d copied (%d bytes), full=%v", r.Dirty, r.Blocks, r.Bytes, r.Full)
	if r.Full || r.Dirty == 0 || r.Blocks != r.Dirty {
		t.Errorf("repair moved %d blocks (full=%v) for %d dirty ones: want exactly the dirty ones", r.Blocks, r.Full, r.Dirty)
	}
	if err := sl.api().Do(ctx, "POST", "/api/volumes/"+vol.ID+"/detach", nil, nil); err != nil {
		t.Fatalf("detach: %v", err)
	}
	a, b := sl.replicaHash(ctx, survivor, vol.ID), sl.replicaHash(ctx, victim, vol.ID)
	if a != b {
		t.Fatalf("replicas differ after the resync: %s on %s, %s on %s", a, sl.nodeID(survivor), b, sl.nodeID(victim))
	}
}

// TestStorageSplitBrain: the writing node is cut off from the controller
// (it still reaches the replicas) and fenced; none of its later writes
// reach a disk.
func TestStorageSplitBrain(t *testing.T) {
	sl := newStorageLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sl.start(ctx)
	ds := sl.datastore(ctx, "replicated", 2, 1)
	vol := sl.createVolume(ctx, "db", ds, 64)
	user := -1
	for i := range sl.nodes {
		if !slices.Contains(vol.replicaNodes(), sl.nodeID(i)) {
			user = i
		}
	}
	sock := sl.attach(ctx, vol.ID, user)
	img := "driver=nbd,path=" + sock
	if out, err := sl.run(ctx, "qemu-io", "--image-opts", img, "-c", "write -P 0x11 0 8M", "-c", "flush"); err != nil {
		t.Fatalf("writing before the partition: %v\n%s", err, out)
	}
	if err := sl.lab.Block([]*netns.Host{sl.nodes[user]}, []*netns.Host{sl.ctl}); err != nil {
		t.Fatal(err)
	}
	if err := sl.lab.Block([]*netns.Host{sl.ctl}, []*netns.Host{sl.nodes[user]}); err != nil {
		t.Fatal(err)
	}
	if err := sl.api().Do(ctx, "POST", "/api/volumes/"+vol.ID+"/fence", map[string]any{"node": sl.nodeID(user)}, nil); err != nil {
		t.Fatalf("fence: %v", err)
	}
	out, err := sl.run(ctx, "qemu-io", "--image-opts", img, "-c", "write -P 0x22 0 8M", "-c", "flush")
	if err == nil && !strings.Contains(out, "error") {
		t.Errorf("the fenced node's write was accepted:\n%s", out)
	}
	t.Logf("the fenced writer sees: %s", strings.TrimSpace(out))
	want := sha256.New()
	zero := make([]byte, 1<<20)
	ones := make([]byte, 8<<20)
	for i := range ones {
		ones[i] = 0x11
	}
	want.Write(ones)
	for range 64 - 8 {
		want.Write(zero)
	}
	for _, r := range vol.Replicas {
		if got := sl.replicaHash(ctx, sl.nodeIndex(r.Node), vol.ID); got != hex.EncodeToString(want.Sum(nil)) {
			t.Errorf("replica on %s changed after its writer was fenced", r.Node)
		}
	}
}

// TestStorageThinOutOfSpace: a 10 GiB thin volume on a 1 GiB drive; the
// writer that fills the drive gets ENOSPC through NBD, and neither its own
// earlier data nor another volume on the drive is harmed.
func TestStorageThinOutOfSpace(t *testing.T) {
	sl := newStorageLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sl.start(ctx)
	ds := sl.datastore(ctx, "thin", 1, 16, 0)
	other := sl.createVolume(ctx, "other", ds, 64)
	big := sl.createVolume(ctx, "big", ds, 10<<10)
	user := 1
	osock := sl.attach(ctx, other.ID, user)
	if out, err := sl.run(ctx, "qemu-io", "--image-opts", "driver=nbd,path="+osock, "-c", "write -P 0x5a 0 64M", "-c", "flush"); err != nil {
		t.Fatalf("writing the other volume: %v\n%s", err, out)
	}
	bsock := sl.attach(ctx, big.ID, user)
	img := "driver=nbd,path=" + bsock
	args := []string{"--image-opts", img}
	for off := 0; off < 1200; off += 64 {
		args = append(args, "-c", fmt.Sprintf("write -P 0x77 %dM 64M", off))
	}
	out, err := sl.run(ctx, "qemu-io", args...)
	t.Logf("qemu-io filling the drive: %v", err)
	if !strings.Contains(out, "No space left on device") {
		t.Fatalf("writing 1200 MiB onto a 1 GiB drive: no ENOSPC:\n%s", out)
	}
	if out, err := sl.run(ctx, "qemu-io", "--image-opts", "-r", img, "-c", "read -P 0x77 0 512M"); err != nil {
		t.Errorf("data written before the drive filled is not intact: %v\n%s", err, out)
	}
	if out, err := sl.run(ctx, "qemu-io", "--image-opts", "-r", "driver=nbd,path="+osock, "-c", "read -P 0x5a 0 64M"); err != nil {
		t.Errorf("the other volume on the drive was harmed: %v\n%s", err, out)
	}
}

// allocated returns the bytes a (sparse) drive file holds on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
