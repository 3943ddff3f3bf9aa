// Package dbbackup copies the controller's raft snapshots onto a volume of
// a db_metadata datastore, and reads them back for a restore (seed 003
// §3.5: "Enable a vdisk for backing up the DBs").
//
// # Which volume
//
// The first volume, in id order, of a datastore created with db_metadata.
// An operator makes one (osd create_datastore --db_metadata …; osd
// create_volume --datastore=… --size=1G); until then there is nothing to
// copy to. The volume should not be attached to a node: the controller is
// its only writer.
//
// # When
//
// [Backup.Run] is a leader-only loop: every Config.Interval it takes the
// replica's newest raft snapshot and, when it is newer than the last one
// copied, writes it to the volume through Config.Open (in mvcontroller, the
// replicated volume client of node/volume over an AoE initiator on the
// management interface), after reserving the replicas for this controller.
//
// # On the volume
//
// The volume holds two slots, at offset 0 and at half its size; each copy
// goes to the slot not holding the newest valid image, payload first and
// header last, so a copy cut short leaves the previous one readable. A
// slot is a 512-byte [Header] (magic "MVDBSNAP", version, raft index and
// term, payload length, time, writer, SHA-256 of the payload, CRC-32C of
// the header) followed by the snapshot bytes (replica.LatestSnapshot's
// format). [ReadLatest] returns the newest slot whose header and payload
// check out; replica.InstallSnapshot turns it into a data dir
// (mvcontroller restore --from-volume).
package dbbackup
