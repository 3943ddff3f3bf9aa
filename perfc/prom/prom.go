package prom

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mvstack/mvstack/perfc"
)

// Config configures a Collector.
type Config struct {
	// Namespace prefixes every name: mvstack_proto_frames_in_control_total.
	Namespace string
	// DomainLabel names the label that carries a metric's set path.
	DomainLabel string
	// ConstLabels are added to every metric (a node id, say).
	ConstLabels prometheus.Labels
	// Logger is told, at debug level, about metrics left out because
	// another domain registered the same name as another kind; nil
	// discards.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration NewCollector uses for nil.
func DefaultConfig() Config {
	return Config{Namespace: "mvstack", DomainLabel: "domain"}
}

// Validate reports a namespace or label that is not a Prometheus name.
func (c Config) Validate() error {
	if c.Namespace != "" && !promName(c.Namespace) {
		return fmt.Errorf("prom: Config.Namespace %q is not a Prometheus name", c.Namespace)
	}
	if !promName(c.DomainLabel) || strings.HasPrefix(c.DomainLabel, "__") {
		return fmt.Errorf("prom: Config.DomainLabel %q is not a Prometheus label name", c.DomainLabel)
	}
	for k := range c.ConstLabels {
		if !promName(k) || k == c.DomainLabel {
			return fmt.Errorf("prom: Config.ConstLabels: %q is not a free label name", k)
		}
	}
	return nil
}

func promName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Collector is a prometheus.Collector over a perfc.Set. It is unchecked
// (Describe sends nothing) because domains come and go. Safe for
// concurrent use.
type Collector struct {
	set         *perfc.Set
	cfg         Config
	unavailable *prometheus.Desc
	log         *slog.Logger
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over set; nil cfg means DefaultConfig().
func NewCollector(set *perfc.Set, cfg *Config) (*Collector, error) {
	c := DefaultConfig()
	if cfg != nil {
		c = *cfg
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		set: set, cfg: c, log: log,
		unavailable: prometheus.NewDesc(prometheus.BuildFQName(c.Namespace, "perfc", "unavailable"),
			"1 for each perfc metric the host cannot give (state unsupported or denied); such metrics have no sample.",
			[]string{c.DomainLabel, "metric", "state"}, c.ConstLabels),
	}, nil
}

// Describe sends nothing: the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// family is one Prometheus metric family built from a perfc name.
type family struct {
	desc *prometheus.Desc
	kind perfc.Kind
	unit string
	div  float64
}

// Collect sends one sample per metric of the set and its domains.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	families := map[string]*family{}
	for _, m := range c.set.Dump(perfc.Query{}).Metrics {
		if m.State != perfc.StateOK {
			ch <- prometheus.MustNewConstMetric(c.unavailable, prometheus.GaugeValue, 1, m.Domain, m.Name, m.State.String())
			continue
		}
		name, div := c.Name(m.Name, m.Kind, m.Unit)
		f, ok := families[name]
		if !ok {
			help := m.Desc
			if div == 1 && m.Unit != "bytes" && m.Unit != "seconds" {
				help += " [" + m.Unit + "]"
			}
			f = &family{desc: prometheus.NewDesc(name, help, []string{c.cfg.DomainLabel}, c.cfg.ConstLabels), kind: m.Kind, unit: m.Unit, div: div}
			families[name] = f
		}
		if f.kind != m.Kind || f.unit != m.Unit {
			c.log.Debug("prom: metric left out: its name is another kind or unit in another domain", "domain", m.Domain, "metric", m.Name)
			continue
		}
		switch m.Kind {
		case perfc.KindCounter:
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(m.Value)/f.div, m.Domain)
		case perfc.KindGauge:
			ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, float64(m.Value)/f.div, m.Domain)
		case perfc.KindHistogram:
			if m.Hist == nil {
				continue
			}
			buckets := make(map[float64]uint64, len(m.Hist.Bounds))
			var cum int64
			for i, b := range m.Hist.Bounds {
				cum += m.Hist.Counts[i]
				buckets[float64(b)/f.div] = uint64(cum)
			}
			ch <- prometheus.MustNewConstHistogram(f.desc, uint64(m.Hist.Count()), float64(m.Hist.Sum)/f.div, buckets, m.Domain)
		}
	}
}

// Name returns the Prometheus name of a perfc metric and the number its
// values are divided by (1e9 for "ns", which become seconds; else 1).
func (c *Collector) Name(name string, kind perfc.Kind, unit string) (string, float64) {
	base := strings.ReplaceAll(name, ".", "_")
	if c.cfg.Namespace != "" {
		base = c.cfg.Namespace + "_" + base
	}
	div := 1.0
	suffix := ""
	switch unit {
	case "ns":
		div, suffix = 1e9, "_seconds"
	case "seconds":
		suffix = "_seconds"
	case "bytes":
		suffix = "_bytes"
	}
	// The unit goes last unless the name already says it as a word
	// (proto.bytes_in.control is mvstack_proto_bytes_in_control_total).
	if !strings.Contains(base+"_", suffix+"_") {
		base += suffix
	}
	if kind == perfc.KindCounter && !strings.HasSuffix(base, "_total") {
		base += "_total"
	}
	return base, div
}
