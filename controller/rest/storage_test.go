package rest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
)

// storageEnv registers nodes 00000001..3, node i in rack ri, each with a
// 1000 MB disk sda, node 1 also with sdb, and returns the disk ids: sda of
// nodes 1..3, then sdb of node 1.
func storageEnv(t *testing.T) (*env, int, []string) { return storageEnvWith(t, nil) }

func storageEnvWith(t *testing.T, vols rest.Volumes) (*env, int, []string) {
	e := newEnvWith(t, vols)
	l := e.c.Leader(t)
	var ids []string
	for i := 1; i <= 3; i++ {
		disks := `[{"name":"sda","model":"file","size_mb":1000}` + map[bool]string{true: `,{"name":"sdb","size_mb":1000}`, false: ``}[i == 1] + `]`
		body := fmt.Sprintf(`{"mac":"02:00:00:00:00:0%d","inventory":{"hostname":"mv%d","memory_mb":8192,"disks":%s,"location":{"rack":"r%d","chassis":"c1","blade":"b1"}}}`, i, i, disks, i)
		if r := e.do(l, "POST", "/api/nodes", body); r.status != 201 {
			t.Fatalf("register node %d: %d %s", i, r.status, r.body)
		}
		ids = append(ids, state.DiskID(fmt.Sprintf("%08x", i), "sda"))
	}
	return e, l, append(ids, state.DiskID("00000001", "sdb"))
}

// unchanged returns a check that the datastores, disks and volumes the API
// shows are what they were when unchanged was called.
func (e *env) unchanged(i int) func(what string) {
	get := func() string {
		return string(e.do(i, "GET", "/api/datastores", "").body) + string(e.do(i, "GET", "/api/disks", "").body) + string(e.do(i, "GET", "/api/volumes", "").body)
	}
	before := get()
	return func(what string) {
		e.t.Helper()
		if after := get(); after != before {
			e.t.Errorf("%s changed the storage state:\nbefore %s\nafter  %s", what, before, after)
		}
	}
}

// want422 sends a request expecting 422 naming field with msg in the
// message and nothing changed.
func (e *env) want422(i int, method, path, body, field, msg string, opts ...opt) {
	e.t.Helper()
	check := e.unchanged(i)
	r := e.do(i, method, path, body, opts...)
	var er struct {
		Error struct{ Field, Message string }
	}
	r.json(e.t, &er)
	if r.status != 422 || er.Error.Field != field || !strings.Contains(er.Error.Message, msg) {
		e.t.Errorf("%s %s %s: %d field %q %q; want 422 naming field %q and saying %q", method, path, body, r.status, er.Error.Field, er.Error.Message, field, msg)
	}
	check(method + " " + path + " " + body)
}

func TestDisksAndDatastores(t *testing.T) {
	e, l, d := storageEnv(t)
	var disks struct {
		Items []state.DiskInfo
	}
	e.do(l, "GET", "/api/disks", "").json(t, &disks)
	if len(disks.Items) != 4 {
		t.Fatalf("disks: %+v, want 4", disks.Items)
	}
	for _, di := range disks.Items {
		if di.State != "available" || di.SizeMB != 1000 || di.ID != state.DiskID(di.Node, di.Name) {
			t.Errorf("disk %+v: want available, 1000 MB, id from node and name", di)
		}
	}
	e.do(l, "GET", "/api/disks?node=00000001", "").json(t, &disks)
	if len(disks.Items) != 2 {
		t.Errorf("disks of node 1: %d, want 2", len(disks.Items))
	}
	if r := e.do(l, "GET", "/api/disks?state=broken", "", invalidReq()); r.status != 400 || r.errField(t) != "state" {
		t.Errorf("disks?state=broken: %d %s, want 400", r.status, r.body)
	}

	ds := func(fields string) string {
		return `{"name":"ds1","disks":["` + d[0] + `","` + d[1] + `"]` + fields + `}`
	}
	e.want422(l, "POST", "/api/datastores", `{"name":"","disks":["`+d[0]+`"]}`, "name", "name is empty", invalidReq())
	e.want422(l, "POST", "/api/datastores", `{"name":"x","disks":[]}`, "disks", "at least one disk", invalidReq())
	e.want422(l, "POST", "/api/datastores", `{"name":"x","disks":["`+d[0]+`","42"]}`, "disks", "unknown disk ids 42")
	e.want422(l, "POST", "/api/datastores", ds(`,"replicas":3`), "replicas", "replicas 3: want 1 or 2", invalidReq())
	e.want422(l, "POST", "/api/datastores", `{"name":"x","replicas":2,"disks":["`+d[0]+`","`+d[3]+`"]}`, "disks", "need disks on 2 different nodes")
	e.want422(l, "POST", "/api/datastores", ds(`,"overcommit":0.5`), "overcommit", "overcommit 0.5", invalidReq())
	e.want422(l, "POST", "/api/datastores", ds(`,"trigger_repair":"periodic"`), "periodic_repair_sec", "periodic_repair_sec 0")
	e.want422(l, "POST", "/api/datastores", ds(`,"trigger_repair":"periodic","periodic_repair_sec":-5`), "periodic_repair_sec", "periodic_repair_sec -5")
	e.want422(l, "POST", "/api/datastores", ds(`,"num_of_repairs":0`), "num_of_repairs", "num_of_repairs 0", invalidReq())

	// Created through a follower (forwarded to the leader).
	f := (l + 1) % 3
	r := e.do(f, "POST", "/api/datastores", ds(`,"replicas":2,"overcommit":2,"db_metadata":true,"trigger_repair":"periodic","periodic_repair_sec":60,"num_of_repairs":2`))
	var got struct {
		state.Datastore
		Usage state.DatastoreUsage
	}
	r.json(t, &got)
	if r.status != 201 || got.ID != "1" || got.Replicas != 2 || got.Overcommit != 2 || !got.DBMetadata || got.TriggerRepair != "periodic" ||
		got.PeriodicRepairSec != 60 || got.NumOfRepairs != 2 || got.Usage.SizeMB != 2000 || got.Usage.LimitMB != 4000 || got.Usage.MaxVolumeMB != 2000 {
		t.Fatalf("create datastore: %d %s", r.status, r.body)
	}
	e.want422(l, "POST", "/api/datastores", `{"name":"ds2","disks":["`+d[2]+`","`+d[1]+`"]}`, "disks", "disk "+d[1]+" is already in datastore 1 (ds1)")
	e.want422(l, "POST", "/api/datastores", `{"name":"ds1","disks":["`+d[2]+`"]}`, "name", `name "ds1" is taken`)
	e.want422(l, "POST", "/api/datastores/1/disks", `{"disks":["`+d[0]+`"]}`, "disks", "already in datastore 1")
	if r := e.do(l, "POST", "/api/datastores/1/disks", `{"disks":["`+d[2]+`"]}`); r.status != 200 || !strings.Contains(string(r.body), d[2]) {
		t.Errorf("add_disks: %d %s", r.status, r.body)
	}
	e.do(l, "GET", "/api/disks?datastore=1", "").json(t, &disks)
	if len(disks.Items) != 3 || disks.Items[0].State != "in_use" {
		t.Errorf("disks of datastore 1: %+v", disks.Items)
	}
	if r := e.do(l, "DELETE", "/api/datastores/1/disks?disks="+d[2], ""); r.status != 200 || strings.Contains(string(r.body), d[2]) {
		t.Errorf("remove_disks: %d %s", r.status, r.body)
	}
	e.want422(l, "DELETE", "/api/datastores/1/disks?disks="+d[1], "", "disks", "2 different nodes")
	e.want422(l, "DELETE", "/api/datastores/1/disks?disks="+d[3], "", "disks", "not in datastore 1")
	if r := e.do(l, "DELETE", "/api/datastores/9/disks?disks="+d[1], ""); r.status != 404 {
		t.Errorf("remove_disks of datastore 9: %d, want 404", r.status)
	}

	// A volume pins the datastore and its disks.
	r = e.do(l, "POST", "/api/volumes", `{"name":"v1","datastore":"1","size_mb":300}`)
	var v state.Volume
	r.json(t, &v)
	if r.status != 201 || len(v.Replicas) != 2 || v.Replicas[0].Node == v.Replicas[1].Node || v.Epoch != 1 || len(v.InSync) != 2 {
		t.Fatalf("create volume: %d %s", r.status, r.body)
	}
	e.want422(l, "DELETE", "/api/datastores/1", "", "", "still has volumes 1")
	e.want422(l, "DELETE", "/api/datastores/1/disks?disks="+v.Replicas[0].Disk, "", "disks", "holds a replica of volume 1 (v1)")
	if r := e.do(l, "DELETE", "/api/volumes/1", ""); r.status != 204 {
		t.Fatalf("delete volume: %d %s", r.status, r.body)
	}
	if r := e.do(l, "DELETE", "/api/datastores/1", ""); r.status != 204 {
		t.Fatalf("delete datastore: %d %s", r.status, r.body)
	}
	if r := e.do(l, "GET", "/api/datastores/1", ""); r.status != 404 {
		t.Errorf("deleted datastore: %d, want 404", r.status)
	}
	if r := e.do(l, "DELETE", "/api/datastores/1", ""); r.status != 404 {
		t.Errorf("delete again: %d, want 404", r.status)
	}
	e.do(l, "GET", "/api/disks?state=available", "").json(t, &disks)
	if len(disks.Items) != 4 {
		t.Errorf("after deleting the datastore %d disks available, want 4", len(disks.Items))
	}
}

func TestVolumes(t *testing.T) {
	e, l, d := storageEnv(t)
	if r := e.do(l, "POST", "/api/datastores", `{"name":"thin","replicas":2,"overcommit":2,"ft_unit":"rack","disks":["`+d[0]+`","`+d[1]+`","`+d[3]+`"]}`); r.status != 201 {
		t.Fatalf("datastore: %d %s", r.status, r.body)
	}
	if r := e.do(l, "POST", "/api/datastores", `{"name":"thick","thick":true,"disks":["`+d[2]+`"]}`); r.status != 201 {
		t.Fatalf("datastore: %d %s", r.status, r.body)
	}
	// Thin: node 1 has 2 × 1000 MB, node 2 1000 MB, overcommit 2: a
	// volume's second replica has at most 2000 MB on node 2.
	var v state.Volume
	r := e.do(l, "POST", "/api/volumes", `{"name":"big","datastore":"1","size_mb":1800}`)
	r.json(t, &v)
	if r.status != 201 || v.Thick || len(v.Replicas) != 2 {
		t.Fatalf("thin volume: %d %s", r.status, r.body)
	}
	for _, rep := range v.Replicas {
		if rep.Shelf < state.ExportShelfBase {
			t.Errorf("replica %+v below shelf %d", rep, state.ExportShelfBase)
		}
	}
	e.want422(l, "POST", "/api/volumes", `{"name":"more","datastore":"1","size_mb":300}`, "size_mb", "at most 200 MB is free")
	e.want422(l, "POST", "/api/volumes", `{"name":"more","datastore":"7","size_mb":1}`, "datastore", `datastore "7" does not exist`)
	e.want422(l, "POST", "/api/volumes", `{"name":"big","datastore":"1","size_mb":1}`, "name", `name "big" is taken`)
	e.want422(l, "POST", "/api/volumes", `{"name":"x","datastore":"1","size_mb":1,"ft_unit":"moon"}`, "ft_unit", "moon", invalidReq())
	// Thick: 1000 MB disk, no overcommit.
	r = e.do(l, "POST", "/api/volumes", `{"name":"t","datastore":"2","size_mb":600}`)
	r.json(t, &v)
	if r.status != 201 || !v.Thick || len(v.Replicas) != 1 {
		t.Fatalf("thick volume: %d %s", r.status, r.body)
	}
	e.want422(l, "PATCH", "/api/volumes/"+v.ID, `{"size_mb":1001}`, "size_mb", "401 MB does not fit")
	e.want422(l, "PATCH", "/api/volumes/"+v.ID, `{"size_mb":500}`, "size_mb", "only grow")
	r = e.do(l, "PATCH", "/api/volumes/"+v.ID, `{"size_mb":1000}`)
	r.json(t, &v)
	if r.status != 200 || v.SizeMB != 1000 {
		t.Errorf("resize: %d %s", r.status, r.body)
	}
	if r := e.do(l, "PATCH", "/api/volumes/99", `{"size_mb":1000}`); r.status != 404 {
		t.Errorf("resize of volume 99: %d, want 404", r.status)
	}
	var ds struct{ Usage state.DatastoreUsage }
	e.do(l, "GET", "/api/datastores/2", "").json(t, &ds)
	if ds.Usage.ThickMB != 1000 || ds.Usage.MaxVolumeMB != 0 || ds.Usage.Volumes != 1 {
		t.Errorf("thick datastore usage %+v, want 1000 MB thick, nothing free, 1 volume", ds.Usage)
	}
	// Lists and filters; followers serve reads once they caught up.
	f := (l + 2) % 3
	replicatest.WaitFor(t, "2 volumes on the follower", func() bool {
		var n int
		e.c.Replicas[f].Read(func(s *state.State) { n = len(s.Volumes) })
		return n == 2
	})
	var vs struct{ Items []state.Volume }
	e.do(f, "GET", "/api/volumes?datastore=1", "").json(t, &vs)
	if len(vs.Items) != 1 || vs.Items[0].Name != "big" {
		t.Errorf("volumes of datastore 1: %+v", vs.Items)
	}
	e.do(f, "GET", "/api/volumes?node=00000003", "").json(t, &vs)
	if len(vs.Items) != 1 || vs.Items[0].Name != "t" {
		t.Errorf("volumes on node 3: %+v", vs.Items)
	}
	if r := e.do(f, "GET", "/api/volumes/1", ""); r.status != 200 {
		t.Errorf("get volume: %d", r.status)
	}
	if r := e.do(f, "DELETE", "/api/volumes/1", ""); r.status != 204 {
		t.Errorf("delete volume through a follower: %d %s", r.status, r.body)
	}
	if r := e.do(l, "GET", "/api/volumes/1", ""); r.status != 404 {
		t.Errorf("deleted volume: %d, want 404", r.status)
	}
	// Every replica's FSM reaches the same storage state (compared while
	// all three stand at one applied index).
	replicatest.WaitFor(t, "identical states on the 3 replicas", func() bool {
		var snaps [3][]byte
		var idx [3]uint64
		for i, rep := range e.c.Replicas {
			var b bytes.Buffer
			rep.Read(func(s *state.State) { s.Snapshot(&b) })
			snaps[i], idx[i] = b.Bytes(), rep.AppliedIndex()
		}
		if idx[0] != idx[1] || idx[1] != idx[2] {
			return false
		}
		return bytes.Equal(snaps[0], snaps[1]) && bytes.Equal(snaps[1], snaps[2])
	})
}
