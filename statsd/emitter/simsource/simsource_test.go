package simsource

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// The simulated figures are what real ones would be: counters never go
// back, a vCPU never runs faster than the clock, memory stays under its
// max, and nodes with different seeds differ.
func TestSimulatedFiguresAreConsistent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := New(Config{Domains: 3, VCPUs: 2, VIFs: 2, VBDs: 2, Seed: 1}), New(Config{Domains: 3, VCPUs: 2, VIFs: 2, VBDs: 2, Seed: 2})
		ctx := context.Background()
		prev, _ := a.Domains(ctx)
		start := time.Now()
		for range 20 {
			time.Sleep(7 * time.Second)
			cur, err := a.Domains(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for d := range cur {
				c, p := cur[d], prev[d]
				if c.Memory.Current > c.Memory.Max {
					t.Errorf("dn%d memory %d > max %d", c.ID, c.Memory.Current, c.Memory.Max)
				}
				for i, v := range c.VCPUs {
					if v.Time < p.VCPUs[i].Time || v.Time > time.Since(start) {
						t.Errorf("dn%d vcpu %d time %v after %v (wall %v)", c.ID, i, v.Time, p.VCPUs[i].Time, time.Since(start))
					}
				}
				for i, v := range c.VIFs {
					o := p.VIFs[i]
					if v.RxBytes < o.RxBytes || v.TxPackets < o.TxPackets || v.RxDrops < o.RxDrops || v.TxErrors < o.TxErrors {
						t.Errorf("dn%d vif %d went back: %+v after %+v", c.ID, i, v, o)
					}
				}
				for i, v := range c.VBDs {
					o := p.VBDs[i]
					if v.ReadReqs < o.ReadReqs || v.WriteSectors < o.WriteSectors || v.Device == "" || v.Backing == "" {
						t.Errorf("dn%d vbd %d: %+v after %+v", c.ID, i, v, o)
					}
				}
			}
			prev = cur
		}
		other, _ := b.Domains(ctx)
		if other[0].UUID == prev[0].UUID || other[0].VIFs[0].RxBytes == prev[0].VIFs[0].RxBytes {
			t.Errorf("seeds 1 and 2 give the same node")
		}
		if p, _ := a.Pools(ctx); len(p) != 1 || p[0].Guests != 3 {
			t.Errorf("pools %+v", p)
		}
	})
}
