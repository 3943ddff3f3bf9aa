// Package nodeclient is the node daemon's wire interface: the method names
// mvnode answers on the control protocol (EtherType 0x88B5), their request
// and response types, the heartbeat a node sends its controller, and a
// typed [Client] over a *proto.Endpoint. The controller and mvctl reach
// nodes through this package only, never through the daemon's internals.
//
// # Encoding
//
// Requests and responses are CBOR with integer keys. Every response is an
// envelope holding either the value or a [Error]: a code, the message the
// node wrote (with the numbers a user needs), and for a refused term the
// node's highest term. [Client] turns the envelope back into a value or
// an *Error that errors.Is matches against the node/domain sentinels
// (domain.ErrExists, domain.ErrTopology, domain.ErrNoMemory, …) and
// [ErrStaleTerm].
//
// # Terms
//
// Every request that changes a node (create, life-cycle operations,
// pinning, import) carries the sender's raft term. A node remembers the
// highest term it has seen and refuses a lower one with [ErrStaleTerm], so
// a deposed controller leader can no longer command it. Term 0 is the
// operator's own channel (mvctl): it is neither refused nor remembered.
//
// A node sends its heartbeats (MethodHeartbeat) to the controller that most
// recently sent it a discovery or a probe with a current term (not 0, not
// below the highest it has seen), at first to the one it was configured
// with; so a new leader's first discovery moves every node's heartbeats to
// it, and a deposed leader's cannot take them back.
//
// # Methods
//
// See the Method constants and docs/node-daemon.md for each request and
// answer.
package nodeclient
