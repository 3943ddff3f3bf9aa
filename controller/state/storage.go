package state

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mvstack/mvstack/controller/storage"
)

// DiskID is the storage id of the disk named name on node: the FNV-1a
// 32-bit hash of "<node>/<name>" in decimal (e.g. "3584916917", the seed's
// form). It is stable across re-registrations and controller restarts
// because it depends only on the node id and the disk's name.
func DiskID(node, name string) string {
	h := fnv.New32a()
	h.Write([]byte(node + "/" + name))
	return strconv.FormatUint(uint64(h.Sum32()), 10)
}

// Repair triggers.
const (
	RepairPeriodic = "periodic"
	RepairManual   = "manual"
)

// Datastore pools disks of several nodes with one redundancy and
// overcommit policy (seed 003 §3.5).
type Datastore struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Disks are disk ids (DiskID) in ascending order.
	Disks             []string       `json:"disks"`
	Replicas          int            `json:"replicas"`
	Overcommit        float64        `json:"overcommit"`
	Thick             bool           `json:"thick"`
	DBMetadata        bool           `json:"db_metadata"`
	TriggerRepair     string         `json:"trigger_repair"`
	PeriodicRepairSec int            `json:"periodic_repair_sec"`
	NumOfRepairs      int            `json:"num_of_repairs"`
	FTUnit            storage.FTUnit `json:"ft_unit"`
	Created           time.Time      `json:"created"`
}

// VolumeReplica is one copy of a volume: a region of a disk exported by
// the disk's node over AoE at Shelf.Slot.
type VolumeReplica struct {
	Node  string `json:"node"`
	Disk  string `json:"disk"`
	Shelf uint16 `json:"shelf"`
	Slot  uint8  `json:"slot"`
}

// Volume is a replicated virtual disk.
type Volume struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Datastore string          `json:"datastore"`
	SizeMB    uint64          `json:"size_mb"`
	Thick     bool            `json:"thick"`
	Replicas  []VolumeReplica `json:"replicas"`
	// Epoch starts at 1 and only grows; a replica refuses I/O of an older
	// epoch (the data path).
	Epoch uint64 `json:"epoch"`
	// InSync are the nodes of the replicas that hold every acknowledged
	// write, in ascending order.
	InSync []string `json:"in_sync"`
	// AttachedTo is the node that uses the volume (its volume client
	// writes to the replicas); empty when no node does.
	AttachedTo string `json:"attached_to"`
	// LastRepair is the outcome of the latest repair; nil before any.
	LastRepair *Repair   `json:"last_repair,omitempty"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

// Storage AoE addresses: every volume replica gets the first shelf.slot
// free in the whole cluster, counting from shelf ExportShelfBase slot 0
// (slots 0–254, shelves up to 65534), so no two replicas anywhere share an
// address (see nextExport). Exports a node is configured with by hand should
// use shelves below ExportShelfBase.
const ExportShelfBase = 1000

// ErrNoRoom is storage.ErrNoRoom: no placement has room for a volume. Apply
// returns it wrapped together with ErrInvalid.
var ErrNoRoom = storage.ErrNoRoom

// CreateDatastore makes a datastore.
type CreateDatastore struct {
	At                time.Time
	Name              string
	Disks             []string
	Replicas          int
	Overcommit        float64
	Thick             bool
	DBMetadata        bool
	TriggerRepair     string
	PeriodicRepairSec int
	NumOfRepairs      int
	FTUnit            string
}

// DeleteDatastore removes an empty datastore.
type DeleteDatastore struct {
	At time.Time
	ID string
}

// AddDisks adds free disks to a datastore.
type AddDisks struct {
	At        time.Time
	Datastore string
	Disks     []string
}

// RemoveDisks takes disks that hold no replica out of a datastore.
type RemoveDisks struct {
	At        time.Time
	Datastore string
	Disks     []string
}

// CreateVolume places a new volume. Thick asks for a thick volume in a thin
// datastore (a thick datastore makes every volume thick); FTUnit asks for
// a wider fault-tolerance unit than the datastore's.
type CreateVolume struct {
	At        time.Time
	Name      string
	Datastore string
	SizeMB    uint64
	Thick     bool
	FTUnit    string
}

// DeleteVolume removes a volume.
type DeleteVolume struct {
	At time.Time
	ID string
}

// ResizeVolume grows a volume.
type ResizeVolume struct {
	At     time.Time
	ID     string
	SizeMB uint64
}

// SetVolumeEpoch raises a volume's epoch (fencing: replicas then refuse
// I/O of older epochs). Epoch must be greater than the current one.
type SetVolumeEpoch struct {
	At     time.Time
	Volume string
	Epoch  uint64
}

// SetInSync replaces a volume's in-sync set. It applies only when Epoch is
// the volume's current epoch (the proposer decided on what it saw), and a
// change of the set raises the epoch by one, so a replica that left is
// stale at once and one that rejoined is current.
type SetInSync struct {
	At     time.Time
	Volume string
	Epoch  uint64
	InSync []string
}

func (CreateDatastore) Type() CommandType { return TypeCreateDatastore }
func (DeleteDatastore) Type() CommandType { return TypeDeleteDatastore }
func (AddDisks) Type() CommandType        { return TypeAddDisks }
func (RemoveDisks) Type() CommandType     { return TypeRemoveDisks }
func (CreateVolume) Type() CommandType    { return TypeCreateVolume }
func (DeleteVolume) Type() CommandType    { return TypeDeleteVolume }
func (ResizeVolume) Type() CommandType    { return TypeResizeVolume }
func (SetVolumeEpoch) Type() CommandType  { return TypeSetVolumeEpoch }
func (SetInSync) Type() CommandType       { return TypeSetInSync }

var (
	_ Command = CreateDatastore{}
	_ Command = DeleteDatastore{}
	_ Command = AddDisks{}
	_ Command = RemoveDisks{}
	_ Command = CreateVolume{}
	_ Command = DeleteVolume{}
	_ Command = ResizeVolume{}
	_ Command = SetVolumeEpoch{}
	_ Command = SetInSync{}
)

// DiskInfo is a disk as the storage API shows it.
type DiskInfo struct {
	ID         string `json:"id"`
	Node       string `json:"node"`
	Name       string `json:"name"`
	Model      string `json:"model"`
	SizeMB     uint64 `json:"size_mb"`
	Rotational bool   `json:"rotational"`
	// State is "available" (in no datastore), "in_use" (in a datastore) or
	// "missing" (a datastore names it but no registered node has it).
	State     string `json:"state"`
	Datastore string `json:"datastore,omitempty"`
	// ThickMB and ThinMB sum the replicas on the disk; Replicas counts them.
	ThickMB  uint64 `json:"thick_mb"`
	ThinMB   uint64 `json:"thin_mb"`
	Replicas int    `json:"replicas"`
}

// Disk states.
const (
	DiskAvailable = "available"
	DiskInUse     = "in_use"
	DiskMissing   = "missing"
)

// Disks returns every disk of the registered nodes and every disk a
// datastore names that no node has, in id order. When two disks hash to
// one id the one of the lower node id wins (the other cannot be used).
func (s *State) Disks() []DiskInfo {
	byID := map[string]*DiskInfo{}
	for _, n := range s.SortedNodes() {
		for _, d := range n.Inventory.Disks {
			id := DiskID(n.ID, d.Name)
			if _, dup := byID[id]; dup {
				continue
			}
			byID[id] = &DiskInfo{ID: id, Node: n.ID, Name: d.Name, Model: d.Model, SizeMB: d.SizeMB, Rotational: d.Rotational, State: DiskAvailable}
		}
	}
	for _, ds := range s.Datastores {
		for _, id := range ds.Disks {
			d, ok := byID[id]
			if !ok {
				d = &DiskInfo{ID: id, State: DiskMissing}
				byID[id] = d
			} else {
				d.State = DiskInUse
			}
			d.Datastore = ds.ID
		}
	}
	for _, v := range s.Volumes {
		for _, r := range v.Replicas {
			d, ok := byID[r.Disk]
			if !ok {
				continue
			}
			d.Replicas++
			if v.Thick {
				d.ThickMB += v.SizeMB
			} else {
				d.ThinMB += v.SizeMB
			}
		}
	}
	out := make([]DiskInfo, 0, len(byID))
	for _, d := range byID {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// DatastoreUsage sums a datastore's capacity.
type DatastoreUsage struct {
	SizeMB uint64 `json:"size_mb"` // physical, disks of registered nodes
	// LimitMB is what may be provisioned: size × overcommit.
	LimitMB uint64 `json:"limit_mb"`
	ThickMB uint64 `json:"thick_mb"`
	ThinMB  uint64 `json:"thin_mb"`
	Volumes int    `json:"volumes"`
	// MaxVolumeMB is the largest volume of the datastore's policy that
	// would be placed now.
	MaxVolumeMB uint64 `json:"max_volume_mb"`
}

// Usage sums the capacity of datastore ds.
func (s *State) Usage(ds *Datastore) DatastoreUsage {
	disks := s.placementDisks(ds)
	var u DatastoreUsage
	for _, d := range disks {
		u.SizeMB += d.SizeMB
		u.LimitMB += d.Limit(ds.Overcommit)
		u.ThickMB += d.ThickMB
		u.ThinMB += d.ThinMB
	}
	for _, v := range s.Volumes {
		if v.Datastore == ds.ID {
			u.Volumes++
		}
	}
	u.MaxVolumeMB = storage.MaxSize(disks, ds.policy(ds.Thick, ds.FTUnit))
	return u
}

func (ds *Datastore) policy(thick bool, unit storage.FTUnit) storage.Policy {
	return storage.Policy{Replicas: ds.Replicas, Overcommit: ds.Overcommit, Thick: ds.Thick || thick, Unit: unit}
}

// placementDisks lists ds's disks as placement sees them, in ds.Disks order.
func (s *State) placementDisks(ds *Datastore) []storage.Disk {
	info := map[string]DiskInfo{}
	for _, d := range s.Disks() {
		info[d.ID] = d
	}
	out := make([]storage.Disk, 0, len(ds.Disks))
	for _, id := range ds.Disks {
		d := info[id]
		sd := storage.Disk{ID: id, Node: d.Node, SizeMB: d.SizeMB, ThickMB: d.ThickMB, ThinMB: d.ThinMB}
		if n, ok := s.Nodes[d.Node]; ok && d.State != DiskMissing {
			l := n.Inventory.Location
			sd.Location = storage.Location{Rack: l.Rack, Chassis: l.Chassis, Blade: l.Blade}
			sd.Usable = n.State() == HostEnabled
		}
		out = append(out, sd)
	}
	return out
}

// SortedDatastores returns the datastores in id order.
func (s *State) SortedDatastores() []*Datastore {
	out := make([]*Datastore, 0, len(s.Datastores))
	for _, d := range s.Datastores {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// volume is volume id, or ErrNotFound naming it.
func (s *State) volume(id string) (*Volume, error) {
	if v, ok := s.Volumes[id]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("%w: volume %q", ErrNotFound, id)
}

// SortedVolumes returns the volumes in id order.
func (s *State) SortedVolumes() []*Volume {
	out := make([]*Volume, 0, len(s.Volumes))
	for _, v := range s.Volumes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// idLess orders decimal ids numerically.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// FieldError names the command field an invalid command is wrong in (the
// REST API reports it as the error's field). It unwraps to the error.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }

// cleanIDs returns ids sorted without duplicates, or an error naming an
// empty or duplicated id.
func cleanIDs(what string, ids []string) ([]string, error) {
	field := "disks"
	if what == "node" {
		field = "in_sync"
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	for i, id := range out {
		if id == "" {
			return nil, fieldErr(field, fmt.Errorf("%w: an empty %s id", ErrInvalid, what))
		}
		if i > 0 && out[i-1] == id {
			return nil, fieldErr(field, fmt.Errorf("%w: %s %s is named twice", ErrInvalid, what, id))
		}
	}
	return out, nil
}

// checkFreeDisks checks that ids name known disks in no datastore.
func (s *State) checkFreeDisks(ids []string) error {
	info := map[string]DiskInfo{}
	for _, d := range s.Disks() {
		info[d.ID] = d
	}
	var unknown []string
	for _, id := range ids {
		d, ok := info[id]
		switch {
		case !ok || d.State == DiskMissing:
			unknown = append(unknown, id)
		case d.Datastore != "":
			ds := s.Datastores[d.Datastore]
			return fieldErr("disks", fmt.Errorf("%w: disk %s is already in datastore %s (%s)", ErrInvalid, id, ds.ID, ds.Name))
		}
	}
	if len(unknown) > 0 {
		return fieldErr("disks", fmt.Errorf("%w: unknown disk ids %s (see GET /api/disks)", ErrInvalid, strings.Join(unknown, ",")))
	}
	return nil
}

// checkSpread checks that a datastore of replicas can ever place them: its
// disks sit on at least that many nodes, and fault-tolerance units.
func (s *State) checkSpread(replicas int, unit storage.FTUnit, ids []string) error {
	if replicas < 2 {
		return nil
	}
	nodes, units := map[string]bool{}, map[string]bool{}
	for _, d := range s.Disks() {
		if n, ok := s.Nodes[d.Node]; ok && slices.Contains(ids, d.ID) {
			l := n.Inventory.Location
			nodes[d.Node] = true
			units[unit.Key(d.Node, storage.Location{Rack: l.Rack, Chassis: l.Chassis, Blade: l.Blade})] = true
		}
	}
	if len(nodes) < replicas {
		return fieldErr("disks", fmt.Errorf("%w: replicas %d need disks on %d different nodes; these disks are on %d", ErrInvalid, replicas, replicas, len(nodes)))
	}
	if len(units) < replicas {
		return fieldErr("disks", fmt.Errorf("%w: replicas %d with ft_unit %s need disks in %d different %s units; these disks are in %d", ErrInvalid, replicas, unit, replicas, unit, len(units)))
	}
	return nil
}

func (s *State) createDatastore(c CreateDatastore) (any, error) {
	if strings.TrimSpace(c.Name) == "" {
		return nil, fieldErr("name", fmt.Errorf("%w: name is empty", ErrInvalid))
	}
	for _, d := range s.Datastores {
		if d.Name == c.Name {
			return nil, fieldErr("name", fmt.Errorf("%w: name %q is taken by datastore %s", ErrInvalid, c.Name, d.ID))
		}
	}
	if len(c.Disks) == 0 {
		return nil, fieldErr("disks", fmt.Errorf("%w: disks: a datastore needs at least one disk", ErrInvalid))
	}
	disks, err := cleanIDs("disk", c.Disks)
	if err != nil {
		return nil, err
	}
	if c.Replicas != 1 && c.Replicas != 2 {
		return nil, fieldErr("replicas", fmt.Errorf("%w: replicas %d: want 1 or 2", ErrInvalid, c.Replicas))
	}
	if !(c.Overcommit >= 1) { // also NaN
		return nil, fieldErr("overcommit", fmt.Errorf("%w: overcommit %g: want at least 1 (1 = no overcommit)", ErrInvalid, c.Overcommit))
	}
	switch c.TriggerRepair {
	case RepairManual:
	case RepairPeriodic:
		if c.PeriodicRepairSec <= 0 {
			return nil, fieldErr("periodic_repair_sec", fmt.Errorf("%w: periodic_repair_sec %d: periodic repairs need a period above 0 seconds", ErrInvalid, c.PeriodicRepairSec))
		}
	default:
		return nil, fieldErr("trigger_repair", fmt.Errorf("%w: trigger_repair %q: want periodic or manual", ErrInvalid, c.TriggerRepair))
	}
	if c.PeriodicRepairSec < 0 {
		return nil, fieldErr("periodic_repair_sec", fmt.Errorf("%w: periodic_repair_sec %d is negative", ErrInvalid, c.PeriodicRepairSec))
	}
	if c.NumOfRepairs < 1 {
		return nil, fieldErr("num_of_repairs", fmt.Errorf("%w: num_of_repairs %d: want at least 1 repair at a time", ErrInvalid, c.NumOfRepairs))
	}
	unit, err := storage.ParseFTUnit(c.FTUnit)
	if err != nil {
		return nil, fieldErr("ft_unit", fmt.Errorf("%w: ft_unit: %w", ErrInvalid, err))
	}
	if err := s.checkFreeDisks(disks); err != nil {
		return nil, err
	}
	if err := s.checkSpread(c.Replicas, unit, disks); err != nil {
		return nil, err
	}
	s.NextDatastore++
	ds := &Datastore{ID: strconv.FormatUint(s.NextDatastore, 10), Name: c.Name, Disks: disks, Replicas: c.Replicas,
		Overcommit: c.Overcommit, Thick: c.Thick, DBMetadata: c.DBMetadata, TriggerRepair: c.TriggerRepair,
		PeriodicRepairSec: c.PeriodicRepairSec, NumOfRepairs: c.NumOfRepairs, FTUnit: unit, Created: c.At}
	s.Datastores[ds.ID] = ds
	s.event(c.At, "datastore_created", "", fmt.Sprintf("datastore %s (%s) created with disks %s", ds.ID, ds.Name, strings.Join(disks, ",")))
	return *ds, nil
}

func (s *State) datastoreVolumes(id string) []string {
	var vs []string
	for _, v := range s.SortedVolumes() {
		if v.Datastore == id {
			vs = append(vs, v.ID)
		}
	}
	return vs
}

func (s *State) deleteDatastore(c DeleteDatastore) (any, error) {
	ds, ok := s.Datastores[c.ID]
	if !ok {
		return nil, fmt.Errorf("%w: datastore %q", ErrNotFound, c.ID)
	}
	if vs := s.datastoreVolumes(c.ID); len(vs) > 0 {
		return nil, fmt.Errorf("%w: datastore %s (%s) still has volumes %s: delete them first", ErrInvalid, ds.ID, ds.Name, strings.Join(vs, ","))
	}
	delete(s.Datastores, c.ID)
	s.event(c.At, "datastore_deleted", "", fmt.Sprintf("datastore %s (%s) deleted", ds.ID, ds.Name))
	return nil, nil
}

// diskChange checks the common part of AddDisks and RemoveDisks: the
// datastore exists and the disk ids are a non-empty set.
func (s *State) diskChange(id string, ids []string) (*Datastore, []string, error) {
	ds, ok := s.Datastores[id]
	if !ok {
		return nil, nil, fmt.Errorf("%w: datastore %q", ErrNotFound, id)
	}
	if len(ids) == 0 {
		return nil, nil, fieldErr("disks", fmt.Errorf("%w: disks: name at least one disk", ErrInvalid))
	}
	disks, err := cleanIDs("disk", ids)
	return ds, disks, err
}

func (s *State) addDisks(c AddDisks) (any, error) {
	ds, disks, err := s.diskChange(c.Datastore, c.Disks)
	if err != nil {
		return nil, err
	}
	if err := s.checkFreeDisks(disks); err != nil {
		return nil, err
	}
	m := *ds
	m.Disks = slices.Concat(ds.Disks, disks)
	slices.Sort(m.Disks)
	s.Datastores[m.ID] = &m
	s.event(c.At, "datastore_disks_added", "", fmt.Sprintf("datastore %s (%s): disks %s added", m.ID, m.Name, strings.Join(disks, ",")))
	return m, nil
}

func (s *State) removeDisks(c RemoveDisks) (any, error) {
	ds, disks, err := s.diskChange(c.Datastore, c.Disks)
	if err != nil {
		return nil, err
	}
	for _, id := range disks {
		if !slices.Contains(ds.Disks, id) {
			return nil, fieldErr("disks", fmt.Errorf("%w: disk %s is not in datastore %s (%s)", ErrInvalid, id, ds.ID, ds.Name))
		}
		for _, v := range s.SortedVolumes() {
			for _, r := range v.Replicas {
				if r.Disk == id {
					return nil, fieldErr("disks", fmt.Errorf("%w: disk %s holds a replica of volume %s (%s): delete or move the volume first", ErrInvalid, id, v.ID, v.Name))
				}
			}
		}
	}
	left := slices.DeleteFunc(slices.Clone(ds.Disks), func(id string) bool { return slices.Contains(disks, id) })
	if len(left) == 0 {
		return nil, fieldErr("disks", fmt.Errorf("%w: disks: datastore %s (%s) would have no disk left; delete the datastore instead", ErrInvalid, ds.ID, ds.Name))
	}
	if err := s.checkSpread(ds.Replicas, ds.FTUnit, left); err != nil {
		return nil, fmt.Errorf("after removing %s: %w", strings.Join(disks, ","), err)
	}
	m := *ds
	m.Disks = left
	s.Datastores[m.ID] = &m
	s.event(c.At, "datastore_disks_removed", "", fmt.Sprintf("datastore %s (%s): disks %s removed", m.ID, m.Name, strings.Join(disks, ",")))
	return m, nil
}

// nextExport is the first shelf.slot that no replica in the cluster uses,
// nor any of placed (the replicas of the volume being made). Addresses are
// unique across the cluster, not only per node: an AoE initiator takes every
// target answering at one shelf.slot for another path to the same device, so
// two replicas of a volume must never share one.
func (s *State) nextExport(placed []VolumeReplica) (uint16, uint8, error) {
	used := map[uint32]bool{}
	for _, v := range s.Volumes {
		for _, r := range v.Replicas {
			used[uint32(r.Shelf)<<8|uint32(r.Slot)] = true
		}
	}
	for _, r := range placed {
		used[uint32(r.Shelf)<<8|uint32(r.Slot)] = true
	}
	for shelf := uint32(ExportShelfBase); shelf <= 0xfffe; shelf++ {
		for slot := uint32(0); slot <= 0xfe; slot++ {
			if !used[shelf<<8|slot] {
				return uint16(shelf), uint8(slot), nil
			}
		}
	}
	return 0, 0, fmt.Errorf("%w: no free AoE shelf.slot is left in the cluster", ErrInvalid)
}

func (s *State) createVolume(c CreateVolume) (any, error) {
	if strings.TrimSpace(c.Name) == "" {
		return nil, fieldErr("name", fmt.Errorf("%w: name is empty", ErrInvalid))
	}
	for _, v := range s.Volumes {
		if v.Name == c.Name {
			return nil, fieldErr("name", fmt.Errorf("%w: name %q is taken by volume %s", ErrInvalid, c.Name, v.ID))
		}
	}
	if c.SizeMB == 0 {
		return nil, fieldErr("size_mb", fmt.Errorf("%w: size_mb must be above 0", ErrInvalid))
	}
	ds, ok := s.Datastores[c.Datastore]
	if !ok {
		return nil, fieldErr("datastore", fmt.Errorf("%w: datastore %q does not exist", ErrInvalid, c.Datastore))
	}
	unit := ds.FTUnit
	if c.FTUnit != "" {
		u, err := storage.ParseFTUnit(c.FTUnit)
		if err != nil {
			return nil, fieldErr("ft_unit", fmt.Errorf("%w: ft_unit: %w", ErrInvalid, err))
		}
		unit = u
	}
	disks := s.placementDisks(ds)
	p := ds.policy(c.Thick, unit)
	picked, err := storage.Place(disks, c.SizeMB, p)
	if err != nil {
		return nil, fieldErr("size_mb", fmt.Errorf("%w: datastore %s (%s): %w", ErrInvalid, ds.ID, ds.Name, err))
	}
	s.NextVolume++
	v := &Volume{ID: strconv.FormatUint(s.NextVolume, 10), Name: c.Name, Datastore: ds.ID, SizeMB: c.SizeMB,
		Thick: p.Thick, Epoch: 1, Created: c.At, Updated: c.At}
	for _, i := range picked {
		shelf, slot, err := s.nextExport(v.Replicas)
		if err != nil {
			s.NextVolume--
			return nil, err
		}
		v.Replicas = append(v.Replicas, VolumeReplica{Node: disks[i].Node, Disk: disks[i].ID, Shelf: shelf, Slot: slot})
		v.InSync = append(v.InSync, disks[i].Node)
	}
	slices.Sort(v.InSync)
	s.Volumes[v.ID] = v
	s.event(c.At, "volume_created", "", fmt.Sprintf("volume %s (%s) of %d MB in datastore %s on nodes %s", v.ID, v.Name, v.SizeMB, ds.ID, strings.Join(v.InSync, ",")))
	return *v, nil
}

func (s *State) resizeVolume(c ResizeVolume) (any, error) {
	v, err := s.volume(c.ID)
	if err != nil {
		return nil, err
	}
	if c.SizeMB <= v.SizeMB {
		return nil, fieldErr("size_mb", fmt.Errorf("%w: size_mb %d: volumes only grow (now %d MB)", ErrInvalid, c.SizeMB, v.SizeMB))
	}
	ds := s.Datastores[v.Datastore]
	grow := c.SizeMB - v.SizeMB
	byID := map[string]storage.Disk{}
	for _, d := range s.placementDisks(ds) {
		byID[d.ID] = d
	}
	for _, r := range v.Replicas {
		d := byID[r.Disk]
		if free := d.Free(v.Thick, ds.Overcommit); free < grow {
			return nil, fieldErr("size_mb", fmt.Errorf("%w: %w: datastore %s (%s): growing by %d MB does not fit on disk %s of node %s: %d MB free there",
				ErrInvalid, ErrNoRoom, ds.ID, ds.Name, grow, r.Disk, r.Node, free))
		}
	}
	m := *v
	m.SizeMB, m.Updated = c.SizeMB, c.At
	s.Volumes[m.ID] = &m
	s.event(c.At, "volume_resized", "", fmt.Sprintf("volume %s (%s) grown from %d to %d MB", m.ID, m.Name, v.SizeMB, m.SizeMB))
	return m, nil
}

func (s *State) deleteVolume(c DeleteVolume) (any, error) {
	v, err := s.volume(c.ID)
	if err != nil {
		return nil, err
	}
	if v.AttachedTo != "" {
		return nil, fmt.Errorf("%w: volume %s (%s) is attached to node %s: detach it first", ErrInvalid, v.ID, v.Name, v.AttachedTo)
	}
	delete(s.Volumes, c.ID)
	s.event(c.At, "volume_deleted", "", fmt.Sprintf("volume %s (%s) deleted", v.ID, v.Name))
	return nil, nil
}

// ErrStaleEpoch is returned when a command names an epoch that is not the
// volume's current one (another change came first). It wraps ErrInvalid.
var ErrStaleEpoch = fmt.Errorf("%w: stale epoch", ErrInvalid)

func (s *State) setVolumeEpoch(c SetVolumeEpoch) (any, error) {
	v, err := s.volume(c.Volume)
	if err != nil {
		return nil, err
	}
	if c.Epoch <= v.Epoch {
		return nil, fmt.Errorf("%w: volume %s: epoch %d is not above the current %d (epochs never go back)", ErrStaleEpoch, v.ID, c.Epoch, v.Epoch)
	}
	m := *v
	m.Epoch, m.Updated = c.Epoch, c.At
	s.Volumes[m.ID] = &m
	s.event(c.At, "volume_epoch", "", fmt.Sprintf("volume %s epoch %d -> %d", m.ID, v.Epoch, m.Epoch))
	return m, nil
}

func (s *State) setInSync(c SetInSync) (any, error) {
	v, err := s.volume(c.Volume)
	if err != nil {
		return nil, err
	}
	if c.Epoch != v.Epoch {
		return nil, fmt.Errorf("%w: volume %s: the change was decided at epoch %d, the volume is at %d", ErrStaleEpoch, v.ID, c.Epoch, v.Epoch)
	}
	set, err := cleanIDs("node", c.InSync)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%w: volume %s: the in-sync set cannot be empty (the last replica holds the only current data)", ErrInvalid, v.ID)
	}
	for _, n := range set {
		if !slices.ContainsFunc(v.Replicas, func(r VolumeReplica) bool { return r.Node == n }) {
			return nil, fmt.Errorf("%w: volume %s has no replica on node %s", ErrInvalid, v.ID, n)
		}
	}
	if slices.Equal(set, v.InSync) {
		return *v, nil
	}
	m := *v
	m.InSync, m.Epoch, m.Updated = set, v.Epoch+1, c.At
	s.Volumes[m.ID] = &m
	s.event(c.At, "volume_in_sync", "", fmt.Sprintf("volume %s in sync on %s at epoch %d (was %s)", m.ID, strings.Join(set, ","), m.Epoch, strings.Join(v.InSync, ",")))
	return m, nil
}
