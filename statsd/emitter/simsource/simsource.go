// Package simsource is a synthetic emitter.DomainSource: domains whose
// counters grow consistently with time (CPU time never faster than the
// wall clock, memory never above its max, counters never backwards), for
// tests, benchmarks and labs without a hypervisor.
package simsource

import (
	"context"
	"sync"
	"time"

	"github.com/mvstack/mvstack/statsd/emitter"
)

// Config shapes the simulated node.
type Config struct {
	Domains, VCPUs, VIFs, VBDs int
	// Seed varies the figures between nodes.
	Seed uint64
	// Now gives the sample time; nil: time.Now.
	Now func() time.Time
}

// DefaultConfig is two domains of two vCPUs, one VIF and two VBDs each.
func DefaultConfig() Config { return Config{Domains: 2, VCPUs: 2, VIFs: 1, VBDs: 2} }

// Source is the simulated node.
type Source struct {
	cfg   Config
	mu    sync.Mutex
	start time.Time
}

var (
	_ emitter.DomainSource = (*Source)(nil)
	_ emitter.PoolSource   = (*Source)(nil)
)

// New returns a Source whose counters start at zero now.
func New(cfg Config) *Source {
	s := &Source{cfg: cfg}
	s.start = s.now()
	return s
}

func (s *Source) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Domains implements emitter.DomainSource.
func (s *Source) Domains(context.Context) ([]emitter.Domain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	el := now.Sub(s.start)
	sec := uint64(el / time.Second)
	var out []emitter.Domain
	for d := range s.cfg.Domains {
		k := s.cfg.Seed*31 + uint64(d) + 1
		dom := emitter.Domain{ID: d + 1, At: now}
		for i := range dom.UUID {
			dom.UUID[i] = byte(k*7 + uint64(i)*13)
		}
		dom.UUID[6] = dom.UUID[6]&0x0f | 0x40
		dom.UUID[8] = dom.UUID[8]&0x3f | 0x80
		for v := range s.cfg.VCPUs {
			share := time.Duration(10 + (k+uint64(v))%60) // percent busy
			dom.VCPUs = append(dom.VCPUs, emitter.VCPU{ID: v, Time: el * share / 100})
		}
		max := uint64(1+k%4) << 30
		dom.Memory = emitter.Memory{Max: max, Current: max/2 + (sec*(1<<20))%(max/2)}
		for v := range s.cfg.VIFs {
			r := k + uint64(v)
			dom.VIFs = append(dom.VIFs, emitter.VIF{ID: v,
				RxBytes: sec * 1500 * (10 + r), RxPackets: sec * (10 + r), RxErrors: sec / 60, RxDrops: sec / 30,
				TxBytes: sec * 800 * (5 + r), TxPackets: sec * (5 + r), TxErrors: sec / 120, TxDrops: sec / 90})
		}
		for v := range s.cfg.VBDs {
			r := k + uint64(v)
			backing := "nbd"
			if v%2 == 1 {
				backing = "file"
			}
			dom.VBDs = append(dom.VBDs, emitter.VBD{ID: v, Backing: backing, Device: deviceName(v),
				Outstanding: (sec + r) % 8, ReadReqs: sec * (20 + r), WriteReqs: sec * (10 + r),
				ReadSectors: sec * 8 * (20 + r), WriteSectors: sec * 8 * (10 + r)})
		}
		out = append(out, dom)
	}
	return out, nil
}

// Pools implements emitter.PoolSource: one pool holding every domain.
func (s *Source) Pools(context.Context) ([]emitter.Pool, error) {
	return []emitter.Pool{{ID: 0, Load: float64(s.cfg.Domains*s.cfg.VCPUs) * 0.35, CPUs: 4, Guests: s.cfg.Domains}}, nil
}

// deviceName is the guest name of disk i: vda, vdb, …
func deviceName(i int) string {
	name := ""
	for i++; i > 0; i = (i - 1) / 26 {
		name = string(rune('a'+(i-1)%26)) + name
	}
	return "vd" + name
}
