package dbbackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/node/nodeclient"
)

// Target is an open volume: node/volume's *Volume is one.
type Target interface {
	io.ReaderAt
	io.WriterAt
	Flush() error
	Close() error
}

// Opener opens a volume for writing from this controller.
type Opener func(ctx context.Context, spec nodeclient.VolumeSpec) (Target, error)

// Snapshots gives the replica's newest raft snapshot (*replica.Replica).
type Snapshots interface {
	LatestSnapshot() (replica.SnapshotInfo, []byte, error)
}

// Store reads the replicated state (*replica.Replica).
type Store interface {
	Read(fn func(*state.State))
}

// Config configures a Backup.
type Config struct {
	Store     Store     // required
	Snapshots Snapshots // required
	Open      Opener    // required
	// Reserve, when set, is called before each copy to make this
	// controller the only writer of the volume's replicas.
	Reserve func(ctx context.Context, volume string) error
	// Interval is how often the newest snapshot is looked at.
	Interval time.Duration
	// Writer names this replica in the images.
	Writer string
	Now    func() time.Time // nil is time.Now
	Logger *slog.Logger     // nil discards
}

// Validate checks the fields.
func (c Config) Validate() error {
	switch {
	case c.Store == nil || c.Snapshots == nil || c.Open == nil:
		return errors.New("dbbackup: Config.Store, Snapshots and Open are required")
	case c.Interval <= 0:
		return fmt.Errorf("dbbackup: Config.Interval %v must be positive", c.Interval)
	case len(c.Writer) > MaxWriter:
		return fmt.Errorf("dbbackup: Config.Writer %q is longer than %d bytes", c.Writer, MaxWriter)
	}
	return nil
}

// Copy is what one copy did.
type Copy struct {
	Volume string
	Slot   int
	Header Header
}

// Backup copies snapshots to the db_metadata volume. It is safe for
// concurrent use.
type Backup struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	last map[string]uint64 // snapshot index last copied, by volume
}

// New returns a Backup.
func New(cfg Config) (*Backup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Backup{cfg: cfg, log: cfg.Logger, last: map[string]uint64{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b, nil
}

// Run is the leader-only loop: Once every Interval until ctx ends.
func (b *Backup) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		if c, err := b.Once(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("copying the raft snapshot to the db_metadata volume failed", "err", err)
		} else if c != nil {
			b.log.Info("raft snapshot copied to the db_metadata volume", "volume", c.Volume, "slot", c.Slot,
				"index", c.Header.Index, "term", c.Header.Term, "bytes", c.Header.Length)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Volume returns the volume snapshots go to: the first, in id order, of a
// db_metadata datastore; nil when there is none.
func Volume(s *state.State) *state.Volume {
	for _, v := range s.SortedVolumes() {
		if ds := s.Datastores[v.Datastore]; ds != nil && ds.DBMetadata {
			return v
		}
	}
	return nil
}

// Once copies the newest snapshot when it is newer than the last one
// copied to the volume; nil Copy when there was nothing to do (no volume,
// no snapshot, nothing new).
func (b *Backup) Once(ctx context.Context) (*Copy, error) {
	var (
		v    *state.Volume
		spec nodeclient.VolumeSpec
	)
	b.cfg.Store.Read(func(s *state.State) {
		if v = Volume(s); v != nil {
			spec = volumes.Spec(s, v)
		}
	})
	if v == nil {
		return nil, nil
	}
	info, data, err := b.cfg.Snapshots.LatestSnapshot()
	if errors.Is(err, replica.ErrNoSnapshot) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	done := b.last[v.ID] >= info.Index
	b.mu.Unlock()
	if done {
		return nil, nil
	}
	if v.AttachedTo != "" {
		return nil, fmt.Errorf("volume %s (%s) is attached to node %s: the controller does not write a volume a node uses (detach it)", v.ID, v.Name, v.AttachedTo)
	}
	size := int64(v.SizeMB) << 20
	if int64(len(data)) > slotSize(size)-HeaderSize {
		return nil, fmt.Errorf("volume %s (%s): %w: snapshot of %d bytes, a slot takes %d: grow the volume to at least %d MiB",
			v.ID, v.Name, ErrTooBig, len(data), slotSize(size)-HeaderSize, (2*(int64(len(data))+HeaderSize)>>20)+1)
	}
	if b.cfg.Reserve != nil {
		if err := b.cfg.Reserve(ctx, v.ID); err != nil {
			return nil, fmt.Errorf("reserving volume %s for this controller: %w", v.ID, err)
		}
	}
	t, err := b.cfg.Open(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("opening volume %s (%s): %w", v.ID, v.Name, err)
	}
	h := Header{Index: info.Index, Term: info.Term, At: b.cfg.Now().UTC(), Writer: b.cfg.Writer}
	slot, err := Write(t, size, h, data)
	if err == nil {
		err = t.Flush()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s (%s): %w", v.ID, v.Name, err)
	}
	b.mu.Lock()
	b.last[v.ID] = info.Index
	b.mu.Unlock()
	h.Length = uint64(len(data))
	return &Copy{Volume: v.ID, Slot: slot, Header: h}, nil
}
