package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/mvstack/mvstack/proto"
)

// FuzzDecode checks that any log entry either decodes to a command that
// re-encodes to a decodable, equal command, or is rejected without panic.
func FuzzDecode(f *testing.F) {
	seeds := []Command{
		RegisterNode{At: t0, Inventory: inventory()},
		SetAdmin{At: t0, Node: "7a77f9af", State: AdminFlush},
		SetHealth{At: t0, Node: "7a77f9af", Health: HealthError, Reason: "no heartbeat"},
		UpdateMonitoring{At: t0, Node: "7a77f9af", Monitoring: Monitoring{MaxCPU: 1600, Wild: []string{"x"}}},
		CreateToken{At: t0, ID: "a", Hash: bytes.Repeat([]byte{1}, 32)},
		SetReplica{At: t0, ID: "c1", APIAddr: "127.0.0.1:8080"},
		CreateDatastore{At: t0, Name: "ds", Disks: []string{"3584916917"}, Replicas: 2, Overcommit: 1.5, TriggerRepair: RepairPeriodic, PeriodicRepairSec: 60, NumOfRepairs: 1, FTUnit: "rack"},
		AddDisks{At: t0, Datastore: "1", Disks: []string{"1"}},
		CreateVolume{At: t0, Name: "v", Datastore: "1", SizeMB: 1 << 20, Thick: true},
		ResizeVolume{At: t0, ID: "1", SizeMB: 2 << 20},
		SetInSync{At: t0, Volume: "1", Epoch: 3, InSync: []string{"00000001"}},
		SetVolumeEpoch{At: t0, Volume: "1", Epoch: 4},
		AttachVolume{At: t0, Volume: "1", Node: "00000001", Force: true},
		DetachVolume{At: t0, Volume: "1", Node: "00000001"},
		RecordRepair{At: t0, Volume: "1", Repair: Repair{Node: "00000002", Repairer: "00000001", Blocks: 3, Bytes: 1 << 18, Duration: time.Second, At: t0}},
	}
	for _, c := range seeds {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		b2, err := Encode(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := Decode(b2)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		b3, _ := Encode(c2)
		if !bytes.Equal(b2, b3) {
			t.Fatalf("round trip unstable:\n% x\n% x", b2, b3)
		}
		New().Apply(b) // never panics
	})
}

// FuzzRestore checks that any snapshot either restores to a state whose
// snapshot restores to the same bytes, or is rejected without panic.
func FuzzRestore(f *testing.F) {
	s := New()
	for _, c := range []Command{
		RegisterNode{At: t0, MAC: proto.MAC{2, 0, 0, 0, 0, 1}, Inventory: inventory()},
		SetAdmin{At: t0, Node: "00000001", State: AdminDisabled},
		CreateToken{At: t0, ID: "a", Hash: bytes.Repeat([]byte{1}, 32)},
	} {
		s.ApplyCommand(c)
	}
	var b bytes.Buffer
	s.Snapshot(&b)
	f.Add(b.Bytes())
	f.Add([]byte{SnapshotVersion})
	// A state with datastores, volumes, epochs and in-sync sets.
	st := New()
	for _, c := range storageLog(f) {
		st.ApplyCommand(c)
	}
	b.Reset()
	st.Snapshot(&b)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Restore(bytes.NewReader(b))
		if err != nil {
			return
		}
		var b2 bytes.Buffer
		if err := s.Snapshot(&b2); err != nil {
			t.Fatalf("snapshot of a restored state: %v", err)
		}
		s2, err := Restore(bytes.NewReader(b2.Bytes()))
		if err != nil {
			t.Fatalf("restore of a re-snapshot: %v", err)
		}
		var b3 bytes.Buffer
		s2.Snapshot(&b3)
		if !bytes.Equal(b2.Bytes(), b3.Bytes()) {
			t.Fatal("snapshot round trip unstable")
		}
	})
}
