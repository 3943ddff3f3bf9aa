// Package replica runs one controller replica: a hashicorp/raft node whose
// FSM is the controller state (package state), stored in raft-boltdb (or in
// memory for tests), with TCP transport between replicas.
//
// # Writes
//
// [Replica.Apply] proposes a command and waits for it to be committed and
// applied on this replica. Only the leader may propose; a follower returns
// [ErrNotLeader], and the REST layer forwards the request to the leader's API
// address ([Replica.LeaderAPI]). When the leader cannot reach a quorum the
// write fails with [ErrNoQuorum]; a command is one log entry, so a write is
// either wholly applied or not at all.
//
// # Reads
//
// [Replica.Read] runs a function under the FSM's read lock. Reads are served
// locally and may lag the leader by the replication delay.
//
// # Membership
//
// A cluster is bootstrapped with a fixed voter set ([Config.Bootstrap]). A new
// replica joins as a non-voter ([Replica.AddNonvoter]) and is promoted
// ([Replica.Promote]) once it has caught up; [Replica.RemoveMember] removes
// one. The leader records each replica's API address in the state
// ([state.SetReplica]) so that followers know where to forward.
//
// # Leadership
//
// Replica implements [leader.Source]: loops started with [leader.Run] stop
// when the raft state leaves Leader (including a leader that lost its lease
// in a minority partition).
package replica
