package proto

import (
	"context"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Call sends a request for method to the peer at mac and waits for the
// response payload. It fails with an *OpError wrapping ErrPeerDead when
// the peer stays silent for the tolerance, ErrPeerRestarted when the peer
// restarts meanwhile, the context's error at its deadline, or a
// *RemoteError when the handler failed. A request that arrives twice runs
// once. The payload is sent without a copy and is not used once Call
// returns.
func (e *Endpoint) Call(ctx context.Context, mac MAC, method string, payload []byte) ([]byte, error) {
	m, err := e.call(ctx, mac, method, payload)
	if err != nil {
		e.stats.callsFailed.Add(1)
		return nil, &OpError{Op: "call", Peer: mac, Method: method, Err: err}
	}
	e.stats.callsOK.Add(1)
	if m.kind == kindError {
		return nil, &RemoteError{Code: m.code, Message: string(m.payload)}
	}
	return m.payload, nil
}

func (e *Endpoint) call(ctx context.Context, mac MAC, method string, payload []byte) (message, error) {
	if err := e.checkSend(mac, method, msgHeaderLen+len(method)+len(payload)); err != nil {
		return message{}, err
	}
	p, err := e.peer(mac)
	if err != nil {
		return message{}, err
	}
	id := e.callID.Add(1)
	c := &call{done: make(chan callResult, 1)}
	req := message{kind: kindRequest, id: id, method: method, payload: payload}
	p.mu.Lock()
	p.calls[id] = c
	p.mu.Unlock()
	om := newOutMsg(req)
	p.enqueue(om)
	select {
	case r := <-c.done:
		// A response normally acknowledges the whole request (its ack is
		// taken before its data), so payload is no longer read. Not so
		// when the peer refused a request over its size limit after the
		// first segment, or the stream failed: detach what may still go.
		if !om.allAcked.Load() {
			p.mu.Lock()
			om.detach()
			p.mu.Unlock()
		}
		return r.m, r.err
	case <-ctx.Done():
		p.mu.Lock()
		delete(p.calls, id)
		om.detach()
		p.mu.Unlock()
		return message{}, ctx.Err()
	}
}

// Send delivers a one-way message to the peer's handler for method and
// returns once the peer has acknowledged all of it. No response comes back.
// The payload is sent without a copy and is not used once Send returns.
func (e *Endpoint) Send(ctx context.Context, mac MAC, method string, payload []byte) error {
	opErr := func(err error) error { return &OpError{Op: "send", Peer: mac, Method: method, Err: err} }
	if err := e.checkSend(mac, method, msgHeaderLen+len(method)+len(payload)); err != nil {
		return opErr(err)
	}
	p, err := e.peer(mac)
	if err != nil {
		return opErr(err)
	}
	m := message{kind: kindOneway, method: method, payload: payload}
	om := newOutMsg(m)
	om.acked = make(chan error, 1)
	p.enqueue(om)
	select {
	case err := <-om.acked:
		if err != nil {
			return opErr(err) // the failed stream let go of the message
		}
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		om.detach()
		p.mu.Unlock()
		return opErr(ctx.Err())
	}
}

func (e *Endpoint) checkSend(mac MAC, method string, size int) error {
	switch {
	case method == "" || len(method) > MaxMethodLen:
		return fmt.Errorf("method name %q must be 1 to %d bytes", method, MaxMethodLen)
	case mac.IsMulticast() || mac.IsZero():
		return fmt.Errorf("%s is not a unicast address: use Discover to reach every node", mac)
	case mac == e.addr:
		return fmt.Errorf("%s is this endpoint's own address", mac)
	case size > e.cfg.MaxMessage:
		return fmt.Errorf("%w: %d bytes is over the limit of %d", ErrMessageTooLarge, size, e.cfg.MaxMessage)
	}
	return nil
}

// Typed calls: requests and responses encoded with CBOR (RFC 8949), the
// control protocol's message encoding.

// CallTyped calls method with req encoded as CBOR and decodes the
// response into a Resp.
func CallTyped[Resp, Req any](ctx context.Context, e *Endpoint, mac MAC, method string, req Req) (Resp, error) {
	var resp Resp
	b, err := MarshalCBOR(req)
	if err != nil {
		return resp, &OpError{Op: "call", Peer: mac, Method: method, Err: fmt.Errorf("encoding request: %w", err)}
	}
	out, err := e.Call(ctx, mac, method, b)
	if err != nil {
		return resp, err
	}
	if err := cbor.Unmarshal(out, &resp); err != nil {
		return resp, &OpError{Op: "call", Peer: mac, Method: method, Err: fmt.Errorf("decoding response: %w", err)}
	}
	return resp, nil
}

// HandleTyped registers fn for method: the request is decoded from CBOR
// (a request that does not decode is answered with CodeBadRequest) and the
// response encoded.
func HandleTyped[Req, Resp any](e *Endpoint, method string, fn func(ctx context.Context, from MAC, req Req) (Resp, error)) {
	e.Handle(method, func(ctx context.Context, r *Request) ([]byte, error) {
		var req Req
		if err := cbor.Unmarshal(r.Payload, &req); err != nil {
			return nil, BadRequest(fmt.Errorf("decoding %s request: %w", method, err))
		}
		resp, err := fn(ctx, r.From, req)
		if err != nil {
			return nil, err
		}
		return MarshalCBOR(resp)
	})
}

// DiscoverTyped broadcasts a CBOR request and decodes every answer. Answers
// that fail to decode carry the error in TypedReply.Err.
func DiscoverTyped[Resp, Req any](ctx context.Context, e *Endpoint, method string, req Req, window time.Duration) ([]TypedReply[Resp], error) {
	b, err := MarshalCBOR(req)
	if err != nil {
		return nil, &OpError{Op: "discover", Method: method, Err: fmt.Errorf("encoding request: %w", err)}
	}
	replies, err := e.Discover(ctx, method, b, window)
	out := make([]TypedReply[Resp], 0, len(replies))
	for _, r := range replies {
		tr := TypedReply[Resp]{From: r.From, Err: r.Err}
		if tr.Err == nil {
			if derr := cbor.Unmarshal(r.Payload, &tr.Value); derr != nil {
				tr.Err = fmt.Errorf("decoding answer from %s: %w", r.From, derr)
			}
		}
		out = append(out, tr)
	}
	return out, err
}

// TypedReply is one decoded answer to a discovery.
type TypedReply[T any] struct {
	From  MAC
	Value T
	Err   error
}
