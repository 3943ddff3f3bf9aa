package perfc

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Errors returned by this package; compare with errors.Is.
var (
	// ErrInvalid: a bad name, unit, bound or configuration.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: a name is already registered as something else.
	ErrConflict = errors.New("already registered differently")
	// ErrNotFound: no metric or domain by that name.
	ErrNotFound = errors.New("not found")
)

// MaxShards is the most shards a counter may be spread over.
const MaxShards = 64

// Config configures a [Set] and the children it makes.
type Config struct {
	// Shards is how many cache-line-padded atomic words each counter and
	// histogram is spread over: a power of two from 1 to MaxShards. 1 makes
	// a counter one atomic word (the least memory, 64 bytes); more make
	// concurrent increments from many CPUs cheaper. Shards are picked by
	// hashing, so two busy goroutines share one with probability 1/Shards.
	// DefaultConfig takes four per CPU (GOMAXPROCS), from 8 up to 16:
	// bench/perfc shows a sharded increment costs the same as a one-shard
	// one when uncontended, and scales when every CPU increments.
	Shards int
}

// DefaultConfig returns the configuration NewSet uses for nil.
func DefaultConfig() Config {
	n := 8
	for n < 4*runtime.GOMAXPROCS(0) && n < 16 {
		n <<= 1
	}
	return Config{Shards: n}
}

// Validate reports a field out of bounds.
func (c Config) Validate() error {
	if c.Shards < 1 || c.Shards > MaxShards || c.Shards&(c.Shards-1) != 0 {
		return fmt.Errorf("perfc: Config.Shards = %d, want a power of two from 1 to %d: %w", c.Shards, MaxShards, ErrInvalid)
	}
	return nil
}

// Set holds named metrics and child sets (one per domain). All its methods
// are safe for concurrent use. Registering metrics takes a lock; using them
// does not. A nil *Set registers nothing and hands out nil metrics, whose
// methods do nothing.
type Set struct {
	cfg  Config
	path string // "" for a root, "dn5" or "dn5/x" below it

	mu       sync.Mutex
	metrics  map[string]*entry
	children map[string]*Set
	sources  map[*sourceEntry]struct{}
}

// entry is one registered metric.
type entry struct {
	name, unit, desc string
	kind             Kind
	counter          *Counter
	gauge            *Gauge
	gaugeFunc        func() int64
	hist             *Histogram
}

type sourceEntry struct {
	src   Source
	names []string
}

// A Source supplies metrics whose values are read when a dump is taken
// rather than counted in place: the PMU events of a domain's threads
// (package perfc/perfevent). Read must be safe for concurrent use.
type Source interface {
	// Read appends the source's metrics (Name, Kind, Unit, Desc, Value,
	// State; Domain is filled in by the set) to dst, always the same names
	// in the same order. When reset is not nil, each metric for whose name
	// it returns true starts again from zero, and the value appended for it
	// is the last one before that.
	Read(dst []Metric, reset func(name string) bool) []Metric
}

// NewSet returns an empty root set; nil cfg means DefaultConfig().
func NewSet(cfg *Config) (*Set, error) {
	c := DefaultConfig()
	if cfg != nil {
		c = *cfg
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newSet(c, ""), nil
}

func newSet(cfg Config, path string) *Set {
	return &Set{cfg: cfg, path: path, metrics: map[string]*entry{}, children: map[string]*Set{}, sources: map[*sourceEntry]struct{}{}}
}

// Path is the set's path below its root: "" for the root, "dn5" for a
// domain's set.
func (s *Set) Path() string {
	if s == nil {
		return ""
	}
	return s.path
}

// register adds e, or returns the entry already registered under its name
// when that one has the same kind and unit. A bad name or unit, or a name
// registered with another kind or unit, panics: names are constants in the
// code that registers them, so this is a programming error (like
// prometheus.MustRegister).
func (s *Set) register(e *entry) *entry {
	if err := s.check(e); err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.metrics[e.name]; ok {
		if old.kind != e.kind || old.unit != e.unit || e.gaugeFunc != nil || old.hist != nil && !slices.Equal(old.hist.bounds, e.hist.bounds) {
			panic(fmt.Errorf("perfc: %s registered as %s in %q, now as %s in %q: %w", e.name, old.kind, old.unit, e.kind, e.unit, ErrConflict))
		}
		return old
	}
	for se := range s.sources {
		if slices.Contains(se.names, e.name) {
			panic(fmt.Errorf("perfc: %s is supplied by an attached source: %w", e.name, ErrConflict))
		}
	}
	switch e.kind {
	case KindCounter:
		e.counter = newCounter(s.cfg.Shards)
	case KindGauge:
		if e.gaugeFunc == nil {
			e.gauge = &Gauge{}
		}
	}
	s.metrics[e.name] = e
	return e
}

func (s *Set) check(e *entry) error {
	if !validName(e.name) {
		return fmt.Errorf("perfc: metric name %q: want dot-separated segments of [a-z0-9_] starting with a letter: %w", e.name, ErrInvalid)
	}
	if !validUnit(e.unit) {
		return fmt.Errorf("perfc: %s: unit %q: want [a-z0-9_]+: %w", e.name, e.unit, ErrInvalid)
	}
	if e.desc == "" || strings.ContainsAny(e.desc, "\n\r") {
		return fmt.Errorf("perfc: %s: description %q: want one non-empty line: %w", e.name, e.desc, ErrInvalid)
	}
	return nil
}

// Counter registers (or returns the already registered) counter name with
// its unit ("frames", "calls") and one-line description. It panics on a bad
// name or unit, or when name is registered as something else.
func (s *Set) Counter(name, unit, desc string) *Counter {
	if s == nil {
		return nil
	}
	return s.register(&entry{name: name, unit: unit, desc: desc, kind: KindCounter}).counter
}

// Gauge registers (or returns the already registered) gauge name. It
// panics like Counter.
func (s *Set) Gauge(name, unit, desc string) *Gauge {
	if s == nil {
		return nil
	}
	return s.register(&entry{name: name, unit: unit, desc: desc, kind: KindGauge}).gauge
}

// GaugeFunc registers a gauge whose value f returns when a dump is taken
// (f must be safe for concurrent use and quick). It panics like Counter,
// and also when name is already registered.
func (s *Set) GaugeFunc(name, unit, desc string, f func() int64) {
	if s == nil {
		return
	}
	s.register(&entry{name: name, unit: unit, desc: desc, kind: KindGauge, gaugeFunc: f})
}

// Histogram registers (or returns the already registered) histogram name
// with the given bucket bounds in its unit; nil bounds means
// LatencyBounds() (unit "ns"). It panics like Counter, and on bounds that do
// not increase.
func (s *Set) Histogram(name, unit, desc string, bounds []int64) *Histogram {
	if s == nil {
		return nil
	}
	if bounds == nil {
		bounds = LatencyBounds()
	}
	if err := checkBounds(bounds); err != nil {
		panic(fmt.Errorf("perfc: %s: %w", name, err))
	}
	return s.register(&entry{name: name, unit: unit, desc: desc, kind: KindHistogram, hist: newHistogram(bounds, s.cfg.Shards)}).hist
}

// Child returns the child set called name (a domain: "dn5"), making it if
// there is none. The child has the parent's configuration. It panics on a
// bad name ([a-z0-9_-], up to 64 characters); use LookupChild for names
// that come from outside.
func (s *Set) Child(name string) *Set {
	if s == nil {
		return nil
	}
	if !validChild(name) {
		panic(fmt.Errorf("perfc: child set name %q: want [a-z0-9_-]+: %w", name, ErrInvalid))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.children[name]
	if !ok {
		p := name
		if s.path != "" {
			p = s.path + "/" + name
		}
		c = newSet(s.cfg, p)
		s.children[name] = c
	}
	return c
}

// LookupChild returns the child set called name, or an error wrapping
// ErrNotFound.
func (s *Set) LookupChild(name string) (*Set, error) {
	if s != nil {
		s.mu.Lock()
		c, ok := s.children[name]
		s.mu.Unlock()
		if ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("perfc: domain %q: %w", name, ErrNotFound)
}

// RemoveChild drops the child set called name with everything in it (a
// domain was destroyed). Metrics handed out from it keep working but are no
// longer dumped.
func (s *Set) RemoveChild(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	delete(s.children, name)
	s.mu.Unlock()
}

// Children returns the names of the child sets, sorted.
func (s *Set) Children() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.children))
}

// Attach adds a source's metrics to the set. It reads the source once to
// learn its names and returns an error wrapping ErrInvalid or ErrConflict
// when one is bad or already taken. detach removes them again (the caller
// still closes the source).
func (s *Set) Attach(src Source) (detach func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	ms := src.Read(nil, nil)
	se := &sourceEntry{src: src}
	for _, m := range ms {
		if !validName(m.Name) {
			return nil, fmt.Errorf("perfc: source metric name %q: %w", m.Name, ErrInvalid)
		}
		if slices.Contains(se.names, m.Name) {
			return nil, fmt.Errorf("perfc: source supplies %s twice: %w", m.Name, ErrConflict)
		}
		se.names = append(se.names, m.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range se.names {
		if _, ok := s.metrics[n]; ok {
			return nil, fmt.Errorf("perfc: %s is already registered: %w", n, ErrConflict)
		}
		for other := range s.sources {
			if slices.Contains(other.names, n) {
				return nil, fmt.Errorf("perfc: %s is supplied by another source: %w", n, ErrConflict)
			}
		}
	}
	s.sources[se] = struct{}{}
	return func() {
		s.mu.Lock()
		delete(s.sources, se)
		s.mu.Unlock()
	}, nil
}

// Query selects metrics for Dump and Reset.
type Query struct {
	// Prefix selects the metrics whose name is Prefix or lies below it
	// ("proto.drops" selects proto.drops.bad_mac); "" selects all.
	Prefix string `cbor:"1,keyasint,omitempty" json:"prefix,omitempty"`
	// Local leaves out child sets (domains).
	Local bool `cbor:"2,keyasint,omitempty" json:"local,omitempty"`
	// NoDesc leaves out descriptions (and histogram bounds), for polling
	// values at an interval once the names are known.
	NoDesc bool `cbor:"3,keyasint,omitempty" json:"no_desc,omitempty"`
}

// Dump returns the metrics q selects in this set and, unless q.Local, its
// children, sorted by domain then name. Domain is the child's path relative
// to s. Sources are read outside the set's lock.
func (s *Set) Dump(q Query) Dump {
	return s.collect(q, false)
}

// Reset zeroes the counters and histograms q selects (gauges stay: they
// are levels) and restarts sources, and returns what they held, like Dump.
// See the package documentation for increments that race with a reset.
func (s *Set) Reset(q Query) Dump {
	return s.collect(q, true)
}

// Get returns the metric called name in this set (not its children), or an
// error wrapping ErrNotFound.
func (s *Set) Get(name string) (Metric, error) {
	if validName(name) {
		for _, m := range s.Dump(Query{Prefix: name, Local: true}).Metrics {
			if m.Name == name {
				return m, nil
			}
		}
	}
	return Metric{}, fmt.Errorf("perfc: metric %q in domain %q: %w", name, s.Path(), ErrNotFound)
}

func (s *Set) collect(q Query, reset bool) Dump {
	var d Dump
	if s == nil {
		return d
	}
	s.collectInto(&d.Metrics, s.path, q, reset)
	slices.SortFunc(d.Metrics, func(a, b Metric) int {
		if c := strings.Compare(a.Domain, b.Domain); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return d
}

func (s *Set) collectInto(dst *[]Metric, root string, q Query, reset bool) {
	s.mu.Lock()
	entries := make([]*entry, 0, len(s.metrics))
	for _, e := range s.metrics {
		if matchPrefix(e.name, q.Prefix) {
			entries = append(entries, e)
		}
	}
	var sources []Source
	for se := range s.sources {
		if slices.ContainsFunc(se.names, func(n string) bool { return matchPrefix(n, q.Prefix) }) {
			sources = append(sources, se.src)
		}
	}
	var children []*Set
	if !q.Local {
		for _, c := range s.children {
			children = append(children, c)
		}
	}
	s.mu.Unlock()

	domain := strings.TrimPrefix(strings.TrimPrefix(s.path, root), "/")
	for _, e := range entries {
		m := Metric{Domain: domain, Name: e.name, Kind: e.kind, Unit: e.unit}
		if !q.NoDesc {
			m.Desc = e.desc
		}
		switch {
		case e.counter != nil && reset:
			m.Value = e.counter.reset()
		case e.counter != nil:
			m.Value = e.counter.Value()
		case e.gauge != nil:
			m.Value = e.gauge.Value()
		case e.gaugeFunc != nil:
			m.Value = e.gaugeFunc()
		case e.hist != nil:
			h := e.hist.read(reset)
			m.Value = h.Count()
			if q.NoDesc {
				h.Bounds = nil
			}
			m.Hist = &h
		}
		*dst = append(*dst, m)
	}
	var resetSelected func(string) bool
	if reset {
		resetSelected = func(name string) bool { return matchPrefix(name, q.Prefix) }
	}
	for _, src := range sources {
		n := len(*dst)
		*dst = src.Read(*dst, resetSelected)
		kept := (*dst)[:n]
		for _, m := range (*dst)[n:] {
			if !matchPrefix(m.Name, q.Prefix) {
				continue
			}
			m.Domain = domain
			if q.NoDesc {
				m.Desc = ""
			}
			kept = append(kept, m)
		}
		*dst = kept
	}
	for _, c := range children {
		c.collectInto(dst, root, q, reset)
	}
}
