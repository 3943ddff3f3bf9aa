package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mvstack/mvstack/node/nodeclient"
)

// needsSettle says some replica left locally and the controller has not
// agreed yet.
func (v *Volume) needsSettle() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.ContainsFunc(v.reps, func(r *replica) bool { return r.state == leaving })
}

// settle makes the controller's in-sync set the replicas this client
// writes to, when some replica left: it asks the controller to drop the
// leaving ones at the epoch the client saw, then registers the new epoch
// on the replicas that stay. It gives up after Config.IOTimeout with
// ErrController. Without a Controller the leaving replicas simply become
// stale.
func (v *Volume) settle(ctx context.Context) error {
	if !v.needsSettle() {
		return nil
	}
	v.ctlMu.Lock()
	defer v.ctlMu.Unlock()
	if v.cfg.Controller == nil {
		v.mu.Lock()
		for _, r := range v.reps {
			if r.state == leaving {
				r.state = stale
			}
		}
		v.mu.Unlock()
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.IOTimeout)
	defer cancel()
	for v.needsSettle() {
		if err := v.agree(cctx); err != nil {
			return err
		}
		if err := v.registerAll(cctx); err != nil {
			return err
		}
	}
	return nil
}

// nodesLocked lists, sorted, the nodes of the replicas in state s; v.mu is
// held.
func (v *Volume) nodesLocked(s state) []string {
	var out []string
	for _, r := range v.reps {
		if r.state == s {
			out = append(out, r.cfg.Node)
		}
	}
	slices.Sort(out)
	return out
}

// agree asks the controller to make the in-sync set the replicas still in
// sync here, at the epoch the client saw, retrying until ctx ends. On
// ErrStaleEpoch it reads the volume again and decides:
//
//   - the controller's set is this client's: the change was made (an
//     answer lost on the way), the new epoch is taken;
//   - the controller's set is a part of this client's: someone else
//     dropped replicas; the client follows (they become stale here);
//   - the controller lists a replica this client does not write to (the
//     failed one, or a stale one put back): the epoch moved without this
//     client, which is a fence. The client stops (ErrFenced).
func (v *Volume) agree(ctx context.Context) error {
	backoff := 20 * time.Millisecond
	for {
		v.mu.Lock()
		want, seen := v.nodesLocked(inSync), v.epoch
		v.mu.Unlock()
		if len(want) == 0 {
			return fmt.Errorf("volume %s: %w", v.cfg.ID, ErrNoReplica)
		}
		spec, err := v.cfg.Controller.SetInSync(ctx, nodeclient.SetInSyncRequest{Volume: v.cfg.ID, Epoch: seen, InSync: want})
		if err == nil {
			v.adopt(spec, want)
			v.log.Info("controller dropped the replicas that failed", "volume", v.cfg.ID, "in_sync", want, "epoch", spec.Epoch)
			return nil
		}
		if errors.Is(err, nodeclient.ErrStaleEpoch) {
			spec, err = v.cfg.Controller.Volume(ctx, v.cfg.ID)
			if err == nil {
				done, ferr := v.reconsider(spec)
				if ferr != nil || done {
					return ferr
				}
				continue
			}
		}
		v.log.Warn("controller did not confirm the in-sync set", "volume", v.cfg.ID, "in_sync", want, "epoch", seen, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("volume %s: %w: %w", v.cfg.ID, ErrController, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// specInSync lists the nodes a volume spec has in sync.
func specInSync(spec nodeclient.VolumeSpec) []string {
	var out []string
	for _, r := range spec.Replicas {
		if r.InSync {
			out = append(out, r.Node)
		}
	}
	slices.Sort(out)
	return out
}

// adopt takes the controller's answer to a change that made want the set:
// the leaving replicas are now stale, and the epoch is the new one.
func (v *Volume) adopt(spec nodeclient.VolumeSpec, want []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range v.reps {
		if r.state == leaving && !slices.Contains(want, r.cfg.Node) {
			r.state = stale
		}
	}
	v.epoch = max(v.epoch, spec.Epoch)
	v.unconfirmed = false
}

// reconsider decides on the volume re-read after ErrStaleEpoch (see agree):
// done when nothing is left to ask, an error when the client was fenced.
func (v *Volume) reconsider(spec nodeclient.VolumeSpec) (done bool, err error) {
	s := specInSync(spec)
	v.mu.Lock()
	mine, ours := v.nodesLocked(inSync), v.epoch
	for _, n := range s {
		if !slices.Contains(mine, n) {
			v.mu.Unlock()
			return false, v.setFenced(fmt.Errorf("the controller's in-sync set %v at epoch %d holds %s, which this client (epoch %d) does not write to",
				s, spec.Epoch, n, ours))
		}
	}
	if len(s) == 0 {
		v.mu.Unlock()
		return false, v.setFenced(fmt.Errorf("the controller lists no replica in sync at epoch %d", spec.Epoch))
	}
	// s is within mine: follow the controller.
	for _, r := range v.reps {
		if (r.state == inSync || r.state == leaving) && !slices.Contains(s, r.cfg.Node) {
			r.state = stale
			r.tracked = true
			v.startBitmapLocked()
		}
	}
	v.epoch = max(v.epoch, spec.Epoch)
	v.unconfirmed = false
	v.mu.Unlock()
	v.log.Info("took the controller's in-sync set", "volume", v.cfg.ID, "in_sync", s, "epoch", spec.Epoch)
	return true, nil
}

// registerAll registers the client's epoch on every replica it writes to.
// A replica that refuses it for a newer epoch fences the client; one that
// fails otherwise leaves the set (an in-sync one) or stops catching up.
func (v *Volume) registerAll(ctx context.Context) error {
	tg, _, err := v.targets("register epoch", 0, true)
	if err != nil {
		return err
	}
	epoch := v.Epoch()
	errs := each(tg, func(t target) error { return register(ctx, t.dev, epoch) })
	for k, t := range tg {
		switch err := errs[k]; {
		case err == nil:
		case isFenced(err):
			return v.setFenced(err)
		case t.catching:
			v.abortCatchUp(t.i, "register epoch", err)
		default:
			v.leave(t.i, "register epoch", err)
		}
	}
	return nil
}
