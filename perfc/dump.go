package perfc

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Dump is the metrics a Set.Dump or Set.Reset returned, sorted by domain
// then name. It is the value PERFC_DUMP, PERFC_GET and PERFC_RESET carry.
type Dump struct {
	Metrics []Metric `cbor:"1,keyasint,omitempty" json:"metrics"`
}

// The CBOR modes are built once and never change: cborEnc encodes
// deterministically (sorted map keys, shortest integers), so equal dumps are
// equal bytes; cborDec bounds what a peer can make us allocate.
var (
	cborEnc = mustMode(cbor.CoreDetEncOptions().EncMode())
	cborDec = mustMode(cbor.DecOptions{
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      64,
		MaxNestedLevels:  8,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode())
)

func mustMode[M any](m M, err error) M {
	if err != nil {
		panic(err) // the options are constants
	}
	return m
}

// decode decodes CBOR into v: io.ErrUnexpectedEOF when b ends early.
func decode(b []byte, v any, what string) error {
	if err := cborDec.Unmarshal(b, v); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return io.ErrUnexpectedEOF
		}
		return fmt.Errorf("perfc: decoding %s: %w", what, err)
	}
	return nil
}

// dumpWire is Dump without its methods, so the CBOR codec encodes its
// fields instead of calling MarshalBinary again.
type dumpWire Dump

// MarshalBinary encodes the dump as CBOR with integer keys.
func (d Dump) MarshalBinary() ([]byte, error) {
	return cborEnc.Marshal(dumpWire(d))
}

// UnmarshalBinary decodes a dump that MarshalBinary encoded. A truncated
// input returns io.ErrUnexpectedEOF; a kind, state or histogram that makes
// no sense returns an error wrapping ErrInvalid.
func (d *Dump) UnmarshalBinary(b []byte) error {
	var v dumpWire
	if err := decode(b, &v, "dump"); err != nil {
		return err
	}
	for i, m := range v.Metrics {
		if err := m.validate(); err != nil {
			return fmt.Errorf("perfc: dump metric %d (%q): %w", i, m.Name, err)
		}
	}
	*d = Dump(v)
	return nil
}

func (m Metric) validate() error {
	switch {
	case m.Kind >= kindCount:
		return fmt.Errorf("kind %d: %w", m.Kind, ErrInvalid)
	case m.State >= stateCount:
		return fmt.Errorf("state %d: %w", m.State, ErrInvalid)
	case m.Kind == KindHistogram && m.Hist == nil:
		return fmt.Errorf("histogram without buckets: %w", ErrInvalid)
	case m.Kind != KindHistogram && m.Hist != nil:
		return fmt.Errorf("%s with buckets: %w", m.Kind, ErrInvalid)
	case m.Hist != nil && len(m.Hist.Bounds) != 0 && len(m.Hist.Counts) != len(m.Hist.Bounds)+1:
		return fmt.Errorf("%d bucket counts for %d bounds: %w", len(m.Hist.Counts), len(m.Hist.Bounds), ErrInvalid)
	}
	return nil
}

// Find returns the metric of domain with name, and whether there is one.
func (d Dump) Find(domain, name string) (Metric, bool) {
	for _, m := range d.Metrics {
		if m.Domain == domain && m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Delta returns d with every counter and histogram replaced by its increase
// since prev (matched by domain and name); gauges keep their value, and
// metrics missing from prev, or that went down (a reset came between),
// keep theirs. Divide by the interval for rates, as perf stat -I prints.
func (d Dump) Delta(prev Dump) Dump {
	old := make(map[[2]string]Metric, len(prev.Metrics))
	for _, m := range prev.Metrics {
		old[[2]string{m.Domain, m.Name}] = m
	}
	out := Dump{Metrics: make([]Metric, len(d.Metrics))}
	for i, m := range d.Metrics {
		p, ok := old[[2]string{m.Domain, m.Name}]
		if ok && m.Kind != KindGauge && p.State == StateOK && m.State == StateOK && p.Value <= m.Value {
			m.Value -= p.Value
			if m.Hist != nil && p.Hist != nil && len(p.Hist.Counts) == len(m.Hist.Counts) {
				h := HistValue{Bounds: m.Hist.Bounds, Counts: make([]int64, len(m.Hist.Counts)), Sum: m.Hist.Sum - p.Hist.Sum}
				for j := range h.Counts {
					h.Counts[j] = m.Hist.Counts[j] - p.Hist.Counts[j]
				}
				m.Hist = &h
			}
		}
		out.Metrics[i] = m
	}
	return out
}

// WriteText prints the dump as a table like perf stat's: domain, name,
// value, unit, description. A histogram prints its count with p50, p99 and
// the mean; a metric the host cannot give prints its state
// ("<unsupported>") instead of a value.
func (d Dump) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, m := range d.Metrics {
		dom := m.Domain
		if dom == "" {
			dom = "-"
		}
		val := strconv.FormatInt(m.Value, 10)
		unit := m.Unit
		if m.State != StateOK {
			val, unit = "<"+m.State.String()+">", ""
		} else if m.Hist != nil {
			unit = "obs"
			if n := m.Hist.Count(); n > 0 {
				unit = fmt.Sprintf("obs  p50≤%s p99≤%s mean %s", fmtIn(m.Hist.Quantile(0.5), m.Unit), fmtIn(m.Hist.Quantile(0.99), m.Unit), fmtIn(m.Hist.Sum/n, m.Unit))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dom, m.Name, val, unit, m.Desc)
	}
	return tw.Flush()
}

// fmtIn prints v in unit, as a duration when the unit is "ns".
func fmtIn(v int64, unit string) string {
	if unit == "ns" {
		return time.Duration(v).String()
	}
	return strconv.FormatInt(v, 10) + " " + unit
}
