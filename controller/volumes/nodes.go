package volumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

var _ Handler = (*Manager)(nil)

// sender checks that from is a registered node with a part in volume v:
// it holds a replica or has v attached.
func (st snapshot) sender(from proto.MAC, v *state.Volume) error {
	id := from.NodeID()
	n := st.nodes[id]
	if n == nil || n.MAC != from {
		return fmt.Errorf("%w: %s is not a registered node", domain.ErrInvalidSpec, from)
	}
	if v.AttachedTo == id || slices.ContainsFunc(v.Replicas, func(r state.VolumeReplica) bool { return r.Node == id }) {
		return nil
	}
	return fmt.Errorf("%w: node %s neither holds a replica of volume %s (%s) nor has it attached", domain.ErrInvalidSpec, id, v.ID, v.Name)
}

// SetInSync answers nodeclient.MethodSetInSync: it applies
// state.SetInSync at the epoch the node saw and answers the volume after
// the change. Errors carry the nodeclient codes: ErrStaleEpoch when the
// epoch is not current (re-read and decide again), domain.ErrNotFound for
// an unknown volume, domain.ErrInvalidSpec for a set naming a node without
// a replica or a sender with no part in the volume; a follower (or a
// leader without quorum) answers an internal error saying so, which the
// node retries.
func (m *Manager) SetInSync(ctx context.Context, from proto.MAC, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error) {
	st := m.read()
	v := st.volume(req.Volume)
	if v == nil {
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: volume %q does not exist", domain.ErrNotFound, req.Volume)
	}
	if err := st.sender(from, v); err != nil {
		return nodeclient.VolumeSpec{}, err
	}
	res, err := m.cfg.Store.Apply(ctx, state.SetInSync{At: m.now().UTC(), Volume: req.Volume, Epoch: req.Epoch, InSync: req.InSync})
	switch {
	case errors.Is(err, state.ErrStaleEpoch):
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: %v", nodeclient.ErrStaleEpoch, err)
	case errors.Is(err, state.ErrNotFound):
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: %v", domain.ErrNotFound, err)
	case errors.Is(err, state.ErrInvalid):
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: %v", domain.ErrInvalidSpec, err)
	case err != nil:
		return nodeclient.VolumeSpec{}, fmt.Errorf("controller: set_in_sync of volume %s not applied, retry at the leader: %w", req.Volume, err)
	}
	nv := res.(state.Volume)
	m.log.Info("volume in-sync set changed by a node", "volume", nv.ID, "node", from.NodeID(),
		"in_sync", strings.Join(nv.InSync, ","), "epoch", nv.Epoch)
	m.wake() // the replicas' assignments carry the new epoch and flags
	return m.read().spec(&nv), nil
}

// Volume answers nodeclient.MethodVolume from this replica's state (a
// follower's may lag by the replication delay).
func (m *Manager) Volume(ctx context.Context, from proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeSpec, error) {
	st := m.read()
	v := st.volume(req.Volume)
	if v == nil {
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: volume %q does not exist", domain.ErrNotFound, req.Volume)
	}
	return st.spec(v), nil
}
