// Package volumes is the controller's side of the storage data path: it
// tells nodes which volume replicas they serve, attaches volumes to the
// nodes that use them, schedules repairs of stale replicas and fences
// writers. Its [Manager] lives on every replica; its loop ([Manager.Run])
// runs on the leader only and stops the moment leadership is lost.
//
// # Assignments
//
// Every registered node that is not offline or in error is sent
// (nodeclient.MethodAssign) the whole list of replicas it holds: volume,
// disk name, shelf.slot, size, thick, the volume's epoch and whether the
// replica is in sync. The loop compares each node's list with the one it
// last sent successfully every Config.PushInterval and sends it again when
// it changed (a volume created, resized or deleted, an epoch or in-sync
// change), when the node restarted (a new control-protocol session epoch,
// see [Manager.Heard]), and to every node each Config.HealInterval. A
// failed push is logged and retried with a doubling backoff. An in-sync
// replica of an attached volume hears of an epoch raise only
// Config.EpochGrace after it: the writer registers the new epoch on it
// first (an export raised under the writer's requests in flight would
// refuse them and fence the writer).
//
// # Requests from nodes
//
// [Manager.SetInSync] and [Manager.Volume] answer nodeclient.MethodSetInSync
// and nodeclient.MethodVolume. SetInSync is a compare-and-set on the epoch
// the node saw: a stale epoch is refused with nodeclient.ErrStaleEpoch. Only
// the leader applies it; a follower refuses it with an error the node
// retries at the leader.
//
// # Attach, detach, fence
//
// A volume is attached to at most one node (state.AttachVolume). Attaching
// sets the replicas' AoE reserve list to the writer; attaching a volume
// that is attached elsewhere needs force and fences the old writer first.
// Fencing raises the epoch in raft first (state.SetVolumeEpoch), clears the
// fenced node's attachment, then sends nodeclient.MethodFence to every node
// holding a replica with the new epoch and a reserve list naming the new
// writer, or this controller when there is none. The loop fences the
// volumes of a node liveness put in error. A fence of a node other than
// an attached volume's writer is refused: the raised epoch would stop the
// writer. [Manager.Reserve] only sets the reserve list (the db_metadata
// backup makes this controller the writer of its volume).
//
// # Repairs
//
// A replica outside the in-sync set whose node is registered and alive is
// repaired per its datastore's trigger_repair: at each pass every
// periodic_repair_sec, or when an operator asks ([Manager.Repair]); at most
// num_of_repairs repairs run at once per datastore, the rest wait in a
// queue (with, for a manual repair, those whose node is coming back). A repair asks the node the volume is attached to (it has the dirty
// bitmap), otherwise a node holding an in-sync replica (a full resync), to
// copy (nodeclient.MethodRepair); the node puts the replica back with
// SetInSync, and the controller records its report (state.RecordRepair).
package volumes
