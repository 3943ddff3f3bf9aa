package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/controller/dbbackup"
	"github.com/mvstack/mvstack/controller/nodetest"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// call sends a REST request to replica i and decodes the answer into out.
func (r *rig) call(t *testing.T, i int, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+r.srv[i].APIAddr()+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, b, err)
		}
	}
	if res.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

// TestVolumesEndToEnd runs the storage loop on a 3-replica cluster with
// simulated nodes: assignments reach the nodes, a volume is attached
// through a follower, its writer dies and is fenced by the leader, a
// stale replica is repaired on request, and a new leader re-pushes.
func TestVolumesEndToEnd(t *testing.T) {
	r := newRig(t, 0)
	for i := 1; i <= 3; i++ {
		inv := inventory(i)
		inv.Disks = []state.Disk{{Name: "sda", SizeMB: 1000}}
		r.dir.Add(proto.MAC{0x0c, 0xc4, 0, 0, 0, byte(i)}, inv)
	}
	l := r.leader(t)
	f := (l + 1) % 3
	replicatest.WaitFor(t, "3 nodes registered", func() bool { return r.count(f) == 3 })
	var disks []string
	for i := 1; i <= 3; i++ {
		disks = append(disks, fmt.Sprintf("%q", state.DiskID(fmt.Sprintf("%08x", i), "sda")))
	}
	if c := r.call(t, f, "POST", "/api/datastores", fmt.Sprintf(`{"name":"ds","disks":[%s,%s,%s],"replicas":2}`, disks[0], disks[1], disks[2]), nil); c != 201 {
		t.Fatalf("create datastore: %d", c)
	}
	var v state.Volume
	if c := r.call(t, f, "POST", "/api/volumes", `{"name":"v","datastore":"1","size_mb":100}`, &v); c != 201 {
		t.Fatalf("create volume: %d", c)
	}
	for _, rep := range v.Replicas {
		replicatest.WaitFor(t, "node "+rep.Node+"'s assignment", func() bool {
			a := r.dir.Assigned(rep.Node)
			return len(a) == 1 && a[0].Volume == v.ID && a[0].Shelf == rep.Shelf && a[0].Disk == "sda" && a[0].InSync
		})
	}
	var writer string
	for i := 1; i <= 3; i++ {
		if id := fmt.Sprintf("%08x", i); !slices.ContainsFunc(v.Replicas, func(r state.VolumeReplica) bool { return r.Node == id }) {
			writer = id
		}
	}

	// Attach through a follower (forwarded to the leader).
	var at struct {
		Node, Socket string
		Attached     bool
	}
	if c := r.call(t, f, "POST", "/api/volumes/"+v.ID+"/attach", `{"node":"`+writer+`"}`, &at); c != 200 || !at.Attached || at.Socket == "" {
		t.Fatalf("attach: %d %+v", c, at)
	}
	var got struct {
		state.Volume
		Live *struct{ Socket string } `json:"live"`
	}
	replicatest.WaitFor(t, "the attachment on the follower", func() bool {
		r.call(t, f, "GET", "/api/volumes/"+v.ID, "", &got)
		return got.AttachedTo != ""
	})
	if got.AttachedTo != writer || got.Live == nil || got.Live.Socket != at.Socket {
		t.Errorf("GET after attach: attached to %q live %+v", got.AttachedTo, got.Live)
	}

	// A stale replica is repaired by the writer on request.
	stale := v.Replicas[1].Node
	var cur state.Volume
	r.call(t, l, "GET", "/api/volumes/"+v.ID, "", &cur)
	if _, err := r.srv[r.leader(t)].Replica().Apply(t.Context(), state.SetInSync{At: cur.Updated, Volume: v.ID, Epoch: cur.Epoch, InSync: []string{v.Replicas[0].Node}}); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Started []struct{ Node, Repairer string }
	}
	if c := r.call(t, f, "POST", "/api/volumes/"+v.ID+"/repair", "", &rep); c != 202 || len(rep.Started) != 1 || rep.Started[0].Repairer != writer || rep.Started[0].Node != stale {
		t.Errorf("repair: %d %+v, want %s repairing %s", c, rep, writer, stale)
	}
	replicatest.WaitFor(t, "the repair recorded", func() bool {
		var lr *state.Repair
		r.srv[f].Replica().Read(func(s *state.State) { lr = s.Volumes[v.ID].LastRepair })
		return lr != nil && lr.Node == stale && lr.Repairer == writer
	})

	// The writer dies: liveness puts it in error and the leader fences it.
	r.dir.ResetCalls()
	r.dir.SetAlive(writer, false)
	replicatest.WaitFor(t, "the dead writer fenced", func() bool {
		var a string
		r.srv[f].Replica().Read(func(s *state.State) { a = s.Volumes[v.ID].AttachedTo })
		return a == ""
	})
	var fenced []string
	for _, c := range r.dir.Calls() {
		if c.Method == nodetest.Fence {
			fenced = append(fenced, c.Node)
		}
	}
	if len(fenced) != 2 {
		t.Errorf("fence calls to %v, want both replica holders", fenced)
	}

	// A new leader sends every node its list again.
	r.dir.ResetCalls()
	ol := r.leader(t)
	for j := range r.trans {
		if j != ol {
			r.trans[ol].Disconnect(r.trans[j].LocalAddr())
			r.trans[j].Disconnect(r.trans[ol].LocalAddr())
		}
	}
	nl := r.leader(t, ol)
	_, term := r.srv[nl].Replica().Leadership()
	replicatest.WaitFor(t, "the new leader's pushes", func() bool {
		n := 0
		for _, c := range r.dir.Calls() {
			if c.Method == nodetest.Assign && c.Term == term {
				n++
			}
		}
		return n >= 2 // the live nodes
	})
}

// memDisk is a volume in memory for the db_metadata copies.
type memDisk struct {
	mu sync.Mutex
	b  []byte
}

func (d *memDisk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return copy(p, d.b[off:]), nil
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return copy(d.b[off:], p), nil
}

func (d *memDisk) Flush() error { return nil }
func (d *memDisk) Close() error { return nil }

// The leader copies its raft snapshots to the db_metadata volume, having
// reserved its replicas for itself; the copy installs into a new cluster.
func TestSnapshotsCopiedToTheDBMetadataVolume(t *testing.T) {
	disk := &memDisk{b: make([]byte, 16<<20)}
	var opened atomic.Int32
	r := newRig(t, 0, func(c *controller.Config) {
		c.DBBackup.Interval = 100 * time.Millisecond
		c.DBBackup.Open = func(ctx context.Context, spec nodeclient.VolumeSpec) (dbbackup.Target, error) {
			opened.Add(1)
			return disk, nil
		}
	})
	for i := 1; i <= 2; i++ {
		inv := inventory(i)
		inv.Disks = []state.Disk{{Name: "sda", SizeMB: 1000}}
		r.dir.Add(proto.MAC{0x0c, 0xc4, 0, 0, 0, byte(i)}, inv)
	}
	l := r.leader(t)
	replicatest.WaitFor(t, "2 nodes registered", func() bool { return r.count(l) == 2 })
	d1, d2 := state.DiskID("00000001", "sda"), state.DiskID("00000002", "sda")
	if c := r.call(t, l, "POST", "/api/datastores", `{"name":"db","disks":["`+d1+`","`+d2+`"],"replicas":2,"db_metadata":true}`, nil); c != 201 {
		t.Fatalf("datastore: %d", c)
	}
	if c := r.call(t, l, "POST", "/api/volumes", `{"name":"ctl-db","datastore":"1","size_mb":16}`, nil); c != 201 {
		t.Fatalf("volume: %d", c)
	}
	l = r.leader(t)
	if err := r.srv[l].Replica().Snapshot(); err != nil {
		t.Fatal(err)
	}
	info, _, err := r.srv[l].Replica().LatestSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var h dbbackup.Header
	var data []byte
	replicatest.WaitFor(t, "the snapshot on the volume", func() bool {
		h, data, err = dbbackup.ReadLatest(disk, 16<<20)
		return err == nil && h.Index >= info.Index
	})
	if h.Writer != r.srv[l].Replica().ID() {
		t.Errorf("written by %q, want the leader %s", h.Writer, r.srv[l].Replica().ID())
	}
	reserved := false
	for _, c := range r.dir.Calls() {
		if c.Method == nodetest.Fence && c.Volume == "1" {
			reserved = true
		}
	}
	if !reserved {
		t.Error("the volume's replicas were not reserved before the copy")
	}
	// The copy starts a new cluster holding the volume.
	dir := filepath.Join(t.TempDir(), "restored")
	cfg := replicatest.FastConfig()
	cfg.ID, cfg.DataDir = "r1", dir
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg.RaftAddr = ln.Addr().String()
	ln.Close()
	if err := replica.InstallSnapshot(dir, []replica.Peer{{ID: cfg.ID, RaftAddr: cfg.RaftAddr}}, h.Index, h.Term, data); err != nil {
		t.Fatal(err)
	}
	rep, err := replica.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Shutdown()
	replicatest.WaitFor(t, "the restored replica to lead", rep.IsLeader)
	var name string
	rep.Read(func(s *state.State) {
		if v := s.Volumes["1"]; v != nil {
			name = v.Name
		}
	})
	if name != "ctl-db" {
		t.Errorf("restored state has volume 1 %q, want ctl-db", name)
	}
}
