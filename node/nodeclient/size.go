package nodeclient

import (
	"errors"
	"fmt"
	"strings"
)

// ParseSize reads a byte count with an optional binary suffix: "512M",
// "8G", "1T", "4096" (bytes), "1.5G".
func ParseSize(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	mult := uint64(1)
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	switch t[len(t)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	case 'T':
		mult = 1 << 40
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	var v float64
	if _, err := fmt.Sscanf(t, "%g", &v); err != nil || v < 0 {
		return 0, fmt.Errorf("size %q is not a number with an optional K, M, G or T suffix", s)
	}
	return uint64(v * float64(mult)), nil
}
