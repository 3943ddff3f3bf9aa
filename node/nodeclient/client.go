package nodeclient

import (
	"context"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/proto"
)

// Client calls nodes over a control-protocol endpoint. It is a small value
// and safe for concurrent use (the endpoint is). Errors are the
// endpoint's (*proto.OpError: proto.ErrPeerDead, proto.ErrPeerRestarted,
// context deadlines, *proto.RemoteError) or the node's refusal, an *Error.
type Client struct {
	ep   *proto.Endpoint
	term uint64
}

// New returns a client that sends term 0 (an operator's commands).
func New(ep *proto.Endpoint) *Client { return &Client{ep: ep} }

// WithTerm returns a client whose mutating requests carry term (the
// controller leader's raft term).
func (c *Client) WithTerm(term uint64) *Client { return &Client{ep: c.ep, term: term} }

// Endpoint returns the endpoint the client calls through.
func (c *Client) Endpoint() *proto.Endpoint { return c.ep }

// Info returns the node's inventory, allocation, wild and zombie domains.
func (c *Client) Info(ctx context.Context, node proto.MAC) (NodeInfo, error) {
	return call[NodeInfo](ctx, c.ep, node, MethodInfo, InfoRequest{})
}

// Probe asks the node whether it is alive; it answers with a heartbeat.
func (c *Client) Probe(ctx context.Context, node proto.MAC) (Heartbeat, error) {
	return call[Heartbeat](ctx, c.ep, node, MethodProbe, ProbeRequest{Term: c.term})
}

// List returns the node's domains by id.
func (c *Client) List(ctx context.Context, node proto.MAC) ([]domain.Info, error) {
	l, err := call[DomainList](ctx, c.ep, node, MethodList, ListRequest{})
	return l.Domains, err
}

// Create defines a domain and, with start, starts it.
func (c *Client) Create(ctx context.Context, node proto.MAC, spec domain.Spec, start bool) (domain.Info, error) {
	return call[domain.Info](ctx, c.ep, node, MethodCreate, CreateRequest{Term: c.term, Spec: spec, Start: start})
}

// Do applies a life-cycle operation to domain id.
func (c *Client) Do(ctx context.Context, node proto.MAC, id int, op domain.Op) (domain.Info, error) {
	return call[domain.Info](ctx, c.ep, node, MethodOp, OpRequest{Term: c.term, ID: id, Op: op})
}

// Console returns domain id's recent console output.
func (c *Client) Console(ctx context.Context, node proto.MAC, id int) ([]byte, error) {
	r, err := call[Console](ctx, c.ep, node, MethodConsole, DomainRequest{ID: id})
	return r.Data, err
}

// Pin pins a vCPU to a host CPU and returns the domain's vCPUs afterwards.
func (c *Client) Pin(ctx context.Context, node proto.MAC, id, vcpu, pcpu int) ([]domain.VCPUInfo, error) {
	r, err := call[VCPUList](ctx, c.ep, node, MethodPin, PinRequest{Term: c.term, ID: id, VCPU: vcpu, PCPU: pcpu})
	return r.VCPUs, err
}

// VCPUs returns domain id's vCPUs.
func (c *Client) VCPUs(ctx context.Context, node proto.MAC, id int) ([]domain.VCPUInfo, error) {
	r, err := call[VCPUList](ctx, c.ep, node, MethodVCPUs, DomainRequest{ID: id})
	return r.VCPUs, err
}

// NUMA returns "show numa" for domain id, or every domain for id 0.
func (c *Client) NUMA(ctx context.Context, node proto.MAC, id int) (NUMAReport, error) {
	return call[NUMAReport](ctx, c.ep, node, MethodNUMA, DomainRequest{ID: id})
}

// Wild lists the guests running on the node that it did not start.
func (c *Client) Wild(ctx context.Context, node proto.MAC) ([]domain.Wild, error) {
	r, err := call[WildList](ctx, c.ep, node, MethodWild, ListRequest{})
	return r.Wild, err
}

// Import adopts the wild guest with pid as domain id.
func (c *Client) Import(ctx context.Context, node proto.MAC, pid, id int) (domain.Info, error) {
	return call[domain.Info](ctx, c.ep, node, MethodImport, ImportRequest{Term: c.term, PID: pid, ID: id})
}

// Found is one node's answer to Discover.
type Found struct {
	From    proto.MAC
	Summary Summary
	Err     error
}

// Discover broadcasts MethodDiscover and returns every answer that came
// within window, by MAC.
func (c *Client) Discover(ctx context.Context, window time.Duration) ([]Found, error) {
	replies, err := proto.DiscoverTyped[envelope[Summary]](ctx, c.ep, MethodDiscover, DiscoverRequest{Term: c.term}, window)
	out := make([]Found, 0, len(replies))
	for _, r := range replies {
		f := Found{From: r.From, Summary: r.Value.Value, Err: r.Err}
		if f.Err == nil && r.Value.Err != nil {
			f.Err = r.Value.Err
		}
		out = append(out, f)
	}
	return out, err
}

// HandleHeartbeats registers fn for the heartbeats nodes send (controller
// side). A heartbeat that does not decode is refused as a bad request.
func HandleHeartbeats(ep *proto.Endpoint, fn func(from proto.MAC, hb Heartbeat)) {
	ep.Handle(MethodHeartbeat, func(ctx context.Context, r *proto.Request) ([]byte, error) {
		var hb Heartbeat
		if err := cbor.Unmarshal(r.Payload, &hb); err != nil {
			return nil, proto.BadRequest(err)
		}
		fn(r.From, hb)
		return nil, nil
	})
}

// SendHeartbeat sends hb to the controller at mac as a one-way message and
// waits until it is acknowledged (node side).
func SendHeartbeat(ctx context.Context, ep *proto.Endpoint, mac proto.MAC, hb Heartbeat) error {
	b, err := proto.MarshalCBOR(hb)
	if err != nil {
		return err
	}
	return ep.Send(ctx, mac, MethodHeartbeat, b)
}
