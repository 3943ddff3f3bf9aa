package rrd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestStoreJournalCrash: a store that dies without closing (no checkpoint
// since several commits) comes back with every committed update, nothing
// uncommitted, and a torn journal tail is ignored.
func TestStoreJournalCrash(t *testing.T) {
	for _, c := range []struct {
		torn  bool
		every int
	}{{false, 1000}, {true, 1000}, {false, 7}, {true, 3}} {
		torn := c.torn
		t.Run(fmt.Sprintf("torn=%v,checkpoint-every=%d", c.torn, c.every), func(t *testing.T) {
			dir := t.TempDir()
			cfg := DefaultStoreConfig(dir)
			cfg.CheckpointEvery = c.every
			s, err := OpenStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			spec := testSpec(t)
			start := Time{Sec: 1700000000}
			refs := map[string]*RRD{}
			for i := 0; i < 5; i++ {
				name := fmt.Sprintf("n%d.rrd", i)
				if err := s.Create(name, spec, start); err != nil {
					t.Fatal(err)
				}
				refs[name], _ = New(spec, start)
			}
			ctx := context.Background()
			now := start.Sec
			for round := 0; round < 40; round++ {
				now += 10
				for name, r := range refs {
					v := []Value{Float(float64(round)), Uint(uint64(round * 77))}
					if err := s.Update(name, Time{Sec: now}, v...); err != nil {
						t.Fatal(err)
					}
					r.Update(Time{Sec: now}, v...)
				}
				if round == 20 {
					if err := s.Checkpoint(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// Uncommitted: must not survive.
			for name := range refs {
				s.Update(name, Time{Sec: now + 10}, Float(1), Uint(1))
			}
			s.closeFiles() // the crash: no commit, no checkpoint
			if torn {
				jp := filepath.Join(dir, fmt.Sprintf(journalFmt, 0))
				f, _ := os.OpenFile(jp, os.O_WRONLY|os.O_APPEND, 0)
				f.Write([]byte("JRNL\x40\x00\x00\x00garbage"))
				f.Close()
			}
			s2, err := OpenStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			for name, r := range refs {
				last, _ := s2.Last(name)
				if last != r.Last() {
					t.Fatalf("%s: last update %v after recovery, want %v", name, last, r.Last())
				}
				got := fetchAll(t, func(cf CF, a, b int64, res uint64) (*FetchResult, error) { return s2.Fetch(name, cf, a, b, res) }, now)
				if err := sameFetches(got, fetchAll(t, r.Fetch, now)); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "journal-*"))
			for _, p := range segs {
				if st, _ := os.Stat(p); st.Size() != 0 || filepath.Ext(p) != ".wal" {
					t.Errorf("%s holds %d bytes after recovery, want an empty .wal (checkpointed)", p, st.Size())
				}
			}
		})
	}
}

// TestStoreReshard: journals a crash left under one shard count replay
// under another.
func TestStoreReshard(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultStoreConfig(dir)
	cfg.Shards, cfg.CheckpointEvery = 4, 1000
	s, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t)
	start := Time{Sec: 1700000000}
	ctx := context.Background()
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("e%d.rrd", i)
		if err := s.Create(name, spec, start); err != nil {
			t.Fatal(err)
		}
		for k := int64(1); k <= 5; k++ {
			if err := s.Update(name, Time{Sec: start.Sec + 10*k}, Float(float64(k)), Uint(uint64(k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s.closeFiles() // crash
	cfg.Shards = 1
	s2, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := 0; i < 12; i++ {
		last, err := s2.Last(fmt.Sprintf("e%d.rrd", i))
		if err != nil || last.Sec != start.Sec+50 {
			t.Fatalf("e%d.rrd: last %v, %v; want %d", i, last, err, start.Sec+50)
		}
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "journal-[1-9]*")); len(segs) != 0 {
		t.Errorf("segments of the old shards left: %v", segs)
	}
}

// TestStoreUpdateBatchParallel: a batch spread over shards applies every
// file's updates in order and reports the bad ones.
func TestStoreUpdateBatchParallel(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultStoreConfig(dir)
	cfg.Shards = 3
	s, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	spec := testSpec(t)
	start := Time{Sec: 1700000000}
	refs := map[string]*RRD{}
	for i := 0; i < 40; i++ {
		name := fmt.Sprintf("b%d.rrd", i)
		if err := s.Create(name, spec, start); err != nil {
			t.Fatal(err)
		}
		refs[name], _ = New(spec, start)
	}
	var batch []Update
	for k := int64(1); k <= 10; k++ {
		for i := 0; i < 40; i++ {
			name := fmt.Sprintf("b%d.rrd", i)
			v := []Value{Float(float64(int64(i)*k) / 3), Uint(uint64(int64(i) * k * 100))}
			batch = append(batch, Update{Name: name, Time: Time{Sec: start.Sec + 10*k}, Values: v})
			refs[name].Update(Time{Sec: start.Sec + 10*k}, v...)
		}
	}
	batch = append(batch, Update{Name: "b3.rrd", Time: Time{Sec: 5}, Values: []Value{Float(1), Uint(1)}})
	if err := s.UpdateBatch(batch); !errors.Is(err, ErrTime) {
		t.Fatalf("batch with an update in the past: %v, want ErrTime", err)
	}
	if err := s.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, r := range refs {
		got := fetchAll(t, func(cf CF, a, b int64, res uint64) (*FetchResult, error) { return s.Fetch(name, cf, a, b, res) }, start.Sec+100)
		if err := sameFetches(got, fetchAll(t, r.Fetch, start.Sec+100)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
