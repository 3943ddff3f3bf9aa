package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/nbd"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/node/volume"
	"github.com/mvstack/mvstack/proto"
)

// The volume client role: the node opens a volume (package node/volume)
// for its guests, with the remote replicas reached through its AoE
// initiator and its own replica read and written directly in its pool,
// and serves it as NBD on a unix socket (a domain's disk "nbd:SOCKET").

// attachment is a volume the node has attached.
type attachment struct {
	id     string
	vol    *volume.Volume
	socket string
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// close stops serving NBD (ending its connections) and closes the volume.
func (at *attachment) close() {
	at.cancel()
	<-at.done
	at.vol.Close()
	os.Remove(at.socket)
}

// ctlClient is the controller as a volume sees it: the one the node
// follows (its heartbeats' destination), over the control protocol.
type ctlClient struct{ a *Agent }

var _ volume.Controller = ctlClient{}

var errNoController = errors.New("agent: no controller known: the node follows none yet (Config.Controller, or a controller's discovery)")

func (c ctlClient) SetInSync(ctx context.Context, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error) {
	mac := c.a.Controller()
	if mac.IsZero() {
		return nodeclient.VolumeSpec{}, errNoController
	}
	return nodeclient.SetInSync(ctx, c.a.ep, mac, req)
}

func (c ctlClient) Volume(ctx context.Context, id string) (nodeclient.VolumeSpec, error) {
	mac := c.a.Controller()
	if mac.IsZero() {
		return nodeclient.VolumeSpec{}, errNoController
	}
	return nodeclient.GetVolume(ctx, c.a.ep, mac, id)
}

// localDevice is the node's own replica of an attached volume, read and
// written in the pool directly: the node cannot reach its own AoE target
// over its interface, and the local path saves the network. It obeys the
// export's fence: it refuses I/O once the export's epoch is above the one
// it registered, or a reservation leaves the node out, as the target
// refuses a remote initiator.
type localDevice struct {
	sv    *served
	self  proto.MAC
	epoch atomic.Uint64
}

var (
	_ volume.Device  = (*localDevice)(nil)
	_ volume.Epocher = (*localDevice)(nil)
)

// check is called with sv.io held.
func (d *localDevice) check() error {
	exp := d.sv.export
	if exp == nil {
		return fmt.Errorf("local replica of volume %s: not served (no longer assigned here): %w", d.sv.asg.Volume, initiator.ErrUnavailable)
	}
	if e := exp.Epoch(); e > 0 && d.epoch.Load() < e {
		return fmt.Errorf("local replica %d.%d: registered at epoch %d, the replica is at %d: %w",
			exp.Shelf(), exp.Slot(), d.epoch.Load(), e, initiator.ErrStaleEpoch)
	}
	if r := exp.Reserved(); len(r) > 0 && !slices.Contains(r, d.self) {
		return fmt.Errorf("local replica %d.%d: reserved for %v: %w", exp.Shelf(), exp.Slot(), r, initiator.ErrReserved)
	}
	return nil
}

func (d *localDevice) ReadAtContext(_ context.Context, p []byte, off int64) (int, error) {
	d.sv.io.RLock()
	defer d.sv.io.RUnlock()
	if err := d.check(); err != nil {
		return 0, err
	}
	return d.sv.vol.ReadAt(p, off)
}

func (d *localDevice) WriteAtContext(_ context.Context, p []byte, off int64) (int, error) {
	d.sv.io.RLock()
	defer d.sv.io.RUnlock()
	if err := d.check(); err != nil {
		return 0, err
	}
	return d.sv.vol.WriteAt(p, off)
}

func (d *localDevice) FlushContext(context.Context) error {
	d.sv.io.RLock()
	defer d.sv.io.RUnlock()
	if err := d.check(); err != nil {
		return err
	}
	return d.sv.vol.Sync()
}

func (d *localDevice) Size() int64 { return d.sv.vol.Size() }

// SetEpoch registers the local client at e, raising the replica's epoch
// (durably) when e is newer, as the vendor command does at the target.
func (d *localDevice) SetEpoch(_ context.Context, e uint64) error {
	d.sv.io.Lock()
	defer d.sv.io.Unlock()
	exp := d.sv.export
	if exp == nil {
		return fmt.Errorf("local replica of volume %s: not served: %w", d.sv.asg.Volume, initiator.ErrUnavailable)
	}
	cur := exp.Epoch()
	if cur == 0 {
		d.epoch.Store(e)
		return nil
	}
	if e < cur {
		return fmt.Errorf("local replica %d.%d: epoch %d is older than the replica's %d: %w", exp.Shelf(), exp.Slot(), e, cur, initiator.ErrStaleEpoch)
	}
	if _, err := exp.RaiseEpoch(e); err != nil {
		return fmt.Errorf("local replica %d.%d: %w: %w", exp.Shelf(), exp.Slot(), initiator.ErrEpochRefused, err)
	}
	d.epoch.Store(e)
	return nil
}

// volumeConfig builds the volume client's configuration for spec: remote
// replicas through the initiator, this node's replica in its pool.
func (s *storage) volumeConfig(spec nodeclient.VolumeSpec) (volume.Config, error) {
	cfg := volume.DefaultConfig()
	if spec.ID == "" || spec.SizeMB == 0 || len(spec.Replicas) == 0 {
		return cfg, nodeclient.BadRequest(fmt.Errorf("volume spec %+v: id, size_mb and replicas are required", spec))
	}
	cfg.ID, cfg.Size, cfg.Epoch = spec.ID, int64(spec.SizeMB)<<20, spec.Epoch
	cfg.Controller = ctlClient{s.a}
	cfg.IOTimeout = time.Duration(s.a.cfg.VolumeIOTimeout)
	cfg.Logger = s.log
	cfg.Initiator = s.in
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range spec.Replicas {
		vr := volume.Replica{Node: r.Node, Shelf: r.Shelf, Slot: r.Slot, MAC: r.MAC, Stale: !r.InSync}
		if r.Node == s.a.inv.NodeID {
			sv := s.replicas[spec.ID]
			if sv == nil || sv.vol == nil || sv.asg.Shelf != r.Shelf || sv.asg.Slot != r.Slot {
				return cfg, fmt.Errorf("%w: volume %s has a replica on this node (%s) at %d.%d that is not assigned here (yet)",
					domain.ErrNotFound, spec.ID, r.Node, r.Shelf, r.Slot)
			}
			vr.Device, vr.Local, vr.MAC = &localDevice{sv: sv, self: s.a.ep.Addr()}, true, proto.MAC{}
		} else if s.in == nil {
			return cfg, fmt.Errorf("%w: volume %s has a replica on node %s, and this node has no AoE initiator", domain.ErrUnsupported, spec.ID, r.Node)
		}
		cfg.Replicas = append(cfg.Replicas, vr)
	}
	return cfg, nil
}

// claim marks a volume busy with op, or says what it is busy with.
func (s *storage) claim(id, op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if what, ok := s.busy[id]; ok {
		return fmt.Errorf("%w: volume %s: a %s is running on node %s", domain.ErrState, id, what, s.a.inv.NodeID)
	}
	s.busy[id] = op
	return nil
}

func (s *storage) release(id string) {
	s.mu.Lock()
	delete(s.busy, id)
	s.mu.Unlock()
}

// attach opens the volume and serves it as NBD on its socket.
func (s *storage) attach(ctx context.Context, _ proto.MAC, req nodeclient.AttachRequest) (nodeclient.VolumeStatus, error) {
	if err := s.a.admit(req.Term); err != nil {
		return nodeclient.VolumeStatus{}, err
	}
	if s.srv == nil {
		return nodeclient.VolumeStatus{}, ErrNoStorage
	}
	id := req.Volume.ID
	socket := req.Socket
	if socket == "" {
		socket = filepath.Join(s.a.cfg.VolumeDir, id+".sock")
	}
	s.mu.Lock()
	if at := s.attached[id]; at != nil {
		s.mu.Unlock()
		if at.socket != socket {
			return nodeclient.VolumeStatus{}, fmt.Errorf("%w: volume %s is attached on node %s at %s", domain.ErrExists, id, s.a.inv.NodeID, at.socket)
		}
		return s.status(id), nil
	}
	s.mu.Unlock()
	if err := s.claim(id, "attach"); err != nil {
		return nodeclient.VolumeStatus{}, err
	}
	defer s.release(id)
	cfg, err := s.volumeConfig(req.Volume)
	if err != nil {
		return nodeclient.VolumeStatus{}, err
	}
	v, err := volume.Open(ctx, cfg)
	if err != nil {
		return nodeclient.VolumeStatus{}, staleIfFenced(err)
	}
	ln, err := listenUnix(socket)
	if err != nil {
		v.Close()
		return nodeclient.VolumeStatus{}, err
	}
	ncfg := nbd.DefaultConfig()
	ncfg.Exports = []nbd.Export{{Name: id, Description: req.Volume.Name, Device: v}}
	ncfg.Logger = s.log
	srv, err := nbd.NewServer(ncfg)
	if err != nil {
		ln.Close()
		v.Close()
		return nodeclient.VolumeStatus{}, err
	}
	sctx, cancel := context.WithCancel(s.base)
	at := &attachment{id: id, vol: v, socket: socket, ln: ln, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(at.done)
		if err := srv.Serve(sctx, ln); err != nil {
			s.log.Error("NBD server of a volume stopped", "volume", id, "err", err)
		}
	}()
	s.mu.Lock()
	s.attached[id] = at
	s.mu.Unlock()
	s.log.Info("volume attached", "volume", id, "socket", socket, "epoch", v.Epoch(), "in_sync", v.Status().InSync)
	return s.status(id), nil
}

// staleIfFenced makes a fenced volume's error match
// nodeclient.ErrStaleEpoch, as the controller expects of a client whose
// epoch is not current.
func staleIfFenced(err error) error {
	if errors.Is(err, volume.ErrFenced) {
		return fmt.Errorf("%w: %w", nodeclient.ErrStaleEpoch, err)
	}
	return err
}

// listenUnix listens on a unix socket at path, replacing a stale socket
// file left by an earlier run (never another kind of file).
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%w: %s exists and is not a socket", domain.ErrExists, path)
		}
		os.Remove(path)
	}
	return net.Listen("unix", path)
}

// detach closes an attached volume; detaching one that is not attached
// is not an error.
func (s *storage) detachVolume(ctx context.Context, _ proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeStatus, error) {
	if err := s.a.admit(req.Term); err != nil {
		return nodeclient.VolumeStatus{}, err
	}
	s.mu.Lock()
	at := s.attached[req.Volume]
	delete(s.attached, req.Volume)
	s.mu.Unlock()
	if at != nil {
		at.close()
		s.log.Info("volume detached", "volume", req.Volume)
	}
	return s.status(req.Volume), nil
}

func (s *storage) volumeStatus(ctx context.Context, _ proto.MAC, req nodeclient.VolumeRequest) (nodeclient.VolumeStatus, error) {
	return s.status(req.Volume), nil
}

// status says how a volume stands on this node.
func (s *storage) status(id string) nodeclient.VolumeStatus {
	s.mu.Lock()
	at := s.attached[id]
	st := nodeclient.VolumeStatus{Volume: id}
	if rep, ok := s.reports[id]; ok {
		st.LastResync = &rep
	}
	s.mu.Unlock()
	if at == nil {
		return st
	}
	vs := at.vol.Status()
	st.Attached, st.Socket, st.Epoch, st.InSync, st.Dirty, st.BlockSize = true, at.socket, vs.Epoch, vs.InSync, vs.Dirty, vs.BlockSize
	return st
}

// repair resyncs the stale replica on req.Node: through the attached
// volume and its bitmap when the node has the volume attached, otherwise
// through a volume client opened for the repair alone (a full resync). It
// runs to its end even when the caller stops waiting.
func (s *storage) repair(ctx context.Context, _ proto.MAC, req nodeclient.RepairRequest) (nodeclient.ResyncReport, error) {
	if err := s.a.admit(req.Term); err != nil {
		return nodeclient.ResyncReport{}, err
	}
	if s.srv == nil {
		return nodeclient.ResyncReport{}, ErrNoStorage
	}
	id := req.Volume.ID
	if err := s.claim(id, "repair"); err != nil {
		return nodeclient.ResyncReport{}, err
	}
	defer s.release(id)
	s.mu.Lock()
	at := s.attached[id]
	s.mu.Unlock()
	rctx := s.base
	var v *volume.Volume
	if at != nil {
		v = at.vol
	} else {
		cfg, err := s.volumeConfig(req.Volume)
		if err != nil {
			return nodeclient.ResyncReport{}, err
		}
		if v, err = volume.Open(rctx, cfg); err != nil {
			return nodeclient.ResyncReport{}, err
		}
		defer v.Close()
	}
	rep, err := v.Resync(rctx, req.Node)
	if err != nil {
		return nodeclient.ResyncReport{}, staleIfFenced(err)
	}
	out := nodeclient.ResyncReport{Volume: id, Node: req.Node, Full: rep.Full, Dirty: rep.Dirty, Blocks: rep.Blocks,
		Bytes: rep.Bytes, Duration: rep.Duration, Epoch: rep.Epoch, At: rep.At}
	s.mu.Lock()
	s.reports[id] = out
	s.mu.Unlock()
	return out, nil
}

// registerStorage registers the storage methods.
func (a *Agent) registerStorage() {
	s := a.storage
	handle(a, nodeclient.MethodAssign, s.assign)
	handle(a, nodeclient.MethodFence, s.fence)
	handle(a, nodeclient.MethodAttach, s.attach)
	handle(a, nodeclient.MethodDetach, s.detachVolume)
	handle(a, nodeclient.MethodVolumeStatus, s.volumeStatus)
	handle(a, nodeclient.MethodRepair, s.repair)
}
