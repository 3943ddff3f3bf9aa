package rrd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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
	// Shards spreads the files over this many independent parts (locks,
	// journals) so updates from several goroutines run in parallel (0: 1).
	Shards int
	Logger *slog.Logger // nil: discard
}

// DefaultStoreConfig returns the configuration for files in dir: journal
// on, a checkpoint every 30 commits or 256 MiB of journal.
func DefaultStoreConfig(dir string) StoreConfig {
	return StoreConfig{Dir: dir, Sync: SyncFS,
		Journal: true, CheckpointEvery: 30, CheckpointBytes: 256 << 20,
		Shards: min(runtime.GOMAXPROCS(0), 16)}
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
	if c.Shards < 0 || c.Shards > 256 {
		return fmt.Errorf("rrd: StoreConfig.Shards %d out of range 0..256", c.Shards)
	}
	if c.Journal && (c.CheckpointEvery < 1 || c.CheckpointBytes < 1) {
		return fmt.Errorf("rrd: StoreConfig.CheckpointEvery %d and CheckpointBytes %d must be positive with a journal", c.CheckpointEvery, c.CheckpointBytes)
	}
	return nil
}

// shard is a part of a Store: its own lock, files, dirty list and journal.
type shard struct {
	idx    int
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

// openShard opens shard idx of the store in cfg.Dir.
func openShard(cfg StoreConfig, idx int, log *slog.Logger) (*shard, error) {
	d, err := os.Open(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("rrd: store: %w", err)
	}
	s := &shard{idx: idx, cfg: cfg, log: log, files: map[string]*File{}, syncf: d}
	if cfg.Journal {
		if s.jr, err = openJournal(s.journalPath(false)); err != nil {
			d.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *shard) journalPath(old bool) string {
	if old {
		return filepath.Join(s.cfg.Dir, fmt.Sprintf(journalOldFmt, s.idx))
	}
	return filepath.Join(s.cfg.Dir, fmt.Sprintf(journalFmt, s.idx))
}

// replayEntry applies one journal entry unless the file already holds it.
func (s *shard) replayEntry(e journalEntry) (applied bool) {
	f, err := s.fileLocked(e.name)
	if err != nil {
		s.log.Warn("journal names a file that does not open", "file", e.name, "err", err)
		return false
	}
	if !f.Last().Before(e.t) {
		return false // already in the file
	}
	was := f.dirty
	if err := f.Update(e.t, e.vals...); err != nil {
		s.log.Warn("journal update refused", "file", e.name, "err", err)
		return false
	}
	if !was {
		s.dirty = append(s.dirty, f)
	}
	return true
}

func (s *shard) closeFiles() {
	if s.ckpt != nil {
		<-s.ckpt.done
	}
	for _, f := range s.files {
		f.f.Close()
	}
	if s.jr != nil {
		s.jr.inflight.Wait()
		s.jr.f.Close()
	}
	s.syncf.Close()
}

func (s *shard) path(name string) (string, error) {
	if name == "" || filepath.IsAbs(name) || strings.Contains(name, "..") || filepath.Clean(name) != name {
		return "", fmt.Errorf("rrd: store: bad file name %q", name)
	}
	return filepath.Join(s.cfg.Dir, name), nil
}

// Create creates a file (atomically, replacing nothing) and keeps it open.
func (s *shard) Create(name string, spec Spec, start Time) error {
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
func (s *shard) file(name string) (*File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fileLocked(name)
}

func (s *shard) fileLocked(name string) (*File, error) {
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
func (s *shard) Open(name string) error {
	_, err := s.file(name)
	return err
}

// Exists reports whether the file exists (open or on disk).
func (s *shard) Exists(name string) bool {
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
func (s *shard) Update(name string, t Time, vals ...Value) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(name, t, vals)
}

func (s *shard) updateLocked(name string, t Time, vals []Value) error {
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

// Commit makes every update since the last commit durable.
// Commit makes the shard's updates so far durable. The journal record is
// written under the lock and synced outside it, so updates (and other
// commits) go on meanwhile.
func (s *shard) Commit(ctx context.Context) error {
	s.mu.Lock()
	j, err := s.appendLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := syncAppended(j); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.afterCommitLocked(ctx)
}

// appendLocked writes the updates since the last commit to the journal
// and returns the journal to sync (nil: nothing to sync). The caller
// calls inflight.Done on it after syncing.
func (s *shard) appendLocked() (*journal, error) {
	if s.broken != nil {
		return nil, s.broken
	}
	if s.jr == nil || len(s.jbuf) == 0 {
		return nil, nil
	}
	rec := journalRecord(make([]byte, 0, len(s.jbuf)+12), s.jbuf)
	if _, err := s.jr.f.WriteAt(rec, s.jr.size); err != nil {
		return nil, fmt.Errorf("rrd: journal write: %w", err)
	}
	s.jr.size += int64(len(rec))
	s.jbuf = s.jbuf[:0]
	s.since++
	if s.cfg.Sync == SyncNone {
		return nil, nil
	}
	s.jr.inflight.Add(1)
	return s.jr, nil
}

// syncAppended syncs the record appendLocked wrote (j nil: nothing).
func syncAppended(j *journal) error {
	if j == nil {
		return nil
	}
	err := fdatasync(j.f)
	j.inflight.Done()
	if err != nil {
		return fmt.Errorf("rrd: journal sync: %w", err)
	}
	return nil
}

// commitLocked commits with the lock held throughout.
func (s *shard) commitLocked(ctx context.Context) error {
	j, err := s.appendLocked()
	if err != nil {
		return err
	}
	if err := syncAppended(j); err != nil {
		return err
	}
	return s.afterCommitLocked(ctx)
}

// afterCommitLocked finishes a background checkpoint that is done and
// starts one when it is time.
func (s *shard) afterCommitLocked(ctx context.Context) error {
	if s.broken != nil {
		return s.broken
	}
	if s.jr == nil {
		return s.checkpointLocked(ctx, false)
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
func (s *shard) Checkpoint(ctx context.Context) error {
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
func (s *shard) checkpointLocked(ctx context.Context, background bool) error {
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
		old := s.journalPath(true)
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
func (s *shard) finishCheckpoint(wait bool) error {
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
func (s *shard) rotateJournal() error {
	cur := s.journalPath(false)
	if err := os.Rename(cur, s.journalPath(true)); err != nil {
		return fmt.Errorf("rrd: rotate journal: %w", err)
	}
	// Commits may still be syncing the old segment: close it after them.
	old := s.jr
	go func() {
		old.inflight.Wait()
		old.f.Close()
	}()
	jr, err := openJournal(cur)
	if err != nil {
		return err
	}
	s.jr = jr
	return syncDir(s.cfg.Dir)
}

func (s *shard) resetJournal() error {
	s.since = 0
	if s.jr == nil {
		return nil
	}
	if s.jr.size > 0 {
		if err := s.jr.reset(); err != nil {
			return err
		}
	}
	if err := os.Remove(s.journalPath(true)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rrd: remove journal segment: %w", err)
	}
	return nil
}

func (s *shard) sync(files []*File) error {
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
func (s *shard) Fetch(name string, cf CF, start, end int64, res uint64) (*FetchResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.fileLocked(name)
	if err != nil {
		return nil, err
	}
	return f.Fetch(cf, start, end, res)
}

// Last returns a file's last update time.
func (s *shard) Last(name string) (Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.fileLocked(name)
	if err != nil {
		return Time{}, err
	}
	return f.Last(), nil
}

// Close commits and closes every file.
func (s *shard) Close() error {
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
