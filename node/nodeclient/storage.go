package nodeclient

import (
	"context"
	"errors"
	"time"

	"github.com/mvstack/mvstack/proto"
)

// Storage methods: the controller tells each node which volume replicas it
// serves (MethodAssign), which volumes it attaches for its guests
// (MethodAttach), when to repair (MethodRepair) and whom to fence
// (MethodFence). A node asks the controller to change a volume's in-sync
// set (MethodSetInSync) and re-reads a volume (MethodVolume). See
// docs/storage.md.
const (
	// MethodAssign: [AssignRequest] → [AssignReply]. The whole list of
	// replicas the node serves; a replica not listed is removed.
	MethodAssign = "volume.assign"
	// MethodAttach: [AttachRequest] → [VolumeStatus]. The node opens the
	// volume client and serves it as NBD on a unix socket.
	MethodAttach = "volume.attach"
	// MethodDetach: [VolumeRequest] → [VolumeStatus].
	MethodDetach = "volume.detach"
	// MethodVolumeStatus: [VolumeRequest] → [VolumeStatus].
	MethodVolumeStatus = "volume.status"
	// MethodRepair: [RepairRequest] → [ResyncReport]. The node copies to
	// the stale replica the blocks written since it left (all of them when
	// it has no bitmap), then asks the controller to put it back in sync.
	MethodRepair = "volume.repair"
	// MethodFence: [FenceRequest] → [AssignReply]. The node raises the
	// epoch of its replicas of the volume and sets their AoE reservation.
	MethodFence = "volume.fence"

	// MethodSetInSync (controller side): [SetInSyncRequest] → [VolumeSpec].
	MethodSetInSync = "storage.set_in_sync"
	// MethodVolume (controller side): [VolumeRequest] → [VolumeSpec].
	MethodVolume = "storage.volume"
)

// ErrStaleEpoch is matched by the error of a storage request whose epoch
// is older than the volume's (someone else changed the in-sync set first:
// re-read the volume and decide again).
var ErrStaleEpoch = errors.New("nodeclient: volume epoch older than the current one")

// ReplicaAssignment is one replica a node serves: a region of one of its
// disks exported over AoE at Shelf.Slot.
type ReplicaAssignment struct {
	Volume string `cbor:"1,keyasint" json:"volume"` // volume id
	Name   string `cbor:"2,keyasint,omitempty" json:"name"`
	// Disk is the disk's name in the node's inventory.
	Disk   string `cbor:"3,keyasint" json:"disk"`
	Shelf  uint16 `cbor:"4,keyasint" json:"shelf"`
	Slot   uint8  `cbor:"5,keyasint" json:"slot"`
	SizeMB uint64 `cbor:"6,keyasint" json:"size_mb"`
	Thick  bool   `cbor:"7,keyasint,omitempty" json:"thick"`
	// Epoch is the volume's current epoch. The export refuses I/O from an
	// initiator that registered an older one.
	Epoch uint64 `cbor:"8,keyasint" json:"epoch"`
	// InSync says whether this replica is in the volume's in-sync set.
	InSync bool `cbor:"9,keyasint,omitempty" json:"in_sync"`
}

// AssignRequest replaces the set of replicas a node serves.
type AssignRequest struct {
	Term     uint64              `cbor:"1,keyasint,omitempty"`
	Replicas []ReplicaAssignment `cbor:"2,keyasint,omitempty"`
}

// ReplicaStatus is how a node's replica stands.
type ReplicaStatus struct {
	Volume string `cbor:"1,keyasint" json:"volume"`
	Shelf  uint16 `cbor:"2,keyasint" json:"shelf"`
	Slot   uint8  `cbor:"3,keyasint" json:"slot"`
	Epoch  uint64 `cbor:"4,keyasint" json:"epoch"`
	// Allocated is how many bytes of the disk the replica holds.
	Allocated uint64 `cbor:"5,keyasint" json:"allocated"`
	// Error says why the replica is not served, empty when it is.
	Error string `cbor:"6,keyasint,omitempty" json:"error,omitempty"`
}

// AssignReply lists the node's replicas after the change.
type AssignReply struct {
	Replicas []ReplicaStatus `cbor:"1,keyasint,omitempty"`
}

// SpecReplica is one replica of a volume as its users see it.
type SpecReplica struct {
	Node   string    `cbor:"1,keyasint" json:"node"`
	MAC    proto.MAC `cbor:"2,keyasint" json:"mac"`
	Shelf  uint16    `cbor:"3,keyasint" json:"shelf"`
	Slot   uint8     `cbor:"4,keyasint" json:"slot"`
	InSync bool      `cbor:"5,keyasint,omitempty" json:"in_sync"`
}

// VolumeSpec is what a node needs to open a volume.
type VolumeSpec struct {
	ID       string        `cbor:"1,keyasint" json:"id"`
	Name     string        `cbor:"2,keyasint,omitempty" json:"name"`
	SizeMB   uint64        `cbor:"3,keyasint" json:"size_mb"`
	Epoch    uint64        `cbor:"4,keyasint" json:"epoch"`
	Replicas []SpecReplica `cbor:"5,keyasint" json:"replicas"`
}

// AttachRequest asks a node to open a volume and serve it as NBD.
type AttachRequest struct {
	Term   uint64     `cbor:"1,keyasint,omitempty"`
	Volume VolumeSpec `cbor:"2,keyasint"`
	// Socket is the unix socket path to serve NBD on; empty picks
	// /run/mvstack/volumes/<id>.sock.
	Socket string `cbor:"3,keyasint,omitempty"`
}

// VolumeRequest names a volume.
type VolumeRequest struct {
	Term   uint64 `cbor:"1,keyasint,omitempty"`
	Volume string `cbor:"2,keyasint"`
}

// ResyncReport is what one resync moved.
type ResyncReport struct {
	Volume string `cbor:"1,keyasint" json:"volume"`
	// Node is the replica's node that was brought back.
	Node string `cbor:"2,keyasint" json:"node"`
	// Full is true when there was no bitmap and every block was copied.
	Full bool `cbor:"3,keyasint,omitempty" json:"full"`
	// Dirty is the number of dirty blocks when the resync began; Blocks
	// how many blocks it copied, Bytes how many bytes.
	Dirty    int           `cbor:"4,keyasint" json:"dirty"`
	Blocks   int           `cbor:"5,keyasint" json:"blocks"`
	Bytes    int64         `cbor:"6,keyasint" json:"bytes"`
	Duration time.Duration `cbor:"7,keyasint" json:"duration_ns"`
	// Epoch is the volume's epoch after the replica rejoined.
	Epoch uint64    `cbor:"8,keyasint" json:"epoch"`
	At    time.Time `cbor:"9,keyasint" json:"at"`
}

// VolumeStatus is an attached volume's state on the node using it.
type VolumeStatus struct {
	Volume   string `cbor:"1,keyasint" json:"volume"`
	Attached bool   `cbor:"2,keyasint" json:"attached"`
	Socket   string `cbor:"3,keyasint,omitempty" json:"socket,omitempty"`
	Epoch    uint64 `cbor:"4,keyasint" json:"epoch"`
	// InSync are the nodes of the replicas the client writes to.
	InSync []string `cbor:"5,keyasint,omitempty" json:"in_sync"`
	// Dirty is the number of blocks written since a replica left.
	Dirty      int           `cbor:"6,keyasint" json:"dirty"`
	BlockSize  int64         `cbor:"7,keyasint" json:"block_size"`
	LastResync *ResyncReport `cbor:"8,keyasint,omitempty" json:"last_resync,omitempty"`
}

// RepairRequest asks a node to resync a stale replica of a volume. The
// node that has the volume attached uses its bitmap; any other node copies
// everything.
type RepairRequest struct {
	Term   uint64     `cbor:"1,keyasint,omitempty"`
	Volume VolumeSpec `cbor:"2,keyasint"`
	// Node is the stale replica's node.
	Node string `cbor:"3,keyasint"`
}

// FenceRequest raises the epoch of a node's replicas of Volume to Epoch
// and sets their AoE reserve list to Allow (empty: no reservation).
type FenceRequest struct {
	Term   uint64      `cbor:"1,keyasint,omitempty"`
	Volume string      `cbor:"2,keyasint"`
	Epoch  uint64      `cbor:"3,keyasint"`
	Allow  []proto.MAC `cbor:"4,keyasint,omitempty"`
}

// SetInSyncRequest asks the controller to make InSync the volume's
// in-sync set, deciding on Epoch (the epoch the node saw). The answer is
// the volume after the change; ErrStaleEpoch when Epoch is not current.
type SetInSyncRequest struct {
	Volume string   `cbor:"1,keyasint"`
	Epoch  uint64   `cbor:"2,keyasint"`
	InSync []string `cbor:"3,keyasint"`
}

// Assign sends a node the whole list of replicas it serves.
func (c *Client) Assign(ctx context.Context, node proto.MAC, replicas []ReplicaAssignment) (AssignReply, error) {
	return call[AssignReply](ctx, c.ep, node, MethodAssign, AssignRequest{Term: c.term, Replicas: replicas})
}

// Attach asks a node to open a volume and serve it as NBD on socket.
func (c *Client) Attach(ctx context.Context, node proto.MAC, v VolumeSpec, socket string) (VolumeStatus, error) {
	return call[VolumeStatus](ctx, c.ep, node, MethodAttach, AttachRequest{Term: c.term, Volume: v, Socket: socket})
}

// Detach asks a node to close a volume it has attached.
func (c *Client) Detach(ctx context.Context, node proto.MAC, volume string) (VolumeStatus, error) {
	return call[VolumeStatus](ctx, c.ep, node, MethodDetach, VolumeRequest{Term: c.term, Volume: volume})
}

// VolumeStatus asks a node how a volume it has attached stands.
func (c *Client) VolumeStatus(ctx context.Context, node proto.MAC, volume string) (VolumeStatus, error) {
	return call[VolumeStatus](ctx, c.ep, node, MethodVolumeStatus, VolumeRequest{Term: c.term, Volume: volume})
}

// Repair asks a node to resync the replica of v on stale.
func (c *Client) Repair(ctx context.Context, node proto.MAC, v VolumeSpec, stale string) (ResyncReport, error) {
	return call[ResyncReport](ctx, c.ep, node, MethodRepair, RepairRequest{Term: c.term, Volume: v, Node: stale})
}

// Fence asks a node to raise the epoch of its replicas of volume and to
// reserve them for allow.
func (c *Client) Fence(ctx context.Context, node proto.MAC, volume string, epoch uint64, allow []proto.MAC) (AssignReply, error) {
	return call[AssignReply](ctx, c.ep, node, MethodFence, FenceRequest{Term: c.term, Volume: volume, Epoch: epoch, Allow: allow})
}

// SetInSync asks the controller at mac to change a volume's in-sync set
// (node side).
func SetInSync(ctx context.Context, ep *proto.Endpoint, mac proto.MAC, req SetInSyncRequest) (VolumeSpec, error) {
	return call[VolumeSpec](ctx, ep, mac, MethodSetInSync, req)
}

// GetVolume asks the controller at mac for a volume (node side).
func GetVolume(ctx context.Context, ep *proto.Endpoint, mac proto.MAC, volume string) (VolumeSpec, error) {
	return call[VolumeSpec](ctx, ep, mac, MethodVolume, VolumeRequest{Volume: volume})
}
