package state

import (
	"testing"
	"time"
)

func TestAttachRules(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r2", "r3")
	apply(t, s, datastore("ds", 2, d[:3]...))
	v := apply(t, s, CreateVolume{At: t0, Name: "v", Datastore: "1", SizeMB: 10}).(Volume)
	if v.AttachedTo != "" {
		t.Fatalf("a new volume is attached to %q", v.AttachedTo)
	}
	apply(t, s, SetAdmin{At: t0, Node: "00000003", State: AdminDisabled})

	// Every refusal changes nothing (applyErr compares snapshots).
	applyErr(t, s, AttachVolume{At: t0, Volume: "9", Node: "00000001"}, ErrNotFound, `"9"`)
	applyErr(t, s, AttachVolume{At: t0, Volume: "1", Node: ""}, ErrInvalid, "node is empty")
	applyErr(t, s, AttachVolume{At: t0, Volume: "1", Node: "0000000f"}, ErrInvalid, "0000000f is not registered")
	applyErr(t, s, AttachVolume{At: t0, Volume: "1", Node: "00000003"}, ErrInvalid, "node 00000003 is disabled")

	got := apply(t, s, AttachVolume{At: t0, Volume: "1", Node: "00000001"}).(Volume)
	if got.AttachedTo != "00000001" {
		t.Fatalf("attached to %q, want 00000001", got.AttachedTo)
	}
	// Again on the same node: a no-op.
	apply(t, s, AttachVolume{At: t0, Volume: "1", Node: "00000001"})
	applyErr(t, s, AttachVolume{At: t0, Volume: "1", Node: "00000002"}, ErrInvalid, "attached to node 00000001: detach it first")
	applyErr(t, s, DeleteVolume{At: t0, ID: "1"}, ErrInvalid, "attached to node 00000001")

	got = apply(t, s, AttachVolume{At: t0, Volume: "1", Node: "00000002", Force: true}).(Volume)
	if got.AttachedTo != "00000002" {
		t.Fatalf("forced: attached to %q, want 00000002", got.AttachedTo)
	}
	// A detach naming the node the volume has left changes nothing.
	if got := apply(t, s, DetachVolume{At: t0, Volume: "1", Node: "00000001"}).(Volume); got.AttachedTo != "00000002" {
		t.Errorf("detach of the old node: attached to %q, want 00000002", got.AttachedTo)
	}
	if got := apply(t, s, DetachVolume{At: t0, Volume: "1"}).(Volume); got.AttachedTo != "" {
		t.Errorf("after detach: attached to %q", got.AttachedTo)
	}
	apply(t, s, DetachVolume{At: t0, Volume: "1"}) // not attached: no-op
	applyErr(t, s, DetachVolume{At: t0, Volume: "9"}, ErrNotFound, `"9"`)
	apply(t, s, DeleteVolume{At: t0, ID: "1"})
}

func TestRecordRepair(t *testing.T) {
	s := New()
	d := rack(t, s, "r1", "r2")
	apply(t, s, datastore("ds", 2, d[:2]...))
	apply(t, s, CreateVolume{At: t0, Name: "v", Datastore: "1", SizeMB: 10})
	r := Repair{Node: "00000002", Repairer: "00000001", Dirty: 3, Blocks: 3, Bytes: 3 << 16, Duration: time.Second, Epoch: 3, At: t0}
	got := apply(t, s, RecordRepair{At: t0, Volume: "1", Repair: r}).(Volume)
	if got.LastRepair == nil || *got.LastRepair != r {
		t.Errorf("last repair %+v, want %+v", got.LastRepair, r)
	}
	applyErr(t, s, RecordRepair{At: t0, Volume: "9", Repair: r}, ErrNotFound, `"9"`)
}
