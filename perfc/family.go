package perfc

import "sync"

// Family hands out metrics named prefix.<key>, one per key (an RPC method,
// an AoE command type), made on first use and cached: With costs a map
// lookup, so look a key up once per call, not once per frame. Keys must
// come from a small fixed set (the handlers registered, the command types),
// never straight from the wire: each new key is a new metric. A key that is
// not a name segment ([a-z][a-z0-9_]*) counts under prefix.other. Safe for
// concurrent use; a nil *Family hands out nil metrics.
type Family[M any] struct {
	prefix string
	make   func(name string) M
	m      sync.Map // key → M
}

// With returns the metric for key.
func (f *Family[M]) With(key string) M {
	if f == nil {
		var zero M
		return zero
	}
	if v, ok := f.m.Load(key); ok {
		return v.(M)
	}
	seg := key
	if !validSegment(seg) {
		seg = "other"
	}
	v, _ := f.m.LoadOrStore(key, f.make(f.prefix+"."+seg))
	return v.(M)
}

// CounterFamily returns a family of counters prefix.<key> sharing unit and
// description ("RPCs made, per method"). It panics like Counter on a bad
// prefix, unit or description.
func (s *Set) CounterFamily(prefix, unit, desc string) *Family[*Counter] {
	if s == nil {
		return nil
	}
	if err := s.check(&entry{name: prefix, unit: unit, desc: desc}); err != nil {
		panic(err)
	}
	return &Family[*Counter]{prefix: prefix, make: func(name string) *Counter { return s.Counter(name, unit, desc) }}
}

// HistogramFamily returns a family of histograms prefix.<key>, like
// CounterFamily; nil bounds means LatencyBounds().
func (s *Set) HistogramFamily(prefix, unit, desc string, bounds []int64) *Family[*Histogram] {
	if s == nil {
		return nil
	}
	if err := s.check(&entry{name: prefix, unit: unit, desc: desc}); err != nil {
		panic(err)
	}
	if bounds == nil {
		bounds = LatencyBounds()
	}
	if err := checkBounds(bounds); err != nil {
		panic(err)
	}
	bounds = append([]int64(nil), bounds...)
	return &Family[*Histogram]{prefix: prefix, make: func(name string) *Histogram { return s.Histogram(name, unit, desc, bounds) }}
}
