package rrd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// DSType is a data source type: how an update value becomes a rate.
type DSType uint8

// The data source types of rrdtool 1.7 (COMPUTE is not supported).
const (
	Gauge DSType = iota + 1
	Counter
	Derive
	Absolute
	DCounter
	DDerive
)

var dsTypeNames = [...]string{Gauge: "GAUGE", Counter: "COUNTER", Derive: "DERIVE", Absolute: "ABSOLUTE", DCounter: "DCOUNTER", DDerive: "DDERIVE"}

// String returns rrdtool's name of the type.
func (t DSType) String() string { return nameOf(dsTypeNames[:], int(t), "DSType") }

// nameOf is names[i], or kind(i) for a value without a name.
func nameOf(names []string, i int, kind string) string {
	if i > 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("%s(%d)", kind, i)
}

// ParseDSType parses rrdtool's name of a data source type.
func ParseDSType(s string) (DSType, error) {
	i, err := lookupName(dsTypeNames[:], s, "data source type")
	return DSType(i), err
}

// lookupName finds s among names (index 0 is unused).
func lookupName(names []string, s, what string) (int, error) {
	for i, n := range names {
		if n != "" && n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown %s %q", ErrSpec, what, s)
}

// CF is a consolidation function.
type CF uint8

// Consolidation functions.
const (
	Average CF = iota + 1
	Min
	Max
	Last
)

var cfNames = [...]string{Average: "AVERAGE", Min: "MIN", Max: "MAX", Last: "LAST"}

// String returns rrdtool's name of the function.
func (c CF) String() string { return nameOf(cfNames[:], int(c), "CF") }

// ParseCF parses rrdtool's name of a consolidation function.
func ParseCF(s string) (CF, error) {
	i, err := lookupName(cfNames[:], s, "consolidation function")
	return CF(i), err
}

// Errors.
var (
	// ErrSpec reports an invalid RRD definition.
	ErrSpec = errors.New("rrd: invalid definition")
	// ErrValue reports an update value the data source does not accept.
	ErrValue = errors.New("rrd: invalid value")
	// ErrTime reports an update that is not later than the last one.
	ErrTime = errors.New("rrd: illegal update time")
	// ErrNoRRA reports a fetch for a consolidation function no archive has.
	ErrNoRRA = errors.New("rrd: no RRA matching the consolidation function")
	// ErrCorrupt reports a file or dump that does not decode.
	ErrCorrupt = errors.New("rrd: corrupt")
	// ErrFetch reports invalid fetch arguments.
	ErrFetch = errors.New("rrd: invalid fetch")
)

// DS defines one data source. Min and Max are NaN when unbounded ("U").
type DS struct {
	Name      string
	Type      DSType
	Heartbeat uint64 // seconds; a longer interval between updates is unknown
	Min, Max  float64
}

// RRA defines one round-robin archive.
type RRA struct {
	CF    CF
	XFF   float64 // fraction of unknown PDPs a CDP may hold and still be known
	Steps uint64  // PDPs per row
	Rows  uint64
}

// Spec is an RRD's definition. Step is the PDP length in seconds.
type Spec struct {
	Step uint64
	DS   []DS
	RRA  []RRA
}

// Limits that keep a file's size sane.
const (
	MaxDS      = 1024
	MaxRRA     = 256
	maxNameLen = 19
	// MaxRows caps rows per archive and MaxCells rows×DS over all archives.
	MaxRows  = 1 << 26
	MaxCells = 1 << 28
)

// Validate checks the definition the way rrdtool create does.
func (s Spec) Validate() error {
	if s.Step == 0 || s.Step > 1<<40 {
		return fmt.Errorf("%w: step %d out of range 1..2^40", ErrSpec, s.Step)
	}
	if len(s.DS) == 0 || len(s.DS) > MaxDS {
		return fmt.Errorf("%w: %d data sources, need 1..%d", ErrSpec, len(s.DS), MaxDS)
	}
	if len(s.RRA) == 0 || len(s.RRA) > MaxRRA {
		return fmt.Errorf("%w: %d archives, need 1..%d", ErrSpec, len(s.RRA), MaxRRA)
	}
	seen := map[string]bool{}
	for i, d := range s.DS {
		if !validName(d.Name) {
			return fmt.Errorf("%w: DS %d name %q must be 1 to 19 characters of [a-zA-Z0-9_]", ErrSpec, i, d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("%w: duplicate DS name %q", ErrSpec, d.Name)
		}
		seen[d.Name] = true
		if d.Type < Gauge || d.Type > DDerive {
			return fmt.Errorf("%w: DS %q type %d", ErrSpec, d.Name, d.Type)
		}
		if d.Heartbeat == 0 || d.Heartbeat > 1<<40 {
			return fmt.Errorf("%w: DS %q heartbeat %d out of range 1..2^40", ErrSpec, d.Name, d.Heartbeat)
		}
		if !math.IsNaN(d.Min) && !math.IsNaN(d.Max) && d.Min >= d.Max {
			return fmt.Errorf("%w: DS %q min %g must be below max %g", ErrSpec, d.Name, d.Min, d.Max)
		}
	}
	var cells uint64
	for i, r := range s.RRA {
		if r.CF < Average || r.CF > Last {
			return fmt.Errorf("%w: RRA %d consolidation function %d", ErrSpec, i, r.CF)
		}
		if !(r.XFF >= 0 && r.XFF < 1) {
			return fmt.Errorf("%w: RRA %d xff %g must be in [0, 1)", ErrSpec, i, r.XFF)
		}
		if r.Steps == 0 || r.Steps > 1<<32 {
			return fmt.Errorf("%w: RRA %d steps %d out of range 1..2^32", ErrSpec, i, r.Steps)
		}
		if r.Rows == 0 || r.Rows > MaxRows {
			return fmt.Errorf("%w: RRA %d rows %d out of range 1..%d", ErrSpec, i, r.Rows, MaxRows)
		}
		cells += r.Rows * uint64(len(s.DS))
		if cells > MaxCells {
			return fmt.Errorf("%w: more than %d rows×DS in all archives", ErrSpec, MaxCells)
		}
	}
	return nil
}

func validName(n string) bool {
	if len(n) == 0 || len(n) > maxNameLen {
		return false
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ParseDS parses rrdtool's DS:name:TYPE:heartbeat:min:max.
func ParseDS(s string) (DS, error) {
	f := strings.Split(s, ":")
	if len(f) != 6 || f[0] != "DS" {
		return DS{}, fmt.Errorf("%w: %q is not DS:name:TYPE:heartbeat:min:max", ErrSpec, s)
	}
	t, err := ParseDSType(f[2])
	if err != nil {
		return DS{}, fmt.Errorf("%q: %w", s, err)
	}
	hb, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil || hb == 0 {
		return DS{}, fmt.Errorf("%w: %q: heartbeat %q", ErrSpec, s, f[3])
	}
	d := DS{Name: f[1], Type: t, Heartbeat: hb}
	if d.Min, err = parseBound(f[4]); err != nil {
		return DS{}, fmt.Errorf("%w: %q: min %q", ErrSpec, s, f[4])
	}
	if d.Max, err = parseBound(f[5]); err != nil {
		return DS{}, fmt.Errorf("%w: %q: max %q", ErrSpec, s, f[5])
	}
	return d, nil
}

func parseBound(s string) (float64, error) {
	if s == "U" {
		return math.NaN(), nil
	}
	return parseFloat(s)
}

// ParseRRA parses rrdtool's RRA:CF:xff:steps:rows.
func ParseRRA(s string) (RRA, error) {
	f := strings.Split(s, ":")
	if len(f) != 5 || f[0] != "RRA" {
		return RRA{}, fmt.Errorf("%w: %q is not RRA:CF:xff:steps:rows", ErrSpec, s)
	}
	cf, err := ParseCF(f[1])
	if err != nil {
		return RRA{}, fmt.Errorf("%q: %w", s, err)
	}
	xff, err := parseFloat(f[2])
	if err != nil {
		return RRA{}, fmt.Errorf("%w: %q: xff %q", ErrSpec, s, f[2])
	}
	steps, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return RRA{}, fmt.Errorf("%w: %q: steps %q", ErrSpec, s, f[3])
	}
	rows, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil {
		return RRA{}, fmt.Errorf("%w: %q: rows %q", ErrSpec, s, f[4])
	}
	return RRA{CF: cf, XFF: xff, Steps: steps, Rows: rows}, nil
}

// String formats the DS in rrdtool's syntax.
func (d DS) String() string {
	return fmt.Sprintf("DS:%s:%s:%d:%s:%s", d.Name, d.Type, d.Heartbeat, fmtBound(d.Min), fmtBound(d.Max))
}

// String formats the RRA in rrdtool's syntax.
func (r RRA) String() string {
	return fmt.Sprintf("RRA:%s:%s:%d:%d", r.CF, strconv.FormatFloat(r.XFF, 'g', -1, 64), r.Steps, r.Rows)
}

func fmtBound(v float64) string {
	if math.IsNaN(v) {
		return "U"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// parseFloat parses a number the way rrdtool does: decimal, with inf and
// nan, but no hexadecimal or digit separators.
func parseFloat(s string) (float64, error) {
	if s == "" || strings.ContainsAny(s, "xX_pP") {
		return 0, fmt.Errorf("%w: %q is not a number", ErrValue, s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return v, nil
		}
		return 0, fmt.Errorf("%w: %q is not a number", ErrValue, s)
	}
	return v, nil
}

// String formats the definition as rrdtool create arguments.
func (s Spec) String() string {
	parts := []string{"--step", strconv.FormatUint(s.Step, 10)}
	for _, d := range s.DS {
		parts = append(parts, d.String())
	}
	for _, a := range s.RRA {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, " ")
}
