// Package storage decides where a volume's replicas go and how much room a
// disk has left. It is pure and deterministic (no clock, no randomness, no
// map order), so the raft FSM in controller/state calls it while applying a
// command and every replica reaches the same placement.
//
// # Capacity
//
// A disk of SizeMB with a datastore overcommit factor oc (≥ 1) accepts a new
// replica of s MB when
//
//	thick + thin + s ≤ floor(SizeMB × oc)   (everything provisioned)
//	thick + s        ≤ SizeMB               (only for a thick replica: preallocated)
//
// where thick and thin are the sizes of the thick and thin replicas already on
// the disk. A thin replica is counted at its full provisioned size against the
// overcommitted limit; a thick one is counted in full against both.
//
// # Placement
//
// [Place] puts the replicas of one volume on usable disks on distinct nodes,
// and on distinct fault-tolerance units ([FTUnit]: blade, chassis, rack) when
// the policy asks. It picks greedily the disk with the most free room, then
// the next on another node and unit, ties broken by disk id. For one or two
// replicas the greedy choice places a volume whenever any placement exists,
// and [MaxSize] (the same walk) is the largest volume that would fit now.
package storage
