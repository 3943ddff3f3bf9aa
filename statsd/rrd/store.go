package rrd

import (
	"context"
	"fmt"
	"io"
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
	Dir       string   // where the files live
	Sync      SyncMode // how commits become durable
	RedoBytes int64    // redo room per state slot for new files (0: DefaultRedoRows rows)
	// Journal makes each Commit append its updates to a write-ahead log
	// (one sequential write and one fdatasync) and write the RRD files
	// only at checkpoints, many updates per file at a time. Without it
	// every Commit writes the files.
	Journal bool
	// A checkpoint happens after CheckpointEvery commits or when the
	// journal reaches CheckpointBytes, whichever comes first.
	CheckpointEvery int
	CheckpointBytes int64
	Logger          *slog.Logger // nil: discard
}

// DefaultStoreConfig returns the configuration for files in dir: journal
// on, a checkpoint every 30 commits or 256 MiB of journal.
func DefaultStoreConfig(dir string) StoreConfig {
	return StoreConfig{Dir: dir, Sync: SyncFS,
		Journal: true, CheckpointEvery: 30, CheckpointBytes: 256 << 20}
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
	if c.Journal && (c.CheckpointEvery < 1 || c.CheckpointBytes < 1) {
		return fmt.Errorf("rrd: StoreConfig.CheckpointEvery %d and CheckpointBytes %d must be positive with a journal", c.CheckpointEvery, c.CheckpointBytes)
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
	jr    *journal // nil without a journal
	jbuf  []byte   // journal entries since the last commit
	since int      // commits since the last checkpoint
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
	s := &Store{cfg: cfg, log: log, files: map[string]*File{}, syncf: d}
	if cfg.Journal {
		if s.jr, err = openJournal(filepath.Join(cfg.Dir, journalName)); err != nil {
			d.Close()
			return nil, err
		}
		if err := s.replay(); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	return s, nil
}

// replay applies what the journal holds beyond the files' state (after a
// crash) and checkpoints it.
func (s *Store) replay() error {
	if s.jr.size == 0 {
		return nil
	}
	applied, skipped := 0, 0
	err := readJournal(io.NewSectionReader(s.jr.f, 0, s.jr.size), func(e journalEntry) error {
		f, err := s.fileLocked(e.name)
		if err != nil {
			s.log.Warn("journal names a file that does not open", "file", e.name, "err", err)
			skipped++
			return nil
		}
		if !f.Last().Before(e.t) {
			skipped++ // already in the file
			return nil
		}
		was := f.dirty
		if err := f.Update(e.t, e.vals...); err != nil {
			s.log.Warn("journal update refused", "file", e.name, "err", err)
			skipped++
			return nil
		}
		if !was {
			s.dirty = append(s.dirty, f)
		}
		applied++
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("journal replayed", "applied", applied, "skipped", skipped)
	return s.checkpointLocked(context.Background())
}

func (s *Store) closeFiles() {
	for _, f := range s.files {
		f.f.Close()
	}
	if s.jr != nil {
		s.jr.f.Close()
	}
	s.syncf.Close()
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

// Open opens a file ahead of its first update (the aggregator keeps its
// files open; the first update opens a file otherwise).
func (s *Store) Open(name string) error {
	_, err := s.file(name)
	return err
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
	if len(name) > 0xffff || len(vals) > 0xffff {
		return errJournalName
	}
	was := f.dirty
	if err := f.Update(t, vals...); err != nil {
		return fmt.Errorf("rrd: %s: %w", name, err)
	}
	if !was {
		s.dirty = append(s.dirty, f)
	}
	if s.jr != nil {
		s.jbuf = appendJournalEntry(s.jbuf, name, t, vals)
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
	if s.jr == nil {
		return s.checkpointLocked(ctx)
	}
	if len(s.jbuf) > 0 {
		rec := journalRecord(make([]byte, 0, len(s.jbuf)+12), s.jbuf)
		if s.cfg.Sync == SyncNone {
			if _, err := s.jr.f.WriteAt(rec, s.jr.size); err != nil {
				return fmt.Errorf("rrd: journal write: %w", err)
			}
			s.jr.size += int64(len(rec))
		} else if err := s.jr.append(rec); err != nil {
			return err
		}
		s.jbuf = s.jbuf[:0]
		s.since++
	}
	if s.since >= s.cfg.CheckpointEvery || s.jr.size >= s.cfg.CheckpointBytes {
		return s.checkpointLocked(ctx)
	}
	return nil
}

// Checkpoint writes every update so far into the files (and empties the
// journal).
func (s *Store) Checkpoint(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.commitLocked(ctx); err != nil {
		return err
	}
	return s.checkpointLocked(ctx)
}

// checkpointLocked writes the changed files: state slots, sync, rows,
// sync; then the journal is emptied.
func (s *Store) checkpointLocked(ctx context.Context) error {
	if len(s.dirty) == 0 {
		return s.resetJournal()
	}
	// Every changed file's state slot (naming its new rows and the rows
	// of its previous slot, which are written to the archives in the same
	// phase), then one sync. A file whose rows overflow its redo room is
	// rewritten whole and is then clean.
	if err := parallel(ctx, len(s.dirty), func(i int) error {
		_, err := s.dirty[i].writeSlot()
		return err
	}); err != nil {
		return err
	}
	var written []*File
	for _, f := range s.dirty {
		if f.dirty {
			written = append(written, f)
		}
	}
	if err := s.sync(written); err != nil {
		return err
	}
	for _, f := range written {
		f.slotDurable()
	}
	s.dirty = s.dirty[:0]
	return s.resetJournal()
}

func (s *Store) resetJournal() error {
	s.since = 0
	if s.jr == nil || s.jr.size == 0 {
		return nil
	}
	return s.jr.reset()
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
	ctx := context.Background()
	err := s.commitLocked(ctx)
	if err == nil {
		err = s.checkpointLocked(ctx)
	}
	if err == nil {
		// Leave the archives complete: write the rows the last slots name.
		var files []*File
		for _, f := range s.files {
			if len(f.carried) > 0 {
				files = append(files, f)
			}
		}
		err = parallel(ctx, len(files), func(i int) error { return files[i].flushCarried() })
		if err == nil {
			err = s.sync(files)
		}
	}
	s.closeFiles()
	s.files, s.shut = nil, true
	return err
}

// parallel runs fn(0..n-1) on a few goroutines: the writes of a
// checkpoint are independent system calls.
func parallel(ctx context.Context, n int, fn func(int) error) error {
	const workers = 4
	if n < 64 {
		for i := 0; i < n; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		return ctx.Err()
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
				if i%1024 == 0 && ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
