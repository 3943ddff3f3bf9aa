package rrd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// SyncMode is how a Store makes a commit durable.
type SyncMode uint8

const (
	// SyncFS calls syncfs(2) once per commit phase for the whole
	// filesystem: one system call however many files changed.
	SyncFS SyncMode = iota
	// SyncEach fsyncs every changed file.
	SyncEach
	// SyncNone skips syncing (tests and benchmarks of the write path
	// only: a crash may then lose or mix commits).
	SyncNone
)

// StoreConfig configures a Store.
type StoreConfig struct {
	Dir       string       // where the files live
	Sync      SyncMode     // how commits become durable
	RedoBytes int64        // redo room per state slot for new files (0: DefaultRedoBytes)
	Logger    *slog.Logger // nil: discard
}

// DefaultStoreConfig returns the configuration for files in dir.
func DefaultStoreConfig(dir string) StoreConfig {
	return StoreConfig{Dir: dir, Sync: SyncFS, RedoBytes: DefaultRedoBytes}
}

// Validate checks the configuration.
func (c StoreConfig) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("rrd: StoreConfig.Dir is empty")
	}
	if c.Sync > SyncNone {
		return fmt.Errorf("rrd: StoreConfig.Sync %d unknown", c.Sync)
	}
	if c.RedoBytes < 0 || c.RedoBytes > 1<<30 {
		return fmt.Errorf("rrd: StoreConfig.RedoBytes %d out of range 0..1GiB", c.RedoBytes)
	}
	return nil
}

// Store holds many RRD files open and commits their updates together:
// for the aggregator, which updates thousands of series per interval.
// Updates are applied in memory; Commit writes every changed file's state
// slot, syncs once, writes the rows, syncs once more. Store is safe for
// concurrent use.
type Store struct {
	cfg   StoreConfig
	log   *slog.Logger
	mu    sync.Mutex
	files map[string]*File
	dirty []*File
	syncf *os.File // any file on the filesystem, for syncfs
	shut  bool
}

// OpenStore opens (and creates) the directory.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("rrd: store: %w", err)
	}
	d, err := os.Open(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("rrd: store: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{cfg: cfg, log: log, files: map[string]*File{}, syncf: d}, nil
}

func (s *Store) path(name string) (string, error) {
	if name == "" || filepath.IsAbs(name) || strings.Contains(name, "..") || filepath.Clean(name) != name {
		return "", fmt.Errorf("rrd: store: bad file name %q", name)
	}
	return filepath.Join(s.cfg.Dir, name), nil
}

// Create creates a file (atomically, replacing nothing) and keeps it open.
func (s *Store) Create(name string, spec Spec, start Time) error {
	p, err := s.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("rrd: store: %w", err)
	}
	if err := Create(p, spec, start, &CreateOptions{RedoBytes: s.cfg.RedoBytes}); err != nil {
		return err
	}
	_, err = s.file(name)
	return err
}

// file returns the open file, opening it on first use.
func (s *Store) file(name string) (*File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fileLocked(name)
}

func (s *Store) fileLocked(name string) (*File, error) {
	if s.shut {
		return nil, errClosed
	}
	if f := s.files[name]; f != nil {
		return f, nil
	}
	p, err := s.path(name)
	if err != nil {
		return nil, err
	}
	f, err := Open(p)
	if err != nil {
		return nil, err
	}
	s.files[name] = f
	return f, nil
}

// Exists reports whether the file exists (open or on disk).
func (s *Store) Exists(name string) bool {
	s.mu.Lock()
	_, ok := s.files[name]
	s.mu.Unlock()
	if ok {
		return true
	}
	p, err := s.path(name)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Update applies one update to a file in memory.
func (s *Store) Update(name string, t Time, vals ...Value) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(name, t, vals)
}

func (s *Store) updateLocked(name string, t Time, vals []Value) error {
	f, err := s.fileLocked(name)
	if err != nil {
		return err
	}
	was := f.dirty
	if err := f.Update(t, vals...); err != nil {
		return fmt.Errorf("rrd: %s: %w", name, err)
	}
	if !was {
		s.dirty = append(s.dirty, f)
	}
	return nil
}

// Update is one series update for UpdateBatch.
type Update struct {
	Name   string
	Time   Time
	Values []Value
}

// UpdateBatch applies many updates under one lock. It applies every
// update it can and returns the errors of the others joined.
func (s *Store) UpdateBatch(us []Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, u := range us {
		if err := s.updateLocked(u.Name, u.Time, u.Values); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrs(errs)
}

func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more errors)", errs[0], len(errs)-1)
}

// Commit makes every update since the last commit durable.
func (s *Store) Commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(ctx)
}

func (s *Store) commitLocked(ctx context.Context) error {
	if len(s.dirty) == 0 {
		return nil
	}
	dirty := s.dirty[:0:0]
	for _, f := range s.dirty {
		if err := ctx.Err(); err != nil {
			return err
		}
		rewrote, err := f.commitSlot()
		if err != nil {
			return err
		}
		if !rewrote {
			dirty = append(dirty, f)
		}
	}
	if err := s.sync(dirty); err != nil {
		return err
	}
	for _, f := range dirty {
		if err := f.commitRows(); err != nil {
			return err
		}
	}
	if err := s.sync(dirty); err != nil {
		return err
	}
	s.dirty = s.dirty[:0]
	return nil
}

func (s *Store) sync(files []*File) error {
	if len(files) == 0 {
		return nil
	}
	switch s.cfg.Sync {
	case SyncFS:
		return syncFS(s.syncf)
	case SyncEach:
		for _, f := range files {
			if err := f.f.Sync(); err != nil {
				return fmt.Errorf("rrd: sync %s: %w", f.path, err)
			}
		}
	}
	return nil
}

// Fetch fetches from a file.
func (s *Store) Fetch(name string, cf CF, start, end int64, res uint64) (*FetchResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.fileLocked(name)
	if err != nil {
		return nil, err
	}
	return f.Fetch(cf, start, end, res)
}

// Last returns a file's last update time.
func (s *Store) Last(name string) (Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.fileLocked(name)
	if err != nil {
		return Time{}, err
	}
	return f.Last(), nil
}

// Close commits and closes every file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return nil
	}
	err := s.commitLocked(context.Background())
	for _, f := range s.files {
		if cerr := f.f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	s.syncf.Close()
	s.files, s.shut = nil, true
	return err
}
