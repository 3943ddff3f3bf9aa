// Package ethnodes is the controller's node-facing side over the control
// protocol (EtherType 0x88B5): a controller.NodeSource built on
// node/nodeclient's client and messages.
//
// # What each replica does
//
// Every controller replica opens its own endpoint on its management
// interface ([New]) and receives the heartbeats nodes send it
// (nodeclient.MethodHeartbeat, one-way); [Source.Reports] delivers them as
// Monitoring reports. Only the leader calls [Source.Discover] and
// [Source.Probe], always with its raft term:
//
//   - Discover broadcasts nodeclient.MethodDiscover with the term. Every
//     answer (a nodeclient.Summary) is a sign of life; a node that is new to
//     this replica, restarted (a new session epoch) or whose summary shows
//     other hardware is asked for its full inventory (node.info), which is
//     reported as a registration (Report.Inventory).
//   - Probe calls node.probe with the term. A node that stays silent
//     (proto.ErrPeerDead, or the caller's deadline) or refuses the term
//     (nodeclient.ErrStaleTerm: a newer leader has talked to it) fails the
//     probe; an answer is reported as a heartbeat.
//
// Nodes remember the highest term they have seen and refuse commands that
// carry an older one, so a deposed leader cannot command them. A node sends
// its heartbeats to the controller that most recently discovered or probed
// it with a current term, so a new leader's first discovery, run the moment
// it gains leadership, moves every node's heartbeats to it.
//
// # Conversion
//
// [Inventory] and [Monitoring] turn the node's own types
// (node/inventory.Inventory, nodeclient.Heartbeat) into the controller's
// replicated ones (controller/state), in one place: units, CPU features,
// the NUMA layout rebuilt from the cores.
package ethnodes
