// Package volume implements the replicated volume client: a block device
// whose every write goes to each in-sync replica of a volume over AoE, and
// whose reads come from one of them. It serves as an aoe/nbd Device, so
// QEMU and the NBD tools reach a replicated volume.
//
// # Writes
//
// WriteAt sends the write to every replica in the in-sync set in parallel
// and returns only after every one of them answered. A write acknowledged
// to the caller is on every replica the controller lists in sync.
// Flush flushes every in-sync replica the same way.
//
// # Epochs and fencing
//
// Every volume has an epoch (Config.Epoch, from the controller). Open
// registers the client at it on every in-sync replica (Epocher, the AoE
// vendor command of aoe/target); a replica serves only clients registered
// at its current epoch. A replica that refuses the client for an older
// epoch (initiator.ErrStaleEpoch), or for an AoE reservation that leaves
// it out, means a newer owner exists: the volume is fenced, that I/O and
// every later one fail with ErrFenced (NBD: EIO) and nothing is retried. A
// replica that forgot the registration (its target restarted) is
// registered again and the I/O retried once.
//
// # Failure
//
// A replica whose write or flush fails (an error, or no answer within
// Config.IOTimeout) stops receiving writes at once, and the I/O does not
// return until the controller (Config.Controller) agreed to drop it:
//
//  1. SetInSync with the remaining replicas at the epoch the client saw;
//     the controller raises the epoch by one.
//  2. On nodeclient.ErrStaleEpoch the client reads the volume again: if the
//     controller already has the set it asked for (an answer lost on the
//     way) it takes the new epoch; if the controller dropped more replicas
//     the client follows; if the controller still lists a replica the
//     client no longer writes to, the epoch moved without it — a fence —
//     and the client stops (ErrFenced).
//  3. The new epoch is registered on every replica that stays (so the one
//     that left, and any client still at the old epoch, are refused from
//     then on); only then is the write acknowledged.
//
// When the controller cannot be reached within IOTimeout the write fails
// with ErrController (NBD: EIO), and so does every later write until the
// controller agrees: acknowledging a write the controller does not know
// the stale replica missed would let a later reader read it there. Without
// a Controller (tests, single-node tools) a failing replica just leaves.
// OnReplicaFailed is called once for each replica that leaves. When no
// replica is left, I/O fails with ErrNoReplica.
//
// A replica out of space (a thin pool, error matching syscall.ENOSPC) did
// not fail: the write returns the ENOSPC error to the writer (NBD: ENOSPC)
// and the replica stays in the set. When other replicas took that write,
// the range is copied back to them from the full one (a pool out of chunks
// writes nothing), so the replicas never differ after a failed write.
//
// # Reads
//
// A read goes to the local replica when it is in sync, otherwise to the
// in-sync replicas in round robin. A replica that fails a read is skipped
// for the next in-sync one; a failed read does not take a replica out of
// the set, since it did not miss a write.
//
// # The dirty bitmap
//
// From the moment the first replica leaves the set, every write marks the
// blocks it touched (Config.BlockSize, 64 KiB by default) in a bitmap,
// with the time of the block's last write. Dirty lists them: a replica
// that left while this client kept the bitmap differs from the in-sync
// ones only in those blocks. The bitmap lives in memory: a replica that
// left before the volume was opened (Replica.Stale) has none.
//
// # Resync
//
// Resync brings a stale replica back: from its start the replica takes
// every new write, the dirty blocks (every block when it has no bitmap:
// a full resync, which skips blocks zero on both sides so thin replicas
// stay thin) are copied from an in-sync replica under a per-block lock
// against concurrent writes, the controller is asked to add it back at the
// epoch the client saw, the new epoch is registered on every replica and
// the bitmap is cleared once every replica is in sync. The Report says
// what moved.
//
// # Addresses
//
// One initiator merges every target that answers a shelf.slot into paths of
// one device (AoE multipath), so the replicas of a volume opened through one
// initiator need distinct shelf.slot addresses; Replica.MAC makes Open check
// that only the expected target answered. Replica.Device lets a caller
// supply an already opened device instead (the node's own replica, which it
// cannot reach over its own interface).
package volume
