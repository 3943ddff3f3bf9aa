package perfc

import (
	"fmt"
	"slices"
	"strings"
)

// Kind says what a metric's value means.
type Kind uint8

// The kinds of metric.
const (
	// KindCounter only goes up between resets: frames, drops, calls, PMU
	// events.
	KindCounter Kind = iota
	// KindGauge is a level that goes up and down: open sessions,
	// outstanding commands. A reset leaves it alone.
	KindGauge
	// KindHistogram counts observations (latencies) in fixed buckets.
	KindHistogram
	kindCount
)

var kindNames = []string{"counter", "gauge", "histogram"}

func (k Kind) String() string { return enumString(kindNames, k, "kind") }

// MarshalText writes the kind's name (for JSON).
func (k Kind) MarshalText() ([]byte, error) { return enumMarshal(kindNames, k, "kind") }

// UnmarshalText reads a kind's name.
func (k *Kind) UnmarshalText(b []byte) error { return enumUnmarshal(kindNames, b, k, "kind") }

// State says whether a metric's value could be read.
type State uint8

// The states of a metric's value.
const (
	// StateOK: the value is valid.
	StateOK State = iota
	// StateUnsupported: the host cannot count this event (a PMU hardware
	// event on a machine without a PMU). The value is meaningless, not zero.
	StateUnsupported
	// StateDenied: the host could count it but refused us
	// (perf_event_paranoid, missing CAP_PERFMON).
	StateDenied
	stateCount
)

var stateNames = []string{"ok", "unsupported", "denied"}

func (s State) String() string { return enumString(stateNames, s, "state") }

// MarshalText writes the state's name (for JSON).
func (s State) MarshalText() ([]byte, error) { return enumMarshal(stateNames, s, "state") }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error { return enumUnmarshal(stateNames, b, s, "state") }

// enumString, enumMarshal and enumUnmarshal give a small enum its names.
func enumString[T ~uint8](names []string, v T, what string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", what, uint8(v))
}

func enumMarshal[T ~uint8](names []string, v T, what string) ([]byte, error) {
	if int(v) >= len(names) {
		return nil, fmt.Errorf("perfc: %s %d: %w", what, uint8(v), ErrInvalid)
	}
	return []byte(names[v]), nil
}

func enumUnmarshal[T ~uint8](names []string, b []byte, v *T, what string) error {
	i := slices.Index(names, string(b))
	if i < 0 {
		return fmt.Errorf("perfc: %s %q: %w", what, b, ErrInvalid)
	}
	*v = T(i)
	return nil
}

// Metric is one metric's definition and value at the time of a dump.
// Integer CBOR keys keep dumps small on the wire.
type Metric struct {
	// Domain is the path of the set that holds the metric relative to the
	// set dumped: "" for the set itself, "dn5" for a domain's child set.
	Domain string `cbor:"1,keyasint,omitempty" json:"domain,omitempty"`
	Name   string `cbor:"2,keyasint" json:"name"`
	Kind   Kind   `cbor:"3,keyasint,omitempty" json:"kind"`
	Unit   string `cbor:"4,keyasint,omitempty" json:"unit"`
	Desc   string `cbor:"5,keyasint,omitempty" json:"description,omitempty"`
	// Value is a counter's or gauge's value; for a histogram, the number of
	// observations.
	Value int64 `cbor:"6,keyasint,omitempty" json:"value"`
	State State `cbor:"7,keyasint,omitempty" json:"state,omitempty"`
	// Hist holds a histogram's buckets; nil for other kinds.
	Hist *HistValue `cbor:"8,keyasint,omitempty" json:"histogram,omitempty"`
}

// Path is the metric's domain and name joined by a slash ("dn5/perf.sw.task_clock"),
// or its name alone when it belongs to the set dumped.
func (m Metric) Path() string {
	if m.Domain == "" {
		return m.Name
	}
	return m.Domain + "/" + m.Name
}

// HistValue is a histogram's content.
type HistValue struct {
	// Bounds are the buckets' inclusive upper bounds, increasing, in the
	// metric's unit.
	Bounds []int64 `cbor:"1,keyasint,omitempty" json:"bounds"`
	// Counts has one entry per bound plus a last one for observations above
	// the last bound.
	Counts []int64 `cbor:"2,keyasint,omitempty" json:"counts"`
	// Sum is the sum of all observations.
	Sum int64 `cbor:"3,keyasint,omitempty" json:"sum"`
}

// Count is the number of observations.
func (h HistValue) Count() int64 {
	var n int64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as the upper bound of the
// bucket that holds it; observations above the last bound report the last
// bound. It returns 0 when there are no observations.
func (h HistValue) Quantile(q float64) int64 {
	n := h.Count()
	if n == 0 || len(h.Bounds) == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			if i < len(h.Bounds) {
				return h.Bounds[i]
			}
			break
		}
	}
	return h.Bounds[len(h.Bounds)-1]
}

// validName reports whether name is a metric name: dot-separated segments
// of [a-z0-9_], each starting with a letter.
func validName(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	for seg := range strings.SplitSeq(name, ".") {
		if !validSegment(seg) {
			return false
		}
	}
	return true
}

func validSegment(seg string) bool {
	if seg == "" || seg[0] < 'a' || seg[0] > 'z' {
		return false
	}
	for i := 1; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validChild reports whether name can name a child set: a domain name
// such as dn5, [a-z0-9_-], starting with a letter or digit.
func validChild(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

// validUnit reports whether unit is a unit name: lower-case letters, digits
// and underscores ("frames", "bytes", "ns").
func validUnit(unit string) bool {
	if unit == "" || len(unit) > 32 {
		return false
	}
	for i := 0; i < len(unit); i++ {
		c := unit[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// matchPrefix reports whether name is prefix or lies below it in the
// hierarchy ("proto.drops" matches proto.drops and proto.drops.bad_mac,
// not proto.dropsy). The empty prefix matches everything.
func matchPrefix(name, prefix string) bool {
	if prefix == "" || name == prefix {
		return true
	}
	return len(name) > len(prefix) && name[len(prefix)] == '.' && name[:len(prefix)] == prefix
}
