package perfcrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/proto"
)

// Client sends PERFC commands over an endpoint. It is safe for concurrent
// use; it does not own the endpoint.
type Client struct {
	ep *proto.Endpoint
}

// NewClient returns a client that calls through ep.
func NewClient(ep *proto.Endpoint) *Client { return &Client{ep: ep} }

// Error is a PERFC request a node answered with an error. It unwraps to
// perfc.ErrNotFound (no such domain or metric) or perfc.ErrInvalid (the
// node could not accept the request).
type Error struct {
	Node    proto.MAC
	Request perfc.Request
	Kind    error  // perfc.ErrNotFound or perfc.ErrInvalid
	Message string // the node's words
}

func (e *Error) Error() string {
	return fmt.Sprintf("perfcrpc: node %s (%s) answered %s: %s", e.Node.NodeID(), e.Node, e.Request.Op, e.Message)
}

func (e *Error) Unwrap() error { return e.Kind }

// Do sends req to the node at node and returns the dump it answered.
// Errors of the control protocol come back as the endpoint returned them
// (errors.Is: proto.ErrPeerDead, proto.ErrUnauthenticated,
// context.DeadlineExceeded); an error the node answered is an *Error.
func (c *Client) Do(ctx context.Context, node proto.MAC, req perfc.Request) (perfc.Dump, error) {
	payload, err := req.MarshalBinary()
	if err != nil {
		return perfc.Dump{}, err
	}
	out, err := c.ep.Call(ctx, node, Method(req.Op), payload)
	if err != nil {
		var re *proto.RemoteError
		if errors.As(err, &re) {
			switch re.Code {
			case proto.CodeHandler:
				return perfc.Dump{}, &Error{Node: node, Request: req, Kind: perfc.ErrNotFound, Message: re.Message}
			case proto.CodeBadRequest:
				return perfc.Dump{}, &Error{Node: node, Request: req, Kind: perfc.ErrInvalid, Message: re.Message}
			}
		}
		return perfc.Dump{}, err
	}
	var d perfc.Dump
	if err := d.UnmarshalBinary(out); err != nil {
		return perfc.Dump{}, fmt.Errorf("perfcrpc: decoding the %s answer of node %s: %w", req.Op, node, err)
	}
	return d, nil
}

// Dump returns every metric of the node (with its domains) or, when domain
// is not "", of that domain ("dn5").
func (c *Client) Dump(ctx context.Context, node proto.MAC, domain string) (perfc.Dump, error) {
	return c.Do(ctx, node, perfc.Request{Op: perfc.OpDump, Domain: domain})
}

// Get returns the metric called name and those below it ("proto.drops"
// returns every drop counter), of the node or of a domain.
func (c *Client) Get(ctx context.Context, node proto.MAC, domain, name string) (perfc.Dump, error) {
	return c.Do(ctx, node, perfc.Request{Op: perfc.OpGet, Domain: domain, Query: perfc.Query{Prefix: name}})
}

// Reset zeroes the counters and histograms of the node (with its domains)
// or of a domain whose names lie under prefix ("" for all), and returns
// what they held.
func (c *Client) Reset(ctx context.Context, node proto.MAC, domain, prefix string) (perfc.Dump, error) {
	return c.Do(ctx, node, perfc.Request{Op: perfc.OpReset, Domain: domain, Query: perfc.Query{Prefix: prefix}})
}
