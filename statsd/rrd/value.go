package rrd

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

type valueKind uint8

const (
	kindUnknown valueKind = iota
	kindFloat
	kindInt // an integer written without a fraction or exponent
)

// Value is one update value: unknown, a number, or an exact integer (what
// COUNTER and DERIVE need; rrdtool subtracts them exactly).
// The zero Value is unknown.
type Value struct {
	kind valueKind
	neg  bool    // kindInt: the integer is -mag
	mag  uint64  // kindInt: magnitude
	f    float64 // kindFloat and kindInt: the value as a float
}

// Unknown is the unknown value ("U").
var Unknown = Value{}

// Float returns a floating point value. NaN is a value rrdtool accepts for
// GAUGE and stores as unknown.
func Float(f float64) Value { return Value{kind: kindFloat, f: f} }

// Uint returns an exact non-negative integer, e.g. a counter reading.
func Uint(u uint64) Value { return Value{kind: kindInt, mag: u, f: float64(u)} }

// Int returns an exact integer.
func Int(i int64) Value {
	if i < 0 {
		m := uint64(-(i + 1)) + 1
		return Value{kind: kindInt, neg: true, mag: m, f: float64(i)}
	}
	return Uint(uint64(i))
}

// IsUnknown reports whether v is "U".
func (v Value) IsUnknown() bool { return v.kind == kindUnknown }

// Float64 returns the value as a float (NaN when unknown).
func (v Value) Float64() float64 {
	if v.kind == kindUnknown {
		return math.NaN()
	}
	return v.f
}

// String formats the value as an update would write it.
func (v Value) String() string {
	switch v.kind {
	case kindUnknown:
		return "U"
	case kindInt:
		if v.neg {
			return "-" + strconv.FormatUint(v.mag, 10)
		}
		return strconv.FormatUint(v.mag, 10)
	}
	return strconv.FormatFloat(v.f, 'g', -1, 64)
}

// ParseValue parses one update value: "U", an integer, or a decimal number
// (with inf and nan). Integers must fit in 64 bits plus a sign.
func ParseValue(s string) (Value, error) {
	if s == "U" {
		return Unknown, nil
	}
	if isInteger(s) {
		neg := s[0] == '-'
		digits := s
		if neg {
			digits = s[1:]
		}
		m, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			return Unknown, fmt.Errorf("%w: integer %q out of 64-bit range", ErrValue, s)
		}
		f, _ := strconv.ParseFloat(s, 64)
		return Value{kind: kindInt, neg: neg, mag: m, f: f}, nil
	}
	f, err := parseFloat(s)
	if err != nil {
		return Unknown, err
	}
	return Float(f), nil
}

func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkFor reports whether the data source type accepts v, with rrdtool's
// messages.
func (v Value) checkFor(t DSType) error {
	if v.kind == kindUnknown {
		return nil
	}
	switch t {
	case Counter:
		if v.kind != kindInt || v.neg {
			return fmt.Errorf("%w: not a simple unsigned integer: '%s'", ErrValue, v)
		}
	case Derive:
		if v.kind != kindInt {
			return fmt.Errorf("%w: not a simple signed integer: '%s'", ErrValue, v)
		}
	}
	return nil
}

// Time is an update time with rrdtool's resolution: seconds and
// microseconds.
type Time struct {
	Sec  int64
	Usec int64 // 0..999999
}

// TimeOf converts seconds with a fraction the way rrdtool update does:
// the microseconds are truncated.
func TimeOf(sec float64) Time {
	s := math.Floor(sec)
	return Time{Sec: int64(s), Usec: int64((sec - s) * 1e6)}
}

// Unix returns t as seconds with a fraction.
func (t Time) Unix() float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// Before reports whether t is earlier than u.
func (t Time) Before(u Time) bool {
	return t.Sec < u.Sec || t.Sec == u.Sec && t.Usec < u.Usec
}

// String formats t as seconds, with microseconds when there are some.
func (t Time) String() string {
	if t.Usec == 0 {
		return strconv.FormatInt(t.Sec, 10)
	}
	return fmt.Sprintf("%d.%06d", t.Sec, t.Usec)
}
