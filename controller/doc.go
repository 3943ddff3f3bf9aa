// Package controller wires one mvstack controller replica together: the raft
// replica (package replica), the REST API (package rest), liveness (package
// liveness) and discovery, and the node-facing side behind [NodeSource].
//
// # The node-facing side
//
// Everything the controller hears from nodes or says to them goes through a
// [NodeSource]: controller/ethnodes implements it over the Ethernet control
// protocol in production (with the node side's client package), and controller/nodetest implements it in
// memory for tests. Every replica consumes [NodeSource.Reports] (so a new
// leader already knows who was heard from); only the leader calls
// [NodeSource.Discover] and [NodeSource.Probe], always with its raft term, and
// nodes refuse commands that carry a term older than one they have seen.
//
// # Leader-only loops
//
// Discovery (periodic broadcast, and turning registrations into RegisterNode
// commands when a node is new or its hardware changed), liveness, the
// storage loop (package volumes: assignment pushes, fencing of dead
// writers, repairs; only when the NodeSource also implements volumes.Nodes),
// the db_metadata backups (package dbbackup, when Config.DBBackup.Open is
// set) and the replica bookkeeping run under leader.Run and stop the moment
// leadership is lost.
//
// # Layout
//
//	controller/state       replicated state, typed versioned commands, host-state rules
//	controller/replica     hashicorp/raft + raft-boltdb, membership, forwarding address
//	controller/leader      leader.Run: loops that stop when leadership is lost
//	controller/liveness    heartbeats, suspicion, probes, error/retry
//	controller/rest        REST API (api/openapi.yaml)
//	controller/storage     disk capacity and replica placement for datastores and volumes
//	controller/volumes     the data path's controller side: assignments, attach, repairs, fencing
//	controller/dbbackup    raft snapshots copied to the db_metadata volume, read back for a restore
//	controller/ethnodes    the NodeSource over the control protocol (node/nodeclient)
//	controller/nodetest    in-memory NodeSource for tests
//	controller/replicatest in-memory replica clusters for tests
package controller
