// Package leader runs loops that only the raft leader may run (discovery,
// liveness, and later scheduling, failover and repair) and stops them the
// moment leadership is lost.
//
// [Run] watches a [Source] (the replica) and, every time this replica becomes
// leader, calls the loop with a context that carries the leader's raft term
// ([Term]) and is cancelled as soon as the Source reports that leadership is
// gone or the term changed. The loop must return promptly once its context
// is done; Run waits for it before starting it again.
package leader
