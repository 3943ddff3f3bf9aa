// Package perfcrpc serves and calls mvstack's performance-counter commands
// on the control protocol: PERFC_DUMP, PERFC_GET and PERFC_RESET (seed 003
// §2.6.2), for a node's own counter set or one domain's child set.
//
// # Serving
//
// A node daemon makes its perfc.Set, opens its proto.Endpoint and calls
// [Register]; from then on the endpoint answers the three methods
// ([MethodDump], [MethodGet], [MethodReset]) from that set. The endpoint
// authenticates every frame before any handler runs, so a host without the
// cluster key can neither read nor reset counters: its frames are dropped
// and counted (proto.DropAuth, exported as proto.drops.auth), and it is
// told only that it was refused. Register also counts the commands it
// serves in the set (perfc.requests.dump, .get, .reset).
//
// [AttachStats] exports an endpoint's own protocol counters
// (proto.Endpoint.Stats: frames, drops by reason, retransmissions,
// messages, calls) into a set as counters that --perf-reset zeroes like any
// other, and [Instrument] wraps a handler so that the requests it serves
// are counted per method (proto.rpc.served.<method>) with their errors and
// latency.
//
// # Calling
//
// A [Client] sends perfc.Request values to a node and decodes the
// perfc.Dump it answers. Transport errors are the endpoint's (compare with
// errors.Is: proto.ErrPeerDead, proto.ErrUnauthenticated); a request the
// node could not answer is an [*Error] wrapping perfc.ErrNotFound (no such
// domain or metric) or perfc.ErrInvalid.
//
// # Wire
//
// The request payload is a perfc.Request in CBOR ({1: op, 2: domain,
// 3: query}); its op must match the method. The response is a perfc.Dump
// in CBOR. A domain or metric that does not exist is answered with a
// handler error (proto.CodeHandler), a request that does not decode or
// whose op does not match the method with proto.CodeBadRequest.
package perfcrpc
