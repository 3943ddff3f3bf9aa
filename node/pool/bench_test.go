package pool

import (
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
)

// Benchmarks of 4 KiB positioned I/O on allocated chunks of a volume, next
// to the same I/O on a plain file, serial and from parallel goroutines.

const benchSize = 64 * MiB

type rw interface {
	io.ReaderAt
	io.WriterAt
}

func benchTargets(b *testing.B) map[string]rw {
	p, _ := newPool(b, benchSize+8*MiB, FormatOptions{})
	v, err := p.Create("bench", benchSize, false)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, MiB)
	for off := int64(0); off < benchSize; off += MiB {
		mustWrite(b, v, buf, off)
	}
	f, err := os.OpenFile(newDrive(b, benchSize), os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	for off := int64(0); off < benchSize; off += MiB {
		f.WriteAt(buf, off)
	}
	return map[string]rw{"volume": v, "file": f}
}

func bench4K(b *testing.B, write bool) {
	targets := benchTargets(b)
	for _, name := range []string{"file", "volume"} {
		target := targets[name]
		op := func(buf []byte, off int64) error {
			if write {
				_, err := target.WriteAt(buf, off)
				return err
			}
			_, err := target.ReadAt(buf, off)
			return err
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4096)
			buf := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				if err := op(buf, rng.Int64N(benchSize/4096)*4096); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.SetBytes(4096)
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
				for pb.Next() {
					if err := op(buf, rng.Int64N(benchSize/4096)*4096); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkWrite4K(b *testing.B) { bench4K(b, true) }
func BenchmarkRead4K(b *testing.B)  { bench4K(b, false) }

// BenchmarkAllocate4K writes 4 KiB into chunks never written before, so
// every write takes a chunk (64 KiB chunks), serially and in parallel.
func BenchmarkAllocate4K(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			p, _ := newPool(b, 1*GiB, FormatOptions{ChunkSize: 64 * KiB})
			v, err := p.Create("bench", 1<<40, false)
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetBytes(4096)
			op := func(buf []byte) {
				c := next.Add(1) - 1
				if c >= p.Stats().Chunks {
					return // pool full: nothing left to measure
				}
				if _, err := v.WriteAt(buf, c*64*KiB); err != nil {
					b.Error(err)
				}
			}
			if !parallel {
				buf := make([]byte, 4096)
				for b.Loop() {
					op(buf)
				}
				return
			}
			b.SetParallelism(16) // many requests in flight, as from an AoE export
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				for pb.Next() {
					op(buf)
				}
			})
		})
	}
}
