// Package agent is the node daemon (mvnode): it describes the node's
// hardware (package inventory), runs domains through a driver (package
// domain/sim, or QEMU), answers the control protocol's node methods
// (package nodeclient has the wire types), sends heartbeats to its
// controller, reports crashed, wild and zombie domains, and serves its
// performance counters (package perfc) on /metrics.
//
// # Life
//
// [New] builds an Agent from a [Config]: it opens the control protocol on
// the management interface (or the Link given), takes the node id from
// that interface's MAC, builds the inventory (probed, or declared for a
// simulated node), the ledger and the driver, registers every handler and
// starts /metrics; from then on the node answers. [Agent.Run] adopts the
// node's own guests left by an earlier run, sends heartbeats and rescans
// for wild guests until its context ends, then shuts down: simulated domains are dropped with the process, QEMU guests
// are left running and are adopted again as the node's own at the next
// start (the state directory remembers which domains the node should run).
//
// # Rules the node enforces
//
//   - VCPU = SOCKETS × CORES × THREADS, memory and CPUs within what the
//     node has (errors carry the numbers), one domain per id.
//   - Terms: a mutating request with a term below the highest the node has
//     seen is refused with nodeclient.ErrStaleTerm (term 0, an operator's
//     mvctl, is exempt).
//   - Crashes (a domain's process dying unasked) are logged, kept in the
//     event list and sent to the controller at once in a heartbeat with
//     Crashed set.
//   - Wild: guests running that the node did not start. Zombies: domains
//     the node should run (started and not stopped on request) that are
//     not running.
//
// # Storage
//
// The node always runs an AoE target and an AoE initiator on its
// interface (storage.go, volumes.go). The target serves the --export disks
// and the volume replicas the controller assigns (volume.assign): each a
// volume of a thin pool (node/pool) on one of the node's drives, exported
// at its shelf.slot with the volume's epoch; a blank drive is formatted on
// first use, one holding other data is refused. A replica left out of a
// non-empty assignment is deleted; an empty one only stops the exports.
// volume.fence raises a replica's epoch and sets its reserve list.
// volume.attach opens a replicated volume client (node/volume) — remote
// replicas through the initiator, the node's own in its pool under the
// export's fence — and serves it as NBD on a unix socket; volume.repair
// resyncs a stale replica. Replicas are exported again after a restart
// from the pools and STATE_DIR/replicas.json.
//
// docs/node-daemon.md describes the configuration, methods and messages.
package agent
