package perfcrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/proto"
)

// The control-protocol methods of the PERFC commands.
const (
	MethodDump  = "perfc.dump"  // PERFC_DUMP: every counter of the node or a domain
	MethodGet   = "perfc.get"   // PERFC_GET: one counter and those below its name
	MethodReset = "perfc.reset" // PERFC_RESET: zero counters, answer what they held
)

// Method returns the method that carries op, or "" for an unknown op.
func Method(op perfc.Op) string {
	switch op {
	case perfc.OpDump:
		return MethodDump
	case perfc.OpGet:
		return MethodGet
	case perfc.OpReset:
		return MethodReset
	}
	return ""
}

// Register makes ep answer PERFC_DUMP, PERFC_GET and PERFC_RESET from set,
// the node's root set (domains are its child sets, "dnN"). It registers the
// counters perfc.requests.dump, .get and .reset in set, each counted when a
// request of that op has decoded and before it is answered, so a dump
// includes itself and a reset zeroes itself. Call it once, before the
// endpoint is announced to the cluster.
func Register(ep *proto.Endpoint, set *perfc.Set) {
	for _, op := range []perfc.Op{perfc.OpDump, perfc.OpGet, perfc.OpReset} {
		served := set.Counter("perfc.requests."+op.String(), "requests", "PERFC_"+upper(op)+" requests served")
		ep.Handle(Method(op), handler(set, op, served))
	}
}

func upper(op perfc.Op) string {
	b := []byte(op.String())
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func handler(set *perfc.Set, op perfc.Op, served *perfc.Counter) proto.Handler {
	method := Method(op)
	return func(ctx context.Context, r *proto.Request) ([]byte, error) {
		var req perfc.Request
		if err := req.UnmarshalBinary(r.Payload); err != nil {
			return nil, proto.BadRequest(fmt.Errorf("%s: %w", method, err))
		}
		if req.Op != op {
			return nil, proto.BadRequest(fmt.Errorf("%s: request carries op %s, want %s", method, req.Op, op))
		}
		served.Inc()
		d, err := perfc.Handle(set, req)
		if err != nil {
			if errors.Is(err, perfc.ErrInvalid) {
				return nil, proto.BadRequest(err)
			}
			return nil, err
		}
		return d.MarshalBinary()
	}
}
