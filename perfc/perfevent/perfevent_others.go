//go:build !linux

package perfevent

import (
	"fmt"

	"github.com/mvstack/mvstack/perfc"
)

// DefaultEvents returns nothing off Linux.
func DefaultEvents() []Event { return nil }

// Paranoid fails off Linux.
func Paranoid() (int, error) { return 0, ErrNotLinux }

// Process is never opened off Linux.
type Process struct{}

// Open fails off Linux.
func Open(pid int, cfg *Config) (*Process, error) {
	return nil, fmt.Errorf("perfevent: pid %d: %w", pid, ErrNotLinux)
}

// Read appends nothing.
func (p *Process) Read(dst []perfc.Metric, reset func(string) bool) []perfc.Metric { return dst }

// Threads returns nothing.
func (p *Process) Threads() []int { return nil }

// Close does nothing.
func (p *Process) Close() error { return nil }
