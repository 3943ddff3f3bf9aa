package linktest

import (
	"testing"

	"github.com/mvstack/mvstack/proto"
)

// BenchmarkUnicast measures 64-byte frames through the switch, one writer
// and one reader, reported as frames/s.
func BenchmarkUnicast(b *testing.B) {
	for _, tc := range []struct {
		name string
		hook Hook
	}{
		{"clean", nil},
		{"faults", Faults{Loss: 0.01, Duplicate: 0.01, Seed: 1}.Hook()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := NewSwitch(Config{Hook: tc.hook})
			defer s.Close()
			a, r := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
			done := make(chan int)
			go func() {
				buf := make([]byte, 1500)
				n := 0
				for {
					if _, _, _, err := r.ReadFrom(buf); err != nil {
						done <- n
						return
					}
					n++
				}
			}()
			p := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				a.WriteTo(p, macB)
			}
			r.Close()
			got := <-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(got)/float64(b.N), "read/sent")
		})
	}
}

// BenchmarkBroadcast measures one frame flooded to 8 stations.
func BenchmarkBroadcast(b *testing.B) {
	s := NewSwitch(Config{QueueLen: 1})
	defer s.Close()
	a := s.Link(macA, proto.EtherTypeControl)
	for i := range 8 {
		s.Link(proto.MAC{0x02, 1, 0, 0, 0, byte(i)}, proto.EtherTypeControl)
	}
	p := make([]byte, 64)
	b.ReportAllocs()
	for range b.N {
		a.WriteTo(p, proto.Broadcast)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
