package rrd

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkStoreUpdate is the in-memory part of a series update through a
// Store (lock, engine, journal entry); bench/rrd measures the whole path.
func BenchmarkStoreUpdate(b *testing.B) {
	b.Run("1ds", func(b *testing.B) { benchStoreUpdate(b, 1) })
	b.Run("20ds", func(b *testing.B) { benchStoreUpdate(b, 20) })
}

func benchStoreUpdate(b *testing.B, nds int) {
	dir := b.TempDir()
	cfg := DefaultStoreConfig(dir)
	cfg.Sync = SyncNone
	cfg.CheckpointEvery = 1 << 30
	s, err := OpenStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var dss []string
	for i := 0; i < nds; i++ {
		dss = append(dss, fmt.Sprintf("DS:v%d:GAUGE:20:U:U", i))
	}
	spec := Spec{Step: 10, DS: mustDS(b, dss...), RRA: mustRRA(b, "RRA:AVERAGE:0.5:1:360", "RRA:AVERAGE:0.5:6:240", "RRA:MAX:0.5:6:240")}
	const n = 1000
	names := make([]string, n)
	img := ""
	for i := range names {
		names[i] = fmt.Sprintf("s%d.rrd", i)
		if i == 0 {
			if err := s.Create(names[0], spec, Time{Sec: 1700000000}); err != nil {
				b.Fatal(err)
			}
			x, _ := os.ReadFile(filepath.Join(dir, names[0]))
			img = string(x)
			continue
		}
		os.WriteFile(filepath.Join(dir, names[i]), []byte(img), 0o644)
		s.Open(names[i])
	}
	vals := make([]Value, nds)
	for i := range vals {
		vals[i] = Float(float64(i))
	}
	b.ResetTimer()
	for k := 0; k < b.N; k++ {
		i := k % n
		if err := s.Update(names[i], Time{Sec: 1700000000 + int64(k/n+1)*10}, vals...); err != nil {
			b.Fatal(err)
		}
		if i == n-1 && (k/n)%100 == 99 {
			for _, sh := range s.shards {
				sh.mu.Lock()
				sh.jbuf = sh.jbuf[:0]
				for _, f := range sh.dirty {
					f.pend, f.pendVals, f.dirty = f.pend[:0], f.pendVals[:0], false
				}
				sh.dirty = sh.dirty[:0]
				sh.mu.Unlock()
			}
		}
	}
}
