package rrdcli

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

var units = []struct {
	names []string
	sec   int64
}{
	{[]string{"seconds", "second", "secs", "sec", "s"}, 1},
	{[]string{"minutes", "minute", "mins", "min", "m"}, 60},
	{[]string{"hours", "hour", "h"}, 3600},
	{[]string{"days", "day", "d"}, 86400},
	{[]string{"weeks", "week", "w"}, 7 * 86400},
	{[]string{"months", "month", "mon"}, 30 * 86400},
	{[]string{"years", "year", "y"}, 365 * 86400},
}

// parseTime parses an rrdtool time: seconds, now/N, or a reference
// (now, end/e, start/s) with offsets like -1d+2h. A bare offset is
// relative to ref; refs holds the times "end" and "start" resolve to
// (ok false when that reference is not available).
func parseTime(spec string, now, ref int64, refs map[string]int64) (int64, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return 0, fmt.Errorf("empty time")
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "+") {
		return v, nil
	}
	base := ref
	rest := s
	lower := strings.ToLower(s)
	matched := false
	for _, name := range []string{"now", "n", "end", "e", "start", "s"} {
		if strings.HasPrefix(lower, name) && (len(lower) == len(name) || lower[len(name)] == '+' || lower[len(name)] == '-') {
			switch name {
			case "now", "n":
				base = now
			case "end", "e":
				v, ok := refs["end"]
				if !ok {
					return 0, fmt.Errorf("time %q: end is not known here", spec)
				}
				base = v
			case "start", "s":
				v, ok := refs["start"]
				if !ok {
					return 0, fmt.Errorf("time %q: start is not known here", spec)
				}
				base = v
			}
			rest = s[len(name):]
			matched = true
			break
		}
	}
	if !matched && !strings.HasPrefix(rest, "-") && !strings.HasPrefix(rest, "+") {
		return 0, fmt.Errorf("time %q: want seconds since the epoch, now, or an offset like -1d", spec)
	}
	for rest != "" {
		sign := int64(1)
		switch rest[0] {
		case '-':
			sign = -1
		case '+':
		default:
			return 0, fmt.Errorf("time %q: offset %q must start with + or -", spec, rest)
		}
		rest = rest[1:]
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("time %q: offset without a number", spec)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("time %q: %w", spec, err)
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && rest[j] != '+' && rest[j] != '-' {
			j++
		}
		unit := strings.ToLower(rest[:j])
		rest = rest[j:]
		mult := int64(1)
		if unit != "" {
			found := false
			for _, u := range units {
				for _, name := range u.names {
					if unit == name {
						mult, found = u.sec, true
					}
				}
			}
			if !found {
				return 0, fmt.Errorf("time %q: unknown unit %q", spec, unit)
			}
		}
		base += sign * n * mult
	}
	return base, nil
}

func nowSec(t time.Time) int64 { return t.Unix() }
