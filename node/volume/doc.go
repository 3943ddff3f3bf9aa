// Package volume implements the replicated volume client: a block device
// whose every write goes to each in-sync replica of a volume over AoE, and
// whose reads come from one of them. It serves as an aoe/nbd Device, so
// QEMU and the NBD tools reach a replicated volume.
//
// # Writes
//
// WriteAt sends the write to every replica in the in-sync set in parallel
// and returns only after every one of them answered. A replica whose write
// fails (an error, or no answer within Config.IOTimeout) leaves the set at
// once; the write still succeeds when at least one replica took it, so a
// write acknowledged to the caller is on every replica still in sync.
// Flush flushes every in-sync replica the same way.
//
// # Failure
//
// A replica leaves the in-sync set only once: Config.OnReplicaFailed is
// called for it a single time, before the I/O that saw the failure returns
// (so it may tell the controller, which raises the volume's epoch). The
// volume never puts a replica back by itself: that is a resync's job. When
// no replica is left, every read, write and flush fails with ErrNoReplica
// (the NBD front end answers EIO).
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
// From the moment the first replica leaves the set, every acknowledged
// write marks the blocks it touched (Config.BlockSize, 64 KiB by default) in
// a bitmap, with the time of the block's last write. Dirty lists them: a
// stale replica differs from the in-sync ones only in those blocks, so a
// resync copies only them.
//
// # Addresses
//
// One initiator merges every target that answers a shelf.slot into paths of
// one device (AoE multipath), so the replicas of a volume opened through one
// initiator need distinct shelf.slot addresses; Replica.MAC makes Open check
// that only the expected target answered. Replica.Device lets a caller
// supply an already opened device instead.
package volume
