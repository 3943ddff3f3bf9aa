// Package liveness decides, on the raft leader, whether nodes are alive.
//
// Every replica feeds the heartbeats it receives to [Monitor.Heartbeat]; only
// the leader runs [Monitor.Run] (under leader.Run), so only the leader
// changes health. The rules:
//
//   - a node that sent no heartbeat for [Config.Tolerance] is suspected and
//     probed directly ([Prober]) up to [Config.ProbeAttempts] times, each
//     bounded by [Config.ProbeTimeout]; an answer clears the suspicion, no
//     answer puts the node in error (state.HealthError) with the reason;
//   - a node in error that sends a heartbeat goes to retry;
//   - a node in retry goes back to ok after [Config.RecoverHeartbeats]
//     heartbeats each within the tolerance of the previous one, or to error
//     again if heartbeats stop for the tolerance;
//   - offline nodes are not monitored;
//   - a new leader gives every node a full tolerance from the moment it took
//     over before suspecting it, so a leader change never fails a node.
//
// Heartbeats that carry monitoring figures are written to the replicated
// state at most once per [Config.MonitoringInterval] per node.
//
// Time comes from the time package, so tests run under testing/synctest.
package liveness
