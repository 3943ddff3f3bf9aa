package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mvstack/mvstack/proto"
)

// rack registers nodes 02:00:00:00:00:0N (N = 1..len(racks)) with one 1000 MB
// disk "sda" each, node N in rack racks[N-1], plus a second disk "sdb" on
// node 1, and returns the disk ids: sda of nodes 1..n, then sdb of node 1.
func rack(t testing.TB, s *State, racks ...string) []string {
	t.Helper()
	var ids []string
	for i, r := range racks {
		inv := inventory()
		inv.Hostname = fmt.Sprintf("mv%d", i+1)
		inv.Location = Location{Rack: r, Chassis: "c1", Blade: fmt.Sprintf("b%d", i+1)}
		inv.Disks = []Disk{{ID: "ignored", Name: "sda", SizeMB: 1000}}
		if i == 0 {
			inv.Disks = append(inv.Disks, Disk{Name: "sdb", SizeMB: 1000})
		}
		n := apply(t, s, RegisterNode{At: t0, MAC: proto.MAC{2, 0, 0, 0, 0, byte(i + 1)}, Inventory: inv}).(Node)
		ids = append(ids, DiskID(n.ID, "sda"))
	}
	return append(ids, DiskID("00000001", "sdb"))
}

func datastore(name string, replicas int, disks ...string) CreateDatastore {
	return CreateDatastore{At: t0, Name: name, Disks: disks, Replicas: replicas, Overcommit: 1,
		TriggerRepair: RepairManual, NumOfRepairs: 1}
}

// applyErr applies c expecting an error wrapping want and no state change.
func applyErr(t *testing.T, s *State, c Command, want error, mention string) {
	t.Helper()
	var before bytes.Buffer
	s.Snapshot(&before)
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Apply(b)
	if !errors.Is(err, want) {
		t.Fatalf("apply %s: %v, want %v", c.Type(), err, want)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Errorf("apply %s: error %q does not mention %q", c.Type(), err, mention)
	}
	var after bytes.Buffer
	s.Snapshot(&after)
	if !bytes.Equal(before.Bytes(), after.Bytes()) {
		t.Errorf("apply %s failed with %v but changed the state", c.Type(), err)
	}
}

func TestDiskIDStable(t *testing.T) {
	// The seed's ids are 32-bit decimal numbers; ours are FNV-1a of
	// "<node>/<name>", so they survive re-registration and restarts.
	if got, want := DiskID("7a77f9af", "sda"), DiskID("7a77f9af", "sda"); got != want {
		t.Fatalf("DiskID not stable: %s %s", got, want)
	}
	if DiskID("7a77f9af", "sda") == DiskID("7a77f9af", "sdb") || DiskID("00000001", "sda") == DiskID("00000002", "sda") {
		t.Error("DiskID does not tell disks apart")
	}
	// FNV-1a 32 of "00000001/sda", worked out by hand from the spec
	// (offset 2166136261, prime 16777619).
	if got := DiskID("00000001", "sda"); got != fnvRef("00000001/sda") {
		t.Errorf("DiskID = %s, want %s", got, fnvRef("00000001/sda"))
	}
	s := New()
	ids := rack(t, s, "r1", "r2")
	before := s.Disks()
	inv := s.Nodes["00000001"].Inventory
	inv.MemoryMB++
	apply(t, s, RegisterNode{At: t0.Add(time.Hour), MAC: s.Nodes["00000001"].MAC, Inventory: inv})
	if d := cmp.Diff(before, s.Disks()); d != "" {
		t.Errorf("disks after re-registration (-want +got):\n%s", d)
	}
	if len(before) != 3 || before[0].State != DiskAvailable || before[0].SizeMB != 1000 {
		t.Errorf("disks %+v, want 3 available of 1000 MB (%v)", before, ids)
	}
}

func fnvRef(s string) string {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return fmt.Sprint(h)
}

func TestDatastoreRules(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r2", "r3")
	with := func(f func(*CreateDatastore)) CreateDatastore {
		c := datastore("ds1", 2, d[0], d[1])
		f(&c)
		return c
	}
	for _, tc := range []struct {
		desc    string
		c       CreateDatastore
		mention string
	}{
		{"empty name", with(func(c *CreateDatastore) { c.Name = " " }), "name"},
		{"no disks", with(func(c *CreateDatastore) { c.Disks = nil }), "disks"},
		{"unknown disk", with(func(c *CreateDatastore) { c.Disks = []string{d[0], "12345"} }), "unknown disk ids 12345"},
		{"disk twice", with(func(c *CreateDatastore) { c.Disks = []string{d[0], d[0]} }), "named twice"},
		{"replicas 3", with(func(c *CreateDatastore) { c.Replicas = 3 }), "replicas 3"},
		{"replicas 0", with(func(c *CreateDatastore) { c.Replicas = 0 }), "replicas 0"},
		{"replicas 2 on one node", with(func(c *CreateDatastore) { c.Disks = []string{d[0], d[3]} }), "2 different nodes"},
		{"overcommit below 1", with(func(c *CreateDatastore) { c.Overcommit = 0.5 }), "overcommit 0.5"},
		{"periodic without period", with(func(c *CreateDatastore) { c.TriggerRepair = RepairPeriodic }), "periodic_repair_sec 0"},
		{"bad trigger", with(func(c *CreateDatastore) { c.TriggerRepair = "sometimes" }), "trigger_repair"},
		{"no repairs", with(func(c *CreateDatastore) { c.NumOfRepairs = 0 }), "num_of_repairs 0"},
		{"bad ft unit", with(func(c *CreateDatastore) { c.FTUnit = "planet" }), "planet"},
	} {
		t.Run(tc.desc, func(t *testing.T) { applyErr(t, s, tc.c, ErrInvalid, tc.mention) })
	}
	ds := apply(t, s, with(func(c *CreateDatastore) {
		c.TriggerRepair, c.PeriodicRepairSec, c.NumOfRepairs, c.DBMetadata, c.Overcommit = RepairPeriodic, 60, 2, true, 2
	})).(Datastore)
	want := Datastore{ID: "1", Name: "ds1", Disks: slices.Sorted(slices.Values([]string{d[0], d[1]})), Replicas: 2, Overcommit: 2, DBMetadata: true,
		TriggerRepair: RepairPeriodic, PeriodicRepairSec: 60, NumOfRepairs: 2, FTUnit: "node", Created: t0}
	if diff := cmp.Diff(want, ds); diff != "" {
		t.Errorf("datastore (-want +got):\n%s", diff)
	}
	applyErr(t, s, datastore("ds2", 1, d[2], d[1]), ErrInvalid, "disk "+d[1]+" is already in datastore 1 (ds1)")
	applyErr(t, s, datastore("ds1", 1, d[2]), ErrInvalid, `name "ds1" is taken`)
	applyErr(t, s, AddDisks{At: t0, Datastore: "1", Disks: []string{d[0]}}, ErrInvalid, "already in datastore 1")
	applyErr(t, s, AddDisks{At: t0, Datastore: "9", Disks: []string{d[2]}}, ErrNotFound, "9")
	got := apply(t, s, AddDisks{At: t0, Datastore: "1", Disks: []string{d[3], d[2]}}).(Datastore)
	if diff := cmp.Diff(slices.Sorted(slices.Values(d)), got.Disks); diff != "" {
		t.Errorf("disks after add (-want +got):\n%s", diff)
	}
	// Removing node 2's disk and node 3's disk would leave two replicas one node.
	applyErr(t, s, RemoveDisks{At: t0, Datastore: "1", Disks: []string{d[1], d[2]}}, ErrInvalid, "2 different nodes")
	applyErr(t, s, RemoveDisks{At: t0, Datastore: "1", Disks: []string{d[0], d[1], d[2], d[3]}}, ErrInvalid, "no disk left")
	v := apply(t, s, CreateVolume{At: t0, Name: "v1", Datastore: "1", SizeMB: 100}).(Volume)
	for _, r := range v.Replicas {
		applyErr(t, s, RemoveDisks{At: t0, Datastore: "1", Disks: []string{r.Disk}}, ErrInvalid, "holds a replica of volume 1 (v1)")
	}
	applyErr(t, s, DeleteDatastore{At: t0, ID: "1"}, ErrInvalid, "still has volumes 1")
	apply(t, s, DeleteVolume{At: t0, ID: v.ID})
	apply(t, s, RemoveDisks{At: t0, Datastore: "1", Disks: []string{d[3]}})
	apply(t, s, DeleteDatastore{At: t0, ID: "1"})
	for _, di := range s.Disks() {
		if di.State != DiskAvailable || di.Datastore != "" {
			t.Errorf("disk %s after the datastore's deletion: %s in %q, want available", di.ID, di.State, di.Datastore)
		}
	}
	applyErr(t, s, DeleteDatastore{At: t0, ID: "1"}, ErrNotFound, "1")
}

func TestVolumePlacementAndExports(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r1", "r2")
	oneRack := datastore("r1 only", 2, d[0], d[1])
	oneRack.FTUnit = "rack"
	applyErr(t, s, oneRack, ErrInvalid, "2 different rack units; these disks are in 1")
	apply(t, s, CreateDatastore{At: t0, Name: "ds", Disks: d, Replicas: 2, Overcommit: 1, TriggerRepair: RepairManual, NumOfRepairs: 1})
	seen := map[[2]int]string{} // address → node: unique across the cluster
	for i := range 6 {
		v := apply(t, s, CreateVolume{At: t0, Name: fmt.Sprint("v", i), Datastore: "1", SizeMB: 100}).(Volume)
		if len(v.Replicas) != 2 || v.Replicas[0].Node == v.Replicas[1].Node {
			t.Fatalf("volume %s replicas %+v: want 2 on distinct nodes", v.ID, v.Replicas)
		}
		if v.Epoch != 1 || len(v.InSync) != 2 {
			t.Errorf("volume %s epoch %d in sync %v, want 1 and both replicas", v.ID, v.Epoch, v.InSync)
		}
		for _, r := range v.Replicas {
			// One initiator takes every target answering at one address
			// for another path to the same device: no two replicas in the
			// cluster may share one, whatever their nodes.
			k := [2]int{int(r.Shelf), int(r.Slot)}
			if other, ok := seen[k]; ok || r.Shelf < ExportShelfBase {
				t.Errorf("node %s: export %d.%d already used (on node %q) or below shelf %d", r.Node, r.Shelf, r.Slot, other, ExportShelfBase)
			}
			seen[k] = r.Node
		}
	}
	// FT unit rack: nodes 1 and 2 share rack r1, so every volume has a
	// replica on node 3.
	for i := range 3 {
		v := apply(t, s, CreateVolume{At: t0, Name: fmt.Sprint("r", i), Datastore: "1", SizeMB: 10, FTUnit: "rack"}).(Volume)
		if v.InSync[0] == v.InSync[1] || (v.InSync[1] != "00000003" && v.InSync[0] != "00000003") {
			t.Errorf("rack-tolerant volume on nodes %v, want one on node 00000003 (the only node in r2)", v.InSync)
		}
	}
	// A freed export address is reused (on whichever node needs one).
	v1 := s.Volumes["1"]
	apply(t, s, DeleteVolume{At: t0, ID: "1"})
	v := apply(t, s, CreateVolume{At: t0, Name: "again", Datastore: "1", SizeMB: 100}).(Volume)
	reused := false
	for _, r := range v.Replicas {
		for _, o := range v1.Replicas {
			reused = reused || (r.Shelf == o.Shelf && r.Slot == o.Slot)
		}
	}
	if !reused {
		t.Errorf("new volume's exports %+v reuse none of the deleted volume's %+v", v.Replicas, v1.Replicas)
	}
}

func TestVolumeCapacity(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r2")
	apply(t, s, CreateDatastore{At: t0, Name: "thin", Disks: d[:2], Replicas: 2, Overcommit: 3, TriggerRepair: RepairManual, NumOfRepairs: 1})
	apply(t, s, CreateDatastore{At: t0, Name: "one", Disks: d[2:], Replicas: 1, Overcommit: 1, TriggerRepair: RepairManual, NumOfRepairs: 1})
	// 2 × 1000 MB disks, overcommit 3: 3000 MB thin per replica.
	apply(t, s, CreateVolume{At: t0, Name: "a", Datastore: "1", SizeMB: 2500})
	applyErr(t, s, CreateVolume{At: t0, Name: "b", Datastore: "1", SizeMB: 600}, ErrNoRoom, "at most 500 MB is free")
	// Thick counts against the physical size: 1000 MB free physically but
	// only 500 MB under the overcommitted limit.
	applyErr(t, s, CreateVolume{At: t0, Name: "b", Datastore: "1", SizeMB: 501, Thick: true}, ErrNoRoom, "500 MB")
	b := apply(t, s, CreateVolume{At: t0, Name: "b", Datastore: "1", SizeMB: 500, Thick: true}).(Volume)
	if !b.Thick {
		t.Error("volume b asked thick, is thin")
	}
	applyErr(t, s, ResizeVolume{At: t0, ID: "1", SizeMB: 2501}, ErrNoRoom, "0 MB free")
	applyErr(t, s, ResizeVolume{At: t0, ID: "1", SizeMB: 2500}, ErrInvalid, "only grow")
	applyErr(t, s, CreateVolume{At: t0, Name: "c", Datastore: "7", SizeMB: 1}, ErrInvalid, `datastore "7" does not exist`)
	applyErr(t, s, CreateVolume{At: t0, Name: "a", Datastore: "2", SizeMB: 1}, ErrInvalid, `name "a" is taken`)
	applyErr(t, s, CreateVolume{At: t0, Name: "c", Datastore: "2", SizeMB: 0}, ErrInvalid, "size_mb")
	apply(t, s, CreateVolume{At: t0, Name: "c", Datastore: "2", SizeMB: 400})
	apply(t, s, ResizeVolume{At: t0, ID: "3", SizeMB: 1000})
	applyErr(t, s, ResizeVolume{At: t0, ID: "3", SizeMB: 1001}, ErrNoRoom, "growing by 1 MB")
	u := s.Usage(s.Datastores["1"])
	want := DatastoreUsage{SizeMB: 2000, LimitMB: 6000, ThickMB: 1000, ThinMB: 5000, Volumes: 2, MaxVolumeMB: 0}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	// A disabled node takes no new replicas.
	apply(t, s, DeleteVolume{At: t0, ID: "1"})
	apply(t, s, SetAdmin{At: t0, Node: "00000002", State: AdminDisabled})
	applyErr(t, s, CreateVolume{At: t0, Name: "d", Datastore: "1", SizeMB: 1}, ErrNoRoom, "1 of 2 disks usable")
}

func TestEpochAndInSync(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r2")
	apply(t, s, datastore("ds", 2, d[:2]...))
	v := apply(t, s, CreateVolume{At: t0, Name: "v", Datastore: "1", SizeMB: 10}).(Volume)
	n1, n2 := v.InSync[0], v.InSync[1]
	// Node 2's replica failed a write: it leaves the set, the epoch goes up.
	got := apply(t, s, SetInSync{At: t0, Volume: "1", Epoch: 1, InSync: []string{n1}}).(Volume)
	if got.Epoch != 2 || !cmp.Equal(got.InSync, []string{n1}) {
		t.Errorf("after removing %s: epoch %d in sync %v, want 2 [%s]", n2, got.Epoch, got.InSync, n1)
	}
	// A decision taken at the old epoch is refused.
	applyErr(t, s, SetInSync{At: t0, Volume: "1", Epoch: 1, InSync: []string{n2}}, ErrStaleEpoch, "epoch 1")
	applyErr(t, s, SetInSync{At: t0, Volume: "1", Epoch: 2, InSync: nil}, ErrInvalid, "cannot be empty")
	applyErr(t, s, SetInSync{At: t0, Volume: "1", Epoch: 2, InSync: []string{"0000000f"}}, ErrInvalid, "no replica on node 0000000f")
	applyErr(t, s, SetInSync{At: t0, Volume: "9", Epoch: 2, InSync: []string{n1}}, ErrNotFound, "9")
	// Resynced: it rejoins, and the epoch goes up again.
	got = apply(t, s, SetInSync{At: t0, Volume: "1", Epoch: 2, InSync: []string{n2, n1}}).(Volume)
	if got.Epoch != 3 || len(got.InSync) != 2 {
		t.Errorf("after rejoin: epoch %d in sync %v, want 3 and both", got.Epoch, got.InSync)
	}
	// Fencing raises the epoch; it never goes back.
	if got := apply(t, s, SetVolumeEpoch{At: t0, Volume: "1", Epoch: 10}).(Volume); got.Epoch != 10 {
		t.Errorf("epoch %d, want 10", got.Epoch)
	}
	applyErr(t, s, SetVolumeEpoch{At: t0, Volume: "1", Epoch: 10}, ErrStaleEpoch, "never go back")
	applyErr(t, s, SetVolumeEpoch{At: t0, Volume: "1", Epoch: 3}, ErrStaleEpoch, "epoch 3")
}

// storageLog is a command log touching every storage command.
func storageLog(t testing.TB) []Command {
	s := New()
	d := rack(t, s, "r1", "r2", "r3")
	var cmds []Command
	for i := range 3 {
		inv := inventory()
		inv.Location.Rack = fmt.Sprint("r", i+1)
		inv.Disks = []Disk{{Name: "sda", SizeMB: 1000}}
		if i == 0 {
			inv.Disks = append(inv.Disks, Disk{Name: "sdb", SizeMB: 1000})
		}
		cmds = append(cmds, RegisterNode{At: t0, MAC: proto.MAC{2, 0, 0, 0, 0, byte(i + 1)}, Inventory: inv})
	}
	return append(cmds,
		CreateDatastore{At: t0, Name: "ds", Disks: d[:3], Replicas: 2, Overcommit: 1.5, Thick: false, DBMetadata: true,
			TriggerRepair: RepairPeriodic, PeriodicRepairSec: 30, NumOfRepairs: 2, FTUnit: "rack"},
		AddDisks{At: t0, Datastore: "1", Disks: d[3:]},
		RemoveDisks{At: t0, Datastore: "1", Disks: d[3:]},
		AddDisks{At: t0, Datastore: "1", Disks: d[3:]},
		CreateVolume{At: t0, Name: "a", Datastore: "1", SizeMB: 700},
		CreateVolume{At: t0, Name: "b", Datastore: "1", SizeMB: 300, Thick: true},
		CreateVolume{At: t0, Name: "c", Datastore: "1", SizeMB: 200},
		ResizeVolume{At: t0, ID: "1", SizeMB: 800},
		DeleteVolume{At: t0, ID: "3"},
		CreateVolume{At: t0, Name: "d", Datastore: "1", SizeMB: 100},
		SetVolumeEpoch{At: t0, Volume: "2", Epoch: 5},
		AttachVolume{At: t0, Volume: "2", Node: "00000002"},
		AttachVolume{At: t0, Volume: "4", Node: "00000003"},
		DetachVolume{At: t0, Volume: "4"},
		RecordRepair{At: t0, Volume: "1", Repair: Repair{Node: "00000001", Repairer: "00000002", Full: true, Blocks: 7, Bytes: 7 << 16, Duration: time.Second, Epoch: 3, At: t0}},
		RemoveDisks{At: t0, Datastore: "1", Disks: d[:1]},               // may hold a replica: refused or not, alike everywhere
		CreateDatastore{At: t0, Name: "bad", Disks: d[:1], Replicas: 3}, // refused everywhere alike
	)
}

func TestStorageDeterministicAndSnapshot(t *testing.T) {
	cmds := storageLog(t)
	var snaps [][]byte
	var results [][]string
	for range 3 {
		s := New()
		var res []string
		for _, c := range cmds {
			b, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Apply(b)
			rj, _ := json.Marshal(r) // not %+v: it would print pointers
			res = append(res, fmt.Sprintf("%s %v", rj, err))
		}
		var sb bytes.Buffer
		if err := s.Snapshot(&sb); err != nil {
			t.Fatal(err)
		}
		snaps, results = append(snaps, sb.Bytes()), append(results, res)
	}
	for i := 1; i < 3; i++ {
		if !bytes.Equal(snaps[0], snaps[i]) {
			t.Fatalf("replica %d's snapshot differs from replica 0's", i)
		}
		if d := cmp.Diff(results[0], results[i]); d != "" {
			t.Fatalf("replica %d's results (-0 +%d):\n%s", i, i, d)
		}
	}
	r, err := Restore(bytes.NewReader(snaps[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Volumes) != 3 || r.Volumes["2"].Epoch != 5 || len(r.Datastores["1"].Disks) < 3 || r.NextVolume != 4 {
		t.Errorf("restored storage: %d volumes, epoch of 2 %d, %d disks, next volume %d; want 3, 5, at least 3, 4",
			len(r.Volumes), r.Volumes["2"].Epoch, len(r.Datastores["1"].Disks), r.NextVolume)
	}
	// The restored state goes on exactly like the original.
	next := CreateVolume{At: t0, Name: "e", Datastore: "1", SizeMB: 50}
	orig, _ := Restore(bytes.NewReader(snaps[0]))
	a, errA := orig.ApplyCommand(next)
	b, errB := r.ApplyCommand(next)
	if errA != nil || errB != nil || !cmp.Equal(a, b) {
		t.Errorf("after restore the same command gives %+v %v and %+v %v", a, errA, b, errB)
	}
	for _, v := range r.Volumes {
		if v.InSync[0] == v.InSync[1] {
			t.Errorf("volume %s has both replicas on %s", v.ID, v.InSync[0])
		}
	}
}

func TestMissingDisk(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r2")
	apply(t, s, datastore("ds", 1, d[0], d[2]))
	// Node 1 re-registers without sdb: the datastore keeps naming it, the
	// disk shows missing, and no volume is placed on it.
	inv := s.Nodes["00000001"].Inventory
	inv.Disks = inv.Disks[:1]
	apply(t, s, RegisterNode{At: t0, MAC: s.Nodes["00000001"].MAC, Inventory: inv})
	var missing []string
	for _, di := range s.Disks() {
		if di.State == DiskMissing {
			missing = append(missing, di.ID+" in "+di.Datastore)
		}
	}
	if want := []string{d[2] + " in 1"}; !cmp.Equal(missing, want) {
		t.Errorf("missing disks %v, want %v", missing, want)
	}
	for i := range 3 {
		v := apply(t, s, CreateVolume{At: t0, Name: fmt.Sprint(i), Datastore: "1", SizeMB: 10}).(Volume)
		if v.Replicas[0].Disk != d[0] {
			t.Errorf("volume on disk %s, want %s (the other is missing)", v.Replicas[0].Disk, d[0])
		}
	}
	applyErr(t, s, AddDisks{At: t0, Datastore: "1", Disks: []string{d[2]}}, ErrInvalid, "unknown disk ids")
}
