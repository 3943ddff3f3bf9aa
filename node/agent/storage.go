package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/rawlink"
	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/node/pool"
	"github.com/mvstack/mvstack/proto"
)

// The storage role. The node always runs an AoE target on its interface:
// it serves the disks given with --export, and the volume replicas the
// controller assigns (MethodAssign), each a volume of a thin pool (package
// node/pool) on one of the node's drives, exported at its shelf.slot with
// the volume's epoch. An AoE initiator on the same interface reaches other
// nodes' replicas for the volumes the node attaches (volumes.go).

// ErrNoStorage refuses storage methods on a node without an AoE link (a
// test node built on an injected Link without Config.AoELink).
var ErrNoStorage = fmt.Errorf("%w: this node has no AoE link for storage", domain.ErrUnsupported)

// served is one replica the node serves.
type served struct {
	asg  nodeclient.ReplicaAssignment
	pool *pool.Pool
	vol  *pool.Volume
	// io is held shared by local I/O of an attached volume (localDevice)
	// and alone by whatever changes the export or its epoch, so a fence
	// and the local path agree.
	io     sync.RWMutex
	export *target.Export
	err    string
}

// storage is the node's storage role.
type storage struct {
	a   *Agent
	log *slog.Logger
	// base outlives requests: repairs run under it; Close cancels it.
	base   context.Context
	cancel context.CancelFunc

	srv    *target.Server       // nil without an AoE link
	link   proto.Link           // the target's
	ilink  proto.Link           // the initiator's
	in     *initiator.Initiator // nil without an initiator link
	files  []*target.File       // --export backends
	detach func()

	// mu guards the maps and serialises assign and fence.
	mu       sync.Mutex
	pools    map[string]*pool.Pool // by disk name
	replicas map[string]*served    // by volume id
	attached map[string]*attachment
	busy     map[string]string // volume id → what runs on it (attach, repair)
	reports  map[string]nodeclient.ResyncReport
	rawPaths []string // drives exported raw with --export: never pools
}

// startStorage opens the AoE target (with the --export disks) and the
// initiator, opens the pools found on the node's drives and exports the
// replicas the state directory remembers. Without an AoE link (tests on an
// injected Link) the role only refuses.
func (a *Agent) startStorage() (err error) {
	s := &storage{a: a, log: a.log, pools: map[string]*pool.Pool{}, replicas: map[string]*served{},
		attached: map[string]*attachment{}, busy: map[string]string{}, reports: map[string]nodeclient.ResyncReport{}}
	s.base, s.cancel = context.WithCancel(context.Background())
	a.storage = s
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.link = a.cfg.AoELink
	if s.link == nil {
		if a.cfg.Link != nil {
			if len(a.cfg.Exports) > 0 {
				return errors.New("Config.Exports on an injected link need Config.AoELink")
			}
			return nil
		}
		// rawlink's reads block on the reader's thread: per request it
		// saves the netpoller's failed receive, epoll wait and wake-up.
		l, err := rawlink.Open(a.cfg.Iface, proto.EtherTypeAoE)
		if err != nil {
			return err
		}
		s.link = l
	}
	var exports []target.ExportConfig
	for _, x := range a.cfg.Exports {
		b, err := target.OpenFile(x.Path, target.FileOptions{ReadOnly: x.ReadOnly})
		if err != nil {
			return fmt.Errorf("export %d.%d: %w", x.Shelf, x.Slot, err)
		}
		s.files = append(s.files, b)
		s.rawPaths = append(s.rawPaths, x.Path)
		ec := target.DefaultExportConfig()
		ec.Shelf, ec.Slot, ec.Backend, ec.ReadOnly, ec.WriteBack = x.Shelf, x.Slot, b, x.ReadOnly, x.WriteBack
		ec.Serial = fmt.Sprintf("%s-%d.%d", a.inv.NodeID, x.Shelf, x.Slot)
		exports = append(exports, ec)
	}
	tcfg := target.DefaultConfig()
	tcfg.Logger = a.log
	srv, err := target.NewServer(s.link, tcfg, exports...)
	if err != nil {
		return err
	}
	s.srv = srv
	if s.detach, err = a.set.Attach(exportsSource(srv)); err != nil {
		return err
	}
	s.ilink = a.cfg.InitiatorLink
	if s.ilink == nil && a.cfg.Link == nil {
		l, err := rawlink.Open(a.cfg.Iface, proto.EtherTypeAoE)
		if err != nil {
			return fmt.Errorf("initiator: %w", err)
		}
		s.ilink = l
	}
	if s.ilink != nil {
		icfg := initiator.DefaultConfig()
		icfg.Links = []proto.Link{s.ilink}
		icfg.Logger = a.log
		// A request retried longer than the volume waits would hold a
		// failed replica's writes past the point where the volume gives up.
		icfg.RequestTimeout = max(time.Duration(a.cfg.VolumeIOTimeout), icfg.MaxRTO)
		if s.in, err = initiator.New(icfg); err != nil {
			return fmt.Errorf("initiator: %w", err)
		}
	}
	s.recover()
	return nil
}

// serve runs the AoE target until ctx ends.
func (s *storage) serve(ctx context.Context) {
	if s.srv == nil {
		return
	}
	if err := s.srv.Serve(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("AoE target stopped", "err", err)
	}
}

// close detaches every volume and closes the target, the initiator, the
// links and the pools.
func (s *storage) close() {
	s.cancel()
	s.mu.Lock()
	atts := make([]*attachment, 0, len(s.attached))
	for _, at := range s.attached {
		atts = append(atts, at)
	}
	s.attached = map[string]*attachment{}
	s.mu.Unlock()
	for _, at := range atts {
		at.close()
	}
	if s.in != nil {
		s.in.Close()
	}
	if s.detach != nil {
		s.detach()
	}
	// The links are the role's, given or opened (as the control Link is
	// the endpoint's).
	if s.link != nil {
		s.link.Close()
	}
	if s.ilink != nil {
		s.ilink.Close()
	}
	for _, f := range s.files {
		f.Close()
	}
	s.mu.Lock()
	for _, p := range s.pools {
		p.Close()
	}
	s.pools = map[string]*pool.Pool{}
	s.mu.Unlock()
}

// recover opens the pools already on the node's drives and exports the
// replicas the state directory lists, at the epoch each persisted; the
// controller's next assignment confirms or removes them.
func (s *storage) recover() {
	if s.srv == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.a.inv.Disks {
		if d.Path == "" || slices.Contains(s.rawPaths, d.Path) {
			continue
		}
		if blank, err := pool.IsBlank(d.Path); err != nil || blank {
			continue
		}
		p, err := pool.Open(d.Path)
		if err != nil {
			s.log.Debug("drive holds no pool", "disk", d.Name, "path", d.Path, "err", err)
			continue
		}
		s.pools[d.Name] = p
	}
	saved, err := s.a.store.loadReplicas()
	if err != nil {
		s.log.Error("reading the replicas the node served", "err", err)
		return
	}
	for _, asg := range saved {
		st := s.applyLocked(asg, false)
		if st.Error != "" {
			s.log.Warn("replica not served again", "volume", asg.Volume, "err", st.Error)
			continue
		}
		s.log.Info("replica served again after a restart", "volume", asg.Volume, "shelf", asg.Shelf, "slot", asg.Slot, "epoch", st.Epoch)
	}
}

// poolFor returns the pool on the named disk, formatting a blank drive on
// first use and refusing one that holds anything else.
func (s *storage) poolFor(disk string) (*pool.Pool, error) {
	if p := s.pools[disk]; p != nil {
		return p, nil
	}
	i := slices.IndexFunc(s.a.inv.Disks, func(d inventory.Disk) bool { return d.Name == disk })
	if i < 0 {
		return nil, fmt.Errorf("%w: disk %q is not in node %s's inventory", domain.ErrNotFound, disk, s.a.inv.NodeID)
	}
	d := s.a.inv.Disks[i]
	switch {
	case d.Path == "":
		return nil, fmt.Errorf("%w: disk %q of node %s has no path (a declared, simulated drive): give the node real drives or --drive-file",
			domain.ErrUnsupported, disk, s.a.inv.NodeID)
	case slices.Contains(s.rawPaths, d.Path):
		return nil, fmt.Errorf("%w: disk %q (%s) is exported raw with --export: it cannot hold a pool", domain.ErrDiskBusy, disk, d.Path)
	}
	blank, err := pool.IsBlank(d.Path)
	if err != nil {
		return nil, err
	}
	if blank {
		if err := pool.Format(d.Path, pool.FormatOptions{}); err != nil {
			return nil, err
		}
		s.log.Info("formatted a blank drive as a pool", "disk", disk, "path", d.Path)
	}
	p, err := pool.Open(d.Path)
	if errors.Is(err, pool.ErrNotPool) {
		return nil, fmt.Errorf("%w: disk %q (%s) holds data that is not an mvstack pool: it is never overwritten (zero its first 64 KiB to give it to storage)",
			domain.ErrDiskBusy, disk, d.Path)
	}
	if err != nil {
		return nil, err
	}
	s.pools[disk] = p
	return p, nil
}

// applyLocked makes the node serve asg: the pool volume exists with at
// least its size (created only with create) and is exported at its
// shelf.slot with epoch max(assigned, persisted); the epoch of an export
// that exists already is raised only for a replica out of sync. s.mu is
// held.
func (s *storage) applyLocked(asg nodeclient.ReplicaAssignment, create bool) nodeclient.ReplicaStatus {
	st := nodeclient.ReplicaStatus{Volume: asg.Volume, Shelf: asg.Shelf, Slot: asg.Slot, Epoch: asg.Epoch}
	sv := s.replicas[asg.Volume]
	if sv == nil {
		sv = &served{asg: asg}
		s.replicas[asg.Volume] = sv
	}
	fail := func(err error) nodeclient.ReplicaStatus {
		sv.err = err.Error()
		st.Error = sv.err
		return st
	}
	p, err := s.poolFor(asg.Disk)
	if err != nil {
		return fail(err)
	}
	if sv.pool != nil && sv.pool != p {
		return fail(fmt.Errorf("%w: volume %s already has a replica on disk %s of this node", domain.ErrExists, asg.Volume, sv.asg.Disk))
	}
	size := int64(asg.SizeMB) << 20
	vol, err := p.Volume(asg.Volume)
	switch {
	case errors.Is(err, pool.ErrNotFound) && create:
		vol, err = p.Create(asg.Volume, size, asg.Thick)
		if err == nil {
			s.log.Info("replica created", "volume", asg.Volume, "disk", asg.Disk, "size_mb", asg.SizeMB, "thick", asg.Thick)
		}
	case err == nil && vol.Size() < size:
		if err = p.Resize(asg.Volume, size); err == nil {
			s.log.Info("replica grown", "volume", asg.Volume, "size_mb", asg.SizeMB)
		}
	}
	if err != nil {
		return fail(err)
	}
	epoch := max(asg.Epoch, vol.Epoch())
	sv.io.Lock()
	defer sv.io.Unlock()
	if sv.export != nil && (sv.asg.Shelf != asg.Shelf || sv.asg.Slot != asg.Slot) {
		if err := s.srv.RemoveExport(sv.asg.Shelf, sv.asg.Slot); err != nil {
			s.log.Warn("removing a moved export", "volume", asg.Volume, "err", err)
		}
		sv.export = nil
	}
	sv.asg, sv.pool, sv.vol, sv.err = asg, p, vol, ""
	if sv.export == nil {
		if epoch > vol.Epoch() {
			if err := vol.SetEpoch(epoch); err != nil {
				return fail(err)
			}
		}
		ec := target.DefaultExportConfig()
		ec.Shelf, ec.Slot, ec.Backend, ec.Epoch = asg.Shelf, asg.Slot, vol, epoch
		if epoch > 0 {
			ec.OnEpoch = vol.SetEpoch
		}
		ec.Serial = fmt.Sprintf("%s-v%s", s.a.inv.NodeID, asg.Volume)
		exp, err := s.srv.AddExport(ec)
		if err != nil {
			return fail(err)
		}
		sv.export = exp
		s.log.Info("replica exported", "volume", asg.Volume, "shelf", asg.Shelf, "slot", asg.Slot, "epoch", epoch)
	} else if !asg.InSync && epoch > sv.export.Epoch() && sv.export.Epoch() > 0 {
		// Only a replica out of sync is raised here: an in-sync one's
		// epoch moves with its writer's registrations (and fences), and
		// raising it from an assignment that races the writer's
		// registration of the new epoch would fence the writer.
		if _, err := sv.export.RaiseEpoch(epoch); err != nil {
			return fail(err)
		}
	}
	if vol.InSync() != asg.InSync {
		if err := vol.SetInSync(asg.InSync); err != nil {
			return fail(err)
		}
	}
	st.Epoch, st.Allocated = sv.export.Epoch(), uint64(vol.Allocated())
	return st
}

// unexportLocked stops serving a replica (its data stays).
func (s *storage) unexportLocked(id string, sv *served) {
	sv.io.Lock()
	if sv.export != nil {
		if err := s.srv.RemoveExport(sv.asg.Shelf, sv.asg.Slot); err != nil {
			s.log.Warn("removing an export", "volume", id, "err", err)
		}
		sv.export = nil
	}
	sv.io.Unlock()
	delete(s.replicas, id)
	s.log.Info("replica no longer served", "volume", id, "shelf", sv.asg.Shelf, "slot", sv.asg.Slot)
}

func statusOf(sv *served) nodeclient.ReplicaStatus {
	st := nodeclient.ReplicaStatus{Volume: sv.asg.Volume, Shelf: sv.asg.Shelf, Slot: sv.asg.Slot, Epoch: sv.asg.Epoch, Error: sv.err}
	if sv.vol != nil {
		st.Epoch, st.Allocated = sv.vol.Epoch(), uint64(sv.vol.Allocated())
	}
	return st
}

// assign makes the node serve exactly the listed replicas.
//
// Deletion safety: a replica not listed stops being served at once, but
// its data is deleted only when the list is not empty (an empty list, as
// a controller with a lost or blank state would send, removes exports and
// deletes nothing: the volumes stay in the pools until a later non-empty
// list leaves them out), and never while the volume is attached on this
// node.
func (s *storage) assign(ctx context.Context, _ proto.MAC, req nodeclient.AssignRequest) (nodeclient.AssignReply, error) {
	if err := s.a.admit(req.Term); err != nil {
		return nodeclient.AssignReply{}, err
	}
	if s.srv == nil {
		return nodeclient.AssignReply{}, ErrNoStorage
	}
	listed := map[string]bool{}
	addrs := map[[2]int]string{}
	for _, r := range req.Replicas {
		if r.Volume == "" || r.SizeMB == 0 || r.Disk == "" {
			return nodeclient.AssignReply{}, nodeclient.BadRequest(fmt.Errorf("replica %+v: volume, disk and size_mb are required", r))
		}
		if listed[r.Volume] {
			return nodeclient.AssignReply{}, nodeclient.BadRequest(fmt.Errorf("volume %s is listed twice", r.Volume))
		}
		k := [2]int{int(r.Shelf), int(r.Slot)}
		if o, dup := addrs[k]; dup {
			return nodeclient.AssignReply{}, nodeclient.BadRequest(fmt.Errorf("volumes %s and %s are both at %d.%d", o, r.Volume, r.Shelf, r.Slot))
		}
		listed[r.Volume], addrs[k] = true, r.Volume
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sv := range s.replicas {
		if !listed[id] {
			s.unexportLocked(id, sv)
		}
	}
	var rep nodeclient.AssignReply
	for _, r := range req.Replicas {
		rep.Replicas = append(rep.Replicas, s.applyLocked(r, true))
	}
	if len(req.Replicas) > 0 {
		s.deleteUnlistedLocked(listed)
	}
	if err := s.a.store.saveReplicas(req.Replicas); err != nil {
		s.log.Error("saving the replicas the node serves", "err", err)
	}
	return rep, nil
}

// deleteUnlistedLocked deletes the pool volumes no replica listed names,
// except those attached here.
func (s *storage) deleteUnlistedLocked(listed map[string]bool) {
	for disk, p := range s.pools {
		for _, vi := range p.Volumes() {
			if listed[vi.ID] {
				continue
			}
			if _, att := s.attached[vi.ID]; att {
				s.log.Warn("volume no longer assigned but attached here: its replica is kept", "volume", vi.ID, "disk", disk)
				continue
			}
			if err := p.Delete(vi.ID); err != nil {
				s.log.Error("deleting a replica no longer assigned", "volume", vi.ID, "disk", disk, "err", err)
				continue
			}
			s.log.Info("replica deleted: no longer assigned", "volume", vi.ID, "disk", disk, "allocated", vi.Allocated)
		}
	}
}

// fence raises the epoch of the node's replica of a volume and sets its
// AoE reserve list: from then on only initiators registered at the new
// epoch (and, with a list, only those on it) reach the disk, the node's
// own volume client included.
func (s *storage) fence(ctx context.Context, _ proto.MAC, req nodeclient.FenceRequest) (nodeclient.AssignReply, error) {
	if err := s.a.admit(req.Term); err != nil {
		return nodeclient.AssignReply{}, err
	}
	if s.srv == nil {
		return nodeclient.AssignReply{}, ErrNoStorage
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.replicas[req.Volume]
	if sv == nil || sv.vol == nil {
		return nodeclient.AssignReply{}, fmt.Errorf("%w: node %s serves no replica of volume %s", domain.ErrNotFound, s.a.inv.NodeID, req.Volume)
	}
	sv.io.Lock()
	defer sv.io.Unlock()
	switch {
	case sv.export != nil && sv.export.Epoch() > 0:
		if _, err := sv.export.RaiseEpoch(req.Epoch); err != nil {
			return nodeclient.AssignReply{}, err
		}
	case req.Epoch > sv.vol.Epoch():
		if err := sv.vol.SetEpoch(req.Epoch); err != nil {
			return nodeclient.AssignReply{}, err
		}
	}
	if sv.export != nil {
		if err := sv.export.SetReserve(req.Allow); err != nil {
			return nodeclient.AssignReply{}, nodeclient.BadRequest(err)
		}
	}
	s.log.Warn("replica fenced", "volume", req.Volume, "epoch", req.Epoch, "allow", req.Allow)
	return nodeclient.AssignReply{Replicas: []nodeclient.ReplicaStatus{statusOf(sv)}}, nil
}

// Replicas returns how the node's replicas stand.
func (a *Agent) Replicas() []nodeclient.ReplicaStatus {
	s := a.storage
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]nodeclient.ReplicaStatus, 0, len(s.replicas))
	for _, sv := range s.replicas {
		out = append(out, statusOf(sv))
	}
	slices.SortFunc(out, func(x, y nodeclient.ReplicaStatus) int { return strings.Compare(x.Volume, y.Volume) })
	return out
}
