package perfcrpc

import (
	"context"
	"time"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/proto"
)

// Instrument returns h wrapped so that every request it serves is counted
// in set: proto.rpc.served.<m> (requests served, counted before h runs),
// proto.rpc.served.<m>.errors (those h answered with an error) and
// proto.rpc.served.<m>.latency (h's duration), where <m> is [MethodSegment]
// of method. The metrics are registered now, so the wrapped handler costs
// two counter increments and one histogram observation per request.
//
//	ep.Handle(nodeclient.MethodCreate, perfcrpc.Instrument(set, nodeclient.MethodCreate, h))
func Instrument(set *perfc.Set, method string, h proto.Handler) proto.Handler {
	m := MethodSegment(method)
	served := set.Counter("proto.rpc.served."+m, "calls", "RPC requests of "+method+" served")
	errs := set.Counter("proto.rpc.served."+m+".errors", "calls", "RPC requests of "+method+" answered with an error")
	lat := set.Histogram("proto.rpc.served."+m+".latency", "ns", "Time to serve an RPC request of "+method, nil)
	return func(ctx context.Context, r *proto.Request) ([]byte, error) {
		served.Inc()
		start := time.Now()
		out, err := h(ctx, r)
		lat.ObserveSince(start)
		if err != nil {
			errs.Inc()
		}
		return out, err
	}
}

// Ping is the endpoint's own ping handler (proto.MethodPing: answer the
// payload), for wrapping with Instrument:
//
//	ep.Handle(proto.MethodPing, perfcrpc.Instrument(set, proto.MethodPing, perfcrpc.Ping))
func Ping(_ context.Context, r *proto.Request) ([]byte, error) { return r.Payload, nil }

// MethodSegment turns a method name into a metric name segment: lower case,
// with every character outside [a-z0-9_] made '_', and an 'm' in front of
// one that does not start with a letter. "node.identify" → "node_identify".
func MethodSegment(method string) string {
	b := []byte(method)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] < 'a' || b[0] > 'z' {
		b = append([]byte{'m'}, b...)
	}
	return string(b)
}
