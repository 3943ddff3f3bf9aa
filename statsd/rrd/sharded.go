package rrd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Store holds many RRD files open and commits their updates together:
// for the aggregator, which updates thousands of series per interval.
// Updates are applied in memory; Commit appends them to a journal and
// syncs it once; checkpoints write the files (see docs/rrd.md). The
// files are spread over shards, each with its own lock and journal, so
// updates from several goroutines run in parallel. Store is safe for
// concurrent use.
type Store struct {
	cfg    StoreConfig
	shards []*shard
}

var _ Backend = (*Store)(nil)

// OpenStore opens (and creates) the directory, replays what journals a
// crash left and checkpoints it.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("rrd: store: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := max(cfg.Shards, 1)
	s := &Store{cfg: cfg}
	for i := 0; i < n; i++ {
		sh, err := openShard(cfg, i, log)
		if err != nil {
			s.closeFiles()
			return nil, err
		}
		s.shards = append(s.shards, sh)
	}
	if cfg.Journal {
		if err := s.replay(log); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	return s, nil
}

// replay applies every journal segment on disk (of any shard count) and
// checkpoints, so every journal is empty after.
func (s *Store) replay(log *slog.Logger) error {
	var segs []string
	for _, pat := range []string{"journal-*.old", "journal-*.wal"} {
		m, err := filepath.Glob(filepath.Join(s.cfg.Dir, pat))
		if err != nil {
			return err
		}
		segs = append(segs, m...)
	}
	// A shard's .old segment comes before its .wal.
	sort.Strings(segs)
	applied, skipped, found := 0, 0, false
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("rrd: journal: %w", err)
		}
		if len(b) == 0 {
			continue
		}
		found = true
		if err := readJournal(bytes.NewReader(b), func(e journalEntry) error {
			if s.shardFor(e.name).replayEntry(e) {
				applied++
			} else {
				skipped++
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if found {
		log.Info("journal replayed", "applied", applied, "skipped", skipped)
	}
	for _, sh := range s.shards {
		if err := sh.checkpointLocked(context.Background(), false); err != nil {
			return err
		}
	}
	// Segments of shards a previous run had and this one does not.
	for _, p := range segs {
		var idx int
		var ext string
		if _, err := fmt.Sscanf(filepath.Base(p), "journal-%d.%s", &idx, &ext); err == nil && idx >= len(s.shards) {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("rrd: journal: %w", err)
			}
		}
	}
	return nil
}

// shardFor picks a file's shard.
func (s *Store) shardFor(name string) *shard { return s.shards[s.shardIndex(name)] }

// shardIndex is an FNV-1a hash of the name modulo the shard count.
func (s *Store) shardIndex(name string) int {
	if len(s.shards) == 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % uint32(len(s.shards)))
}

// Create creates a file (atomically, replacing nothing) and keeps it open.
func (s *Store) Create(name string, spec Spec, start Time) error {
	return s.shardFor(name).Create(name, spec, start)
}

// Open opens a file ahead of its first update (the aggregator keeps its
// files open; the first update opens a file otherwise).
func (s *Store) Open(name string) error { return s.shardFor(name).Open(name) }

// Exists reports whether the file exists (open or on disk).
func (s *Store) Exists(name string) bool { return s.shardFor(name).Exists(name) }

// Update applies one update to a file in memory; Commit makes it durable.
func (s *Store) Update(name string, t Time, vals ...Value) error {
	return s.shardFor(name).Update(name, t, vals...)
}

// Update is one series update for UpdateBatch.
type Update struct {
	Name   string
	Time   Time
	Values []Value
}

// UpdateBatch applies many updates: each shard takes its share under
// one lock, the shards in parallel. Updates of one file apply in their
// order. It applies every update it can and returns the errors of the
// others joined.
func (s *Store) UpdateBatch(us []Update) error {
	if len(s.shards) == 1 || len(us) < 256 {
		var errs []error
		for _, u := range us {
			if err := s.Update(u.Name, u.Time, u.Values...); err != nil {
				errs = append(errs, err)
			}
		}
		return joinErrs(errs)
	}
	groups := make([][]int32, len(s.shards))
	for i := range us {
		k := s.shardIndex(us[i].Name)
		groups[k] = append(groups[k], int32(i))
	}
	return s.each(func(sh *shard) error {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		var errs []error
		for _, i := range groups[sh.idx] {
			u := &us[i]
			if err := sh.updateLocked(u.Name, u.Time, u.Values); err != nil {
				errs = append(errs, err)
			}
		}
		return joinErrs(errs)
	})
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

// each runs fn on every shard at once and joins the errors.
func (s *Store) each(fn func(*shard) error) error {
	if len(s.shards) == 1 {
		return fn(s.shards[0])
	}
	errs := make([]error, len(s.shards))
	var wg sync.WaitGroup
	for i, sh := range s.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(sh)
		}()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return joinErrs(out)
}

// Commit makes every update so far durable (each shard appends its
// updates to its journal and syncs it, all at once).
func (s *Store) Commit(ctx context.Context) error {
	return s.each(func(sh *shard) error { return sh.Commit(ctx) })
}

// Checkpoint writes every update so far into the files and waits until
// they are durable (the journals are then empty).
func (s *Store) Checkpoint(ctx context.Context) error {
	return s.each(func(sh *shard) error { return sh.Checkpoint(ctx) })
}

// Fetch fetches from a file.
func (s *Store) Fetch(name string, cf CF, start, end int64, res uint64) (*FetchResult, error) {
	return s.shardFor(name).Fetch(name, cf, start, end, res)
}

// Last returns a file's last update time.
func (s *Store) Last(name string) (Time, error) { return s.shardFor(name).Last(name) }

// Close checkpoints, leaves every file's archives complete and closes
// them.
func (s *Store) Close() error {
	return s.each(func(sh *shard) error { return sh.Close() })
}

// closeFiles closes without committing (tests use it as a crash).
func (s *Store) closeFiles() {
	for _, sh := range s.shards {
		sh.closeFiles()
	}
}
