package perfevent

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/mvstack/mvstack/perfc"
)

// Errors returned by this package; compare with errors.Is.
var (
	// ErrNoProcess: the process to count does not exist (or no longer).
	ErrNoProcess = errors.New("no such process")
	// ErrNotLinux: perf_event_open exists only on Linux.
	ErrNotLinux = errors.New("perf events need Linux")
)

// Event is one perf event and the perfc metric it becomes.
type Event struct {
	Name string // perfc metric name: perf.hw.cycles
	Unit string // perfc unit: cycles, ns, faults
	Desc string // one-line description
	// Type and Config are perf_event_attr's type (PERF_TYPE_HARDWARE,
	// PERF_TYPE_SOFTWARE, PERF_TYPE_HW_CACHE, or a dynamic PMU's type from
	// /sys/bus/event_source/devices/*/type) and config.
	Type   uint32
	Config uint64
}

// Config configures a Process.
type Config struct {
	// Events to count; nil means DefaultEvents().
	Events []Event
	// Logger receives debug lines about unsupported events and warnings
	// about descriptors that could not be opened; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration Open uses for nil.
func DefaultConfig() Config { return Config{Events: DefaultEvents()} }

// Validate reports an event with a bad or repeated name, unit or
// description.
func (c Config) Validate() error {
	seen := map[string]bool{}
	for i, e := range c.Events {
		if seen[e.Name] {
			return fmt.Errorf("perfevent: Config.Events[%d]: name %q repeated", i, e.Name)
		}
		seen[e.Name] = true
		// A scratch set checks names and units the way perfc will.
		if err := checkMetric(e); err != nil {
			return fmt.Errorf("perfevent: Config.Events[%d]: %w", i, err)
		}
	}
	return nil
}

func checkMetric(e Event) (err error) {
	s, err := perfc.NewSet(&perfc.Config{Shards: 1})
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
				return
			}
			panic(r)
		}
	}()
	s.Counter(e.Name, e.Unit, e.Desc)
	return nil
}

var _ perfc.Source = (*Process)(nil)
