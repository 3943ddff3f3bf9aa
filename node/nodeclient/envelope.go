package nodeclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/mvstack/mvstack/proto"
)

// envelope is every response on the wire: the value, or the node's error.
type envelope[T any] struct {
	Err   *Error `cbor:"1,keyasint,omitempty"`
	Value T      `cbor:"2,keyasint,omitempty"`
}

// Handle registers fn for method on ep (node side): the request is decoded
// from CBOR (one that does not decode is answered as a bad request, so the
// caller sees proto's CodeBadRequest), and fn's value or error goes back
// in the envelope [Client] reads.
func Handle[Req, Resp any](ep *proto.Endpoint, method string, fn func(ctx context.Context, from proto.MAC, req Req) (Resp, error)) {
	ep.Handle(method, func(ctx context.Context, r *proto.Request) ([]byte, error) {
		var req Req
		if err := cbor.Unmarshal(r.Payload, &req); err != nil {
			return nil, proto.BadRequest(fmt.Errorf("decoding %s request: %w", method, err))
		}
		resp, err := fn(ctx, r.From, req)
		var bad badRequest
		if errors.As(err, &bad) {
			return nil, proto.BadRequest(bad.err)
		}
		if err != nil {
			return proto.MarshalCBOR(envelope[Resp]{Err: ErrorOf(err)})
		}
		return proto.MarshalCBOR(envelope[Resp]{Value: resp})
	})
}

// BadRequest marks a request that makes no sense (an unknown operation
// number, say): Handle answers it as proto's bad request instead of a
// node's refusal.
func BadRequest(err error) error { return badRequest{err} }

type badRequest struct{ err error }

func (b badRequest) Error() string { return b.err.Error() }
func (b badRequest) Unwrap() error { return b.err }

// call makes one typed call and opens the envelope.
func call[Resp, Req any](ctx context.Context, ep *proto.Endpoint, mac proto.MAC, method string, req Req) (Resp, error) {
	env, err := proto.CallTyped[envelope[Resp]](ctx, ep, mac, method, req)
	if err != nil {
		var zero Resp
		return zero, err
	}
	if env.Err != nil {
		return env.Value, env.Err
	}
	return env.Value, nil
}
