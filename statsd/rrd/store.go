package rrd

import (
	"bytes"
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
	cfg    StoreConfig
	log    *slog.Logger
	mu     sync.Mutex
	files  map[string]*File
	dirty  []*File
	syncf  *os.File // any file on the filesystem, for syncfs
	shut   bool
	jr     *journal // nil without a journal
	ckpt   *checkpointRun
	broken error  // a failed checkpoint sync: the store must be reopened
	jbuf   []byte // journal entries since the last commit
	since  int    // commits since the last checkpoint
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
	old, err := os.ReadFile(filepath.Join(s.cfg.Dir, journalOld))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rrd: journal: %w", err)
	}
	if s.jr.size == 0 && len(old) == 0 {
		return s.resetJournal()
	}
	applied, skipped := 0, 0
	apply := func(e journalEntry) error {
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
	}
	// The older segment first: a checkpoint that covered it did not finish.
	if err := readJournal(bytes.NewReader(old), apply); err != nil {
		return err
	}
	if err := readJournal(io.NewSectionReader(s.jr.f, 0, s.jr.size), apply); err != nil {
		return err
	}
	s.log.Info("journal replayed", "applied", applied, "skipped", skipped)
	return s.checkpointLocked(context.Background(), false)
}

func (s *Store) closeFiles() {
	if s.ckpt != nil {
		<-s.ckpt.done
	}
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
	if s.broken != nil {
		return s.broken
	}
	if s.jr == nil {
		return s.checkpointLocked(ctx, false)
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
	if err := s.finishCheckpoint(false); err != nil {
		return err
	}
	if s.since >= s.cfg.CheckpointEvery || s.jr.size >= s.cfg.CheckpointBytes {
		return s.checkpointLocked(ctx, true)
	}
	return nil
}

// Checkpoint writes every update so far into the files and waits until
// they are durable (the journal is then empty).
func (s *Store) Checkpoint(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.commitLocked(ctx); err != nil {
		return err
	}
	return s.checkpointLocked(ctx, false)
}

// checkpointRun is a checkpoint whose sync runs in the background while
// updates go on.
type checkpointRun struct {
	done    chan struct{}
	err     error
	files   []*File // their slots wait for the sync
	journal string  // the journal segment the checkpoint covers; removed after
}

// checkpointLocked writes every changed file's state slot (naming its new
// rows and the rows of earlier slots; those go to the archives once the
// redo log is half full, in the same sync phase), then syncs once. A file
// whose rows overflow its redo room is rewritten whole instead. With
// background, the sync runs while updates go on, and the journal rotates
// so commits continue into a new segment; the next checkpoint waits for
// it. Without, it returns once everything is durable.
func (s *Store) checkpointLocked(ctx context.Context, background bool) error {
	if err := s.finishCheckpoint(true); err != nil {
		return err
	}
	s.since = 0
	if len(s.dirty) == 0 {
		return s.resetJournal()
	}
	dirty := s.dirty
	rewrote := make([]bool, len(dirty))
	if err := parallel(ctx, len(dirty), func(i int) error {
		var err error
		rewrote[i], err = dirty[i].writeSlot()
		return err
	}); err != nil {
		s.broken = err
		return err
	}
	run := &checkpointRun{done: make(chan struct{})}
	for i, f := range dirty {
		if !rewrote[i] {
			run.files = append(run.files, f)
		}
	}
	s.dirty = nil
	if s.jr != nil && s.jr.size > 0 {
		old := filepath.Join(s.cfg.Dir, journalOld)
		if _, err := os.Stat(old); err == nil || !background {
			// An older segment is still there (recovery), or the caller
			// waits anyway: sync, then empty the journal in place.
			background = false
		} else {
			if err := s.rotateJournal(); err != nil {
				s.broken = err
				return err
			}
			run.journal = old
		}
	}
	s.ckpt = run
	go func() {
		run.err = s.sync(run.files)
		close(run.done)
	}()
	if background {
		return nil
	}
	if err := s.finishCheckpoint(true); err != nil {
		return err
	}
	return s.resetJournal()
}

// finishCheckpoint completes the checkpoint in flight once its sync is
// done (waiting for it when wait): the files' slots are durable, and the
// journal segment it covered goes.
func (s *Store) finishCheckpoint(wait bool) error {
	if s.broken != nil {
		return s.broken
	}
	run := s.ckpt
	if run == nil {
		return nil
	}
	if wait {
		<-run.done
	} else {
		select {
		case <-run.done:
		default:
			return nil
		}
	}
	s.ckpt = nil
	if run.err != nil {
		s.broken = fmt.Errorf("rrd: checkpoint sync failed, the store must be reopened: %w", run.err)
		return s.broken
	}
	for _, f := range run.files {
		f.slotDurable()
	}
	if run.journal != "" {
		if err := os.Remove(run.journal); err != nil {
			s.broken = fmt.Errorf("rrd: remove journal segment: %w", err)
			return s.broken
		}
	}
	return nil
}

// rotateJournal moves the journal aside (its updates are in the slots
// being synced) and starts a new one for the commits that follow.
func (s *Store) rotateJournal() error {
	cur := filepath.Join(s.cfg.Dir, journalName)
	if err := os.Rename(cur, filepath.Join(s.cfg.Dir, journalOld)); err != nil {
		return fmt.Errorf("rrd: rotate journal: %w", err)
	}
	s.jr.f.Close()
	jr, err := openJournal(cur)
	if err != nil {
		return err
	}
	s.jr = jr
	return syncDir(s.cfg.Dir)
}

func (s *Store) resetJournal() error {
	s.since = 0
	if s.jr == nil {
		return nil
	}
	if s.jr.size > 0 {
		if err := s.jr.reset(); err != nil {
			return err
		}
	}
	old := filepath.Join(s.cfg.Dir, journalOld)
	if err := os.Remove(old); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rrd: remove journal segment: %w", err)
	}
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
	ctx := context.Background()
	err := s.commitLocked(ctx)
	if err == nil {
		err = s.checkpointLocked(ctx, false)
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
