package storage

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNoRoom is returned when no placement satisfies the policy.
var ErrNoRoom = errors.New("storage: no room")

// ErrPolicy is returned for a policy that can never be satisfied.
var ErrPolicy = errors.New("storage: bad policy")

// FTUnit is the unit of fault tolerance that replicas must not share.
// Replicas always sit on distinct nodes; a wider unit adds that they sit on
// distinct blades, chassis or racks (from each node's location).
type FTUnit string

// Fault-tolerance units, narrowest first.
const (
	UnitNode    FTUnit = "node"
	UnitBlade   FTUnit = "blade"
	UnitChassis FTUnit = "chassis"
	UnitRack    FTUnit = "rack"
)

// ParseFTUnit parses a unit name; "" and "none" mean UnitNode.
func ParseFTUnit(s string) (FTUnit, error) {
	switch u := FTUnit(s); u {
	case "", "none":
		return UnitNode, nil
	case UnitNode, UnitBlade, UnitChassis, UnitRack:
		return u, nil
	}
	return "", fmt.Errorf("%w: fault-tolerance unit %q is not one of node, blade, chassis, rack", ErrPolicy, s)
}

// Location places a node in its rack.
type Location struct {
	Rack, Chassis, Blade string
}

// Key returns the fault-tolerance unit the node at l belongs to for unit u
// (node is the node's id). An empty location field is a unit of its own
// name "", so nodes without a location share it: replicas are not spread
// over units that cannot be told apart.
func (u FTUnit) Key(node string, l Location) string {
	switch u {
	case UnitBlade:
		return l.Rack + "/" + l.Chassis + "/" + l.Blade
	case UnitChassis:
		return l.Rack + "/" + l.Chassis
	case UnitRack:
		return l.Rack
	}
	return node
}

// Disk is one disk as placement sees it.
type Disk struct {
	ID       string
	Node     string
	Location Location
	SizeMB   uint64
	ThickMB  uint64 // sum of thick replicas on it
	ThinMB   uint64 // sum of thin replicas on it (provisioned size)
	// Usable is false when the disk's node may not take new replicas (not
	// enabled, or unknown).
	Usable bool
}

// Limit is the provisioned size the disk may carry with overcommit oc.
func (d Disk) Limit(oc float64) uint64 {
	if oc < 1 {
		oc = 1
	}
	return uint64(float64(d.SizeMB) * oc)
}

// Free is the largest replica the disk accepts now.
func (d Disk) Free(thick bool, oc float64) uint64 {
	free := sub(d.Limit(oc), d.ThickMB+d.ThinMB)
	if thick {
		free = min(free, sub(d.SizeMB, d.ThickMB))
	}
	return free
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// Policy is what a volume asks of its placement.
type Policy struct {
	Replicas   int
	Overcommit float64
	Thick      bool
	Unit       FTUnit
}

// Validate checks the policy's own fields.
func (p Policy) Validate() error {
	if p.Replicas < 1 || p.Replicas > 2 {
		return fmt.Errorf("%w: replicas %d: want 1 or 2", ErrPolicy, p.Replicas)
	}
	if p.Overcommit < 1 {
		return fmt.Errorf("%w: overcommit %g: want at least 1", ErrPolicy, p.Overcommit)
	}
	if _, err := ParseFTUnit(string(p.Unit)); err != nil {
		return err
	}
	return nil
}

// walk picks up to p.Replicas disks greedily (most free first, distinct
// nodes and units) and returns their indexes in disks.
func walk(disks []Disk, p Policy) []int {
	order := make([]int, 0, len(disks))
	for i, d := range disks {
		if d.Usable {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		fa, fb := disks[order[a]].Free(p.Thick, p.Overcommit), disks[order[b]].Free(p.Thick, p.Overcommit)
		if fa != fb {
			return fa > fb
		}
		return disks[order[a]].ID < disks[order[b]].ID
	})
	var picked []int
	nodes, units := map[string]bool{}, map[string]bool{}
	for _, i := range order {
		if len(picked) == p.Replicas {
			break
		}
		d := disks[i]
		k := p.Unit.Key(d.Node, d.Location)
		if nodes[d.Node] || units[k] {
			continue
		}
		nodes[d.Node], units[k] = true, true
		picked = append(picked, i)
	}
	return picked
}

// MaxSize is the largest volume Place would place now (0 when there are
// not enough distinct usable nodes or units).
func MaxSize(disks []Disk, p Policy) uint64 {
	picked := walk(disks, p)
	if len(picked) < p.Replicas {
		return 0
	}
	m := disks[picked[0]].Free(p.Thick, p.Overcommit)
	for _, i := range picked[1:] {
		m = min(m, disks[i].Free(p.Thick, p.Overcommit))
	}
	return m
}

// Place returns the indexes in disks of the disks that take the replicas
// of a volume of sizeMB, or an error wrapping ErrNoRoom that says how much
// room there is.
func Place(disks []Disk, sizeMB uint64, p Policy) ([]int, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	picked := walk(disks, p)
	if len(picked) < p.Replicas {
		return nil, fmt.Errorf("%w: %d replicas need usable disks in %d distinct %s units, so 0 MB is free for a volume; %s", ErrNoRoom,
			p.Replicas, p.Replicas, unitName(p.Unit), describe(disks, picked))
	}
	if m := MaxSize(disks, p); m < sizeMB {
		return nil, fmt.Errorf("%w: %d MB × %d replicas (%s) do not fit: at most %d MB is free for one volume; %s",
			ErrNoRoom, sizeMB, p.Replicas, kind(p.Thick), m, describe(disks, picked))
	}
	return picked, nil
}

func unitName(u FTUnit) string {
	if u == "" {
		return string(UnitNode)
	}
	return string(u)
}

func kind(thick bool) string {
	if thick {
		return "thick"
	}
	return "thin"
}

func describe(disks []Disk, picked []int) string {
	usable := 0
	for _, d := range disks {
		if d.Usable {
			usable++
		}
	}
	if len(picked) == 0 {
		return fmt.Sprintf("%d of %d disks usable", usable, len(disks))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d disks usable, the best:", usable, len(disks))
	for _, i := range picked {
		fmt.Fprintf(&b, " disk %s on node %s", disks[i].ID, disks[i].Node)
	}
	return b.String()
}
