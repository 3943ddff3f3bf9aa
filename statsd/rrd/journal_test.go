package rrd

import (
	"context"
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
				jp := filepath.Join(dir, journalName)
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
			if st, _ := os.Stat(filepath.Join(dir, journalName)); st.Size() != 0 {
				t.Errorf("journal holds %d bytes after recovery, want 0 (checkpointed)", st.Size())
			}
		})
	}
}
