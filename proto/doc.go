// Package proto implements mvstack's ground floor: Ethernet addresses, the
// Link abstraction over which every mvstack protocol travels, the
// AF_PACKET link, and the reliable, authenticated control protocol
// (EtherType 0x88B5) with its RPC layer.
//
// # Layers
//
// A [Link] moves whole Ethernet payloads of one EtherType to and from
// hardware addresses. The AF_PACKET link (Linux) and the in-memory switch in
// package proto/linktest both implement it, so everything above runs the
// same code in unit tests and on real interfaces.
//
// Above a Link, an [Endpoint] runs the control protocol: per-peer sessions
// with sequence numbers, cumulative and selective acknowledgements, a
// receive window, retransmission timers from an RFC 6298 estimator,
// fragmentation of large messages, keepalives and peer-restart detection.
// Every frame is sealed with the cluster key. On top sit request/response
// calls, one-way messages and broadcast discovery.
//
// The frame layout and the numbers are described in docs/protocol.md.
package proto
