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
// docs/node-daemon.md describes the configuration, methods and messages.
package agent
