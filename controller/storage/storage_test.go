package storage

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func disk(id, node, rack string, size, thick, thin uint64) Disk {
	return Disk{ID: id, Node: node, Location: Location{Rack: rack, Chassis: "c", Blade: node}, SizeMB: size, ThickMB: thick, ThinMB: thin, Usable: true}
}

func TestFree(t *testing.T) {
	tests := []struct {
		desc       string
		d          Disk
		oc         float64
		thin, thik uint64
	}{
		{"empty, no overcommit", disk("a", "n", "", 1000, 0, 0), 1, 1000, 1000},
		{"empty, overcommit 2", disk("a", "n", "", 1000, 0, 0), 2, 2000, 1000},
		{"thin over the physical size", disk("a", "n", "", 1000, 0, 1500), 2, 500, 500},
		{"thick only", disk("a", "n", "", 1000, 800, 0), 2, 1200, 200},
		{"full", disk("a", "n", "", 1000, 1000, 1000), 2, 0, 0},
		{"over full (overcommit lowered)", disk("a", "n", "", 1000, 0, 1500), 1, 0, 0},
		{"fractional overcommit", disk("a", "n", "", 1000, 0, 0), 1.5, 1500, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := tt.d.Free(false, tt.oc); got != tt.thin {
				t.Errorf("thin free %d, want %d", got, tt.thin)
			}
			if got := tt.d.Free(true, tt.oc); got != tt.thik {
				t.Errorf("thick free %d, want %d", got, tt.thik)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	three := []Disk{
		disk("1", "n1", "r1", 1000, 0, 0),
		disk("2", "n1", "r1", 1000, 0, 0),
		disk("3", "n2", "r1", 500, 0, 0),
		disk("4", "n3", "r2", 300, 0, 0),
	}
	tests := []struct {
		desc  string
		disks []Disk
		size  uint64
		p     Policy
		want  []string // disk ids, or nil for ErrNoRoom
		max   uint64
	}{
		{"one replica: most free, lowest id", three, 100, Policy{Replicas: 1, Overcommit: 1}, []string{"1"}, 1000},
		{"two replicas never on one node", three, 100, Policy{Replicas: 2, Overcommit: 1}, []string{"1", "3"}, 500},
		{"two replicas: the second limits", three, 501, Policy{Replicas: 2, Overcommit: 1}, nil, 500},
		{"rack unit: the only other rack", three, 100, Policy{Replicas: 2, Overcommit: 1, Unit: UnitRack}, []string{"1", "4"}, 300},
		{"rack unit: too big for r2", three, 301, Policy{Replicas: 2, Overcommit: 1, Unit: UnitRack}, nil, 300},
		{"overcommit makes room", three, 900, Policy{Replicas: 2, Overcommit: 2}, []string{"1", "3"}, 1000},
		{"thick ignores overcommit", three, 600, Policy{Replicas: 2, Overcommit: 2, Thick: true}, nil, 500},
		{"one node only", three[:2], 1, Policy{Replicas: 2, Overcommit: 1}, nil, 0},
		{"unusable node skipped", []Disk{three[0], {ID: "3", Node: "n2", SizeMB: 500}}, 1, Policy{Replicas: 2, Overcommit: 1}, nil, 0},
		{"used disks have less room", []Disk{disk("1", "n1", "", 1000, 0, 900), disk("2", "n2", "", 1000, 0, 0), disk("3", "n3", "", 1000, 0, 50)},
			100, Policy{Replicas: 2, Overcommit: 1}, []string{"2", "3"}, 950},
		{"blade unit: nodes without a location share one", []Disk{{ID: "1", Node: "n1", SizeMB: 9, Usable: true}, {ID: "2", Node: "n2", SizeMB: 9, Usable: true}},
			1, Policy{Replicas: 2, Overcommit: 1, Unit: UnitBlade}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			idx, err := Place(tt.disks, tt.size, tt.p)
			if tt.want == nil {
				if !errors.Is(err, ErrNoRoom) {
					t.Fatalf("Place = %v, %v; want ErrNoRoom", idx, err)
				}
				if tt.max > 0 && !strings.Contains(err.Error(), fmt.Sprintf("at most %d MB", tt.max)) {
					t.Errorf("error %q does not say %d MB is free", err, tt.max)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, i := range idx {
					got = append(got, tt.disks[i].ID)
				}
				if d := cmp.Diff(tt.want, got); d != "" {
					t.Errorf("placement (-want +got):\n%s", d)
				}
			}
			if got := MaxSize(tt.disks, tt.p); got != tt.max {
				t.Errorf("MaxSize = %d, want %d", got, tt.max)
			}
		})
	}
}

// TestPlaceNeverSharesANode places volumes until the disks are full and
// checks every placement, for both units.
func TestPlaceNeverSharesANode(t *testing.T) {
	for _, unit := range []FTUnit{UnitNode, UnitRack} {
		disks := []Disk{
			disk("1", "n1", "r1", 1000, 0, 0), disk("2", "n1", "r1", 700, 0, 0),
			disk("3", "n2", "r2", 900, 0, 0), disk("4", "n3", "r3", 400, 0, 0), disk("5", "n3", "r3", 100, 0, 0),
		}
		p := Policy{Replicas: 2, Overcommit: 1, Unit: unit}
		placed := uint64(0)
		for i := 0; ; i++ {
			idx, err := Place(disks, 50, p)
			if errors.Is(err, ErrNoRoom) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			a, b := disks[idx[0]], disks[idx[1]]
			if a.Node == b.Node || unit.Key(a.Node, a.Location) == unit.Key(b.Node, b.Location) {
				t.Fatalf("%s: volume %d on disks %s (%s) and %s (%s)", unit, i, a.ID, a.Node, b.ID, b.Node)
			}
			for _, j := range idx {
				disks[j].ThinMB += 50
			}
			placed += 100
		}
		// 3100 MB in all; at most everything outside the biggest node's
		// share can pair with it.
		if placed < 2000 {
			t.Errorf("%s: placed only %d MB of replicas in 3100 MB", unit, placed)
		}
		for _, d := range disks {
			if d.ThinMB > d.SizeMB {
				t.Errorf("disk %s over full: %d of %d MB", d.ID, d.ThinMB, d.SizeMB)
			}
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []Policy{{Replicas: 3, Overcommit: 1}, {Replicas: 0, Overcommit: 1}, {Replicas: 1, Overcommit: 0.9}, {Replicas: 1, Overcommit: 1, Unit: "moon"}} {
		if _, err := Place(nil, 1, p); !errors.Is(err, ErrPolicy) {
			t.Errorf("Place with %+v: %v, want ErrPolicy", p, err)
		}
	}
}
