package ethnodes

import (
	"context"

	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// The storage methods: volumes.Nodes over the control protocol. Each is one
// nodeclient call to the node's MAC carrying term (a call that met a
// restart of the node is made once more).

var _ volumes.Nodes = (*Source)(nil)

// Assign implements volumes.Nodes (nodeclient.MethodAssign).
func (s *Source) Assign(ctx context.Context, node proto.MAC, term uint64, rs []nodeclient.ReplicaAssignment) (nodeclient.AssignReply, error) {
	c := s.client.WithTerm(term)
	return retryRestarted(func() (nodeclient.AssignReply, error) { return c.Assign(ctx, node, rs) })
}

// Attach implements volumes.Nodes (nodeclient.MethodAttach).
func (s *Source) Attach(ctx context.Context, node proto.MAC, term uint64, v nodeclient.VolumeSpec, socket string) (nodeclient.VolumeStatus, error) {
	return s.client.WithTerm(term).Attach(ctx, node, v, socket)
}

// Detach implements volumes.Nodes (nodeclient.MethodDetach).
func (s *Source) Detach(ctx context.Context, node proto.MAC, term uint64, volume string) (nodeclient.VolumeStatus, error) {
	return s.client.WithTerm(term).Detach(ctx, node, volume)
}

// VolumeStatus implements volumes.Nodes (nodeclient.MethodVolumeStatus).
func (s *Source) VolumeStatus(ctx context.Context, node proto.MAC, volume string) (nodeclient.VolumeStatus, error) {
	return retryRestarted(func() (nodeclient.VolumeStatus, error) { return s.client.VolumeStatus(ctx, node, volume) })
}

// Repair implements volumes.Nodes (nodeclient.MethodRepair). It returns
// when the node has finished copying.
func (s *Source) Repair(ctx context.Context, node proto.MAC, term uint64, v nodeclient.VolumeSpec, stale string) (nodeclient.ResyncReport, error) {
	return s.client.WithTerm(term).Repair(ctx, node, v, stale)
}

// Fence implements volumes.Nodes (nodeclient.MethodFence).
func (s *Source) Fence(ctx context.Context, node proto.MAC, term uint64, volume string, epoch uint64, allow []proto.MAC) (nodeclient.AssignReply, error) {
	c := s.client.WithTerm(term)
	return retryRestarted(func() (nodeclient.AssignReply, error) { return c.Fence(ctx, node, volume, epoch, allow) })
}

// HandleStorage serves the requests nodes send the controller
// (nodeclient.MethodSetInSync, nodeclient.MethodVolume) with h. Every
// replica serves them; h decides what a follower answers.
func (s *Source) HandleStorage(h volumes.Handler) {
	nodeclient.Handle(s.ep, nodeclient.MethodSetInSync, h.SetInSync)
	nodeclient.Handle(s.ep, nodeclient.MethodVolume, h.Volume)
}

// What controller.New looks for on a node source to serve the nodes'
// storage requests and to name itself in reserve lists.
var _ interface {
	HandleStorage(volumes.Handler)
	Addr() proto.MAC
} = (*Source)(nil)
