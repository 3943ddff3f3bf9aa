package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
)

// storageController is controller with a 1000 MB disk sda on each node and
// a 500 MB disk sdb on 7a77f9af; it returns the osd environment and the
// disk ids: 7a77f9af/sda, 00000002/sda, 7a77f9af/sdb.
func storageController(t *testing.T) (map[string]string, []string) {
	return storageControllerWith(t, nil)
}

func storageControllerWith(t *testing.T, vols func(*replica.Replica) rest.Volumes) (map[string]string, []string) {
	u, tok := controllerWith(t, vols)
	t.Setenv("HOME", t.TempDir())
	cl := client.New(u, tok)
	for _, n := range []struct{ mac, host, disks string }{
		{"0c:c4:7a:77:f9:af", "mv1", `[{"name":"sda","size_mb":1000},{"name":"sdb","size_mb":500}]`},
		{"0c:c4:00:00:00:02", "mv2", `[{"name":"sda","size_mb":1000}]`},
	} {
		var inv map[string]any
		if err := json.Unmarshal([]byte(`{"hostname":"`+n.host+`","disks":`+n.disks+`}`), &inv); err != nil {
			t.Fatal(err)
		}
		if err := cl.Do(t.Context(), "POST", "/api/nodes", map[string]any{"mac": n.mac, "inventory": inv}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{"OSD_URL": u, "OSD_TOKEN": tok},
		[]string{state.DiskID("7a77f9af", "sda"), state.DiskID("00000002", "sda"), state.DiskID("7a77f9af", "sdb")}
}

func TestStorageCommands(t *testing.T) {
	env, d := storageController(t)
	out, err := osd(t, env, "get_disks", "--node", "00000002", "--filter", "id,node,size_mb,state")
	if want := "id=" + d[1] + "\nnode=00000002\nsize_mb=1000\nstate=available\n"; err != nil || out != want {
		t.Errorf("get_disks --node: %v\n%s\nwant:\n%s", err, out, want)
	}
	// The seed's example, with the seed's flags.
	out, err = osd(t, env, "create_datastore", "--name=test", "--disks="+d[0]+","+d[1], "--replicas=2", "--thick=1",
		"--overcommit=1.5", "--db_metadata", "--trigger_repair=periodic", "--periodic_repair_sec=30", "--num_of_repairs=2",
		"--filter", "id,name,disks,replicas,thick,overcommit,db_metadata,trigger_repair,periodic_repair_sec,num_of_repairs")
	want := "db_metadata=true\ndisks=" + strings.Join(slices.Sorted(slices.Values([]string{d[0], d[1]})), ",") + "\nid=1\nname=test\nnum_of_repairs=2\novercommit=1.5\n" +
		"periodic_repair_sec=30\nreplicas=2\nthick=true\ntrigger_repair=periodic\n"
	if err != nil || out != want {
		t.Errorf("create_datastore:\n%v\n%s\nwant:\n%s", err, out, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create_datastore", "--name=x", "--disks=" + d[2], "--replicas=3"}, "field replicas"},
		{[]string{"create_datastore", "--name=x", "--disks=" + d[2] + ",77"}, "unknown disk ids 77"},
		{[]string{"create_datastore", "--name=x", "--disks=" + d[1]}, "already in datastore 1"},
		{[]string{"create_datastore", "--name=x", "--disks=" + d[2], "--thick=2"}, "--thick 2"},
		{[]string{"create_volume", "--name=v", "--datastore=1", "--size=1T"}, "at most 1000 MB is free"},
		{[]string{"create_volume", "--name=v", "--datastore=1", "--size=ten"}, `size "ten"`},
	} {
		if _, err := osd(t, env, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("osd %s: %v, want an error saying %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	out, err = osd(t, env, "create_volume", "--name=db", "--datastore=1", "--size=512M", "--json", "--filter", "id,size_mb,thick,epoch,in_sync")
	var v map[string]any
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v["size_mb"] != 512.0 || v["thick"] != true || v["epoch"] != 1.0 || len(v["in_sync"].([]any)) != 2 || len(v) != 5 {
		t.Errorf("create_volume --json --filter: %v\n%s", err, out)
	}
	out, err = osd(t, env, "resize_volume", "--id=1", "--size=1000", "--filter", "size_mb")
	if err != nil || out != "size_mb=1000\n" {
		t.Errorf("resize_volume: %v\n%s", err, out)
	}
	out, err = osd(t, env, "get_volumes", "--filter", "id,replicas.0.shelf,replicas.0.slot")
	if err != nil || out != "id=1\nreplicas.0.shelf=1000\nreplicas.0.slot=0\n" {
		t.Errorf("get_volumes: %v\n%s", err, out)
	}
	if _, err := osd(t, env, "delete_datastore", "--id=1"); err == nil || !strings.Contains(err.Error(), "still has volumes 1") {
		t.Errorf("delete_datastore in use: %v", err)
	}
	out, err = osd(t, env, "get_datastores", "--filter", "id,usage.thick_mb,usage.volumes")
	if err != nil || out != "id=1\nusage.thick_mb=2000\nusage.volumes=1\n" {
		t.Errorf("get_datastores: %v\n%s", err, out)
	}
	if _, err := osd(t, env, "delete_volume", "--id=1"); err != nil {
		t.Fatal(err)
	}
	out, err = osd(t, env, "add_disks", "--id=1", "--disks="+d[2], "--filter", "disks")
	if err != nil || out != "disks="+strings.Join(slices.Sorted(slices.Values(d)), ",")+"\n" {
		t.Errorf("add_disks: %v\n%s", err, out)
	}
	out, err = osd(t, env, "remove_disks", "--id=1", "--disks="+d[2], "--filter", "disks")
	if err != nil || strings.Contains(out, d[2]) {
		t.Errorf("remove_disks: %v\n%s", err, out)
	}
	if out, err := osd(t, env, "delete_datastore", "--id=1"); err != nil || out != "" {
		t.Errorf("delete_datastore: %v %q", err, out)
	}
	out, err = osd(t, env, "get_disks", "--state=available", "--filter", "id")
	if err != nil || strings.Count(out, "id=") != 3 {
		t.Errorf("disks after delete_datastore: %v\n%s", err, out)
	}
}

func TestParseSizeMB(t *testing.T) {
	for in, want := range map[string]uint64{"1024": 1024, "512M": 512, "512MiB": 512, "10G": 10240, "10gb": 10240, "2T": 2 << 20} {
		if got, err := parseSizeMB(in); err != nil || got != want {
			t.Errorf("parseSizeMB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5G", "G", "10X"} {
		if _, err := parseSizeMB(in); err == nil {
			t.Errorf("parseSizeMB(%q) accepted", in)
		}
	}
}
