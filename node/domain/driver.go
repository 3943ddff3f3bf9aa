package domain

import (
	"context"
	"fmt"
	"time"
)

// State is a domain's life-cycle state.
type State uint8

// States.
const (
	StateDefined State = iota + 1 // created, never started or reset
	StateRunning
	StatePaused
	StateShutoff // stopped on request
	StateCrashed // its process died or it failed without being asked to stop
)

var stateNames = [...]string{StateDefined: "defined", StateRunning: "running", StatePaused: "paused",
	StateShutoff: "shutoff", StateCrashed: "crashed"}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n != "" && n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("domain: unknown state %q", b)
}

// Active reports whether the domain holds a running guest (running or paused).
func (s State) Active() bool { return s == StateRunning || s == StatePaused }

// Op is a life-cycle operation.
type Op uint8

// Operations.
const (
	OpStart    Op = iota + 1 // defined|shutoff|crashed → running
	OpShutdown               // running → shutoff, asking the guest (ACPI power button)
	OpDestroy                // running|paused → shutoff, forced
	OpReboot                 // running → running, a guest reset
	OpPause                  // running → paused
	OpResume                 // paused → running
	OpUndefine               // defined|shutoff|crashed → gone; releases the domain's resources
)

var opNames = [...]string{OpStart: "start", OpShutdown: "shutdown", OpDestroy: "destroy", OpReboot: "reboot",
	OpPause: "pause", OpResume: "resume", OpUndefine: "undefine"}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ParseOp returns the operation named s ("start", "shutdown", …).
func ParseOp(s string) (Op, error) {
	for i, n := range opNames {
		if n != "" && n == s {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("domain: unknown operation %q: want start, shutdown, destroy, reboot, pause, resume or undefine", s)
}

// Allowed reports whether op applies in state s, and the state it leads to
// when it completes.
func (o Op) Allowed(s State) (next State, ok bool) {
	switch o {
	case OpStart:
		return StateRunning, s == StateDefined || s == StateShutoff || s == StateCrashed
	case OpShutdown:
		return StateShutoff, s == StateRunning
	case OpDestroy:
		return StateShutoff, s.Active()
	case OpReboot:
		return StateRunning, s == StateRunning
	case OpPause:
		return StatePaused, s == StateRunning
	case OpResume:
		return StateRunning, s == StatePaused
	case OpUndefine:
		return 0, !s.Active()
	}
	return 0, false
}

// Info is a domain as its driver sees it.
type Info struct {
	ID    int    `cbor:"1,keyasint" json:"id"`
	Name  string `cbor:"2,keyasint" json:"name"`
	State State  `cbor:"3,keyasint" json:"state"`
	Spec  Spec   `cbor:"4,keyasint" json:"spec"`
	// PID of the guest's process (qemu), 0 for none.
	PID int `cbor:"5,keyasint,omitempty" json:"pid,omitempty"`
	// Started is when the domain last started.
	Started time.Time `cbor:"6,keyasint,omitzero" json:"started,omitzero"`
	// Reason says why the domain is in its state when it was not asked
	// (e.g. "qemu exited: signal: killed").
	Reason string `cbor:"7,keyasint,omitempty" json:"reason,omitempty"`
	// Imported marks a wild domain the node adopted.
	Imported bool `cbor:"8,keyasint,omitempty" json:"imported,omitempty"`
}

// Event is a state change a driver reports.
type Event struct {
	ID     int       `cbor:"1,keyasint" json:"id"`
	State  State     `cbor:"2,keyasint" json:"state"`
	Reason string    `cbor:"3,keyasint,omitempty" json:"reason,omitempty"`
	At     time.Time `cbor:"4,keyasint" json:"at"`
}

// Driver runs domains. Implementations are safe for concurrent use.
// Optional abilities are separate interfaces (Pinner, NUMAReporter,
// Consoler, Statser, WildFinder); check them with a type assertion.
type Driver interface {
	// Hypervisor names the back end for the inventory: "sim", "qemu-tcg",
	// "qemu-kvm".
	Hypervisor() string
	// Create defines a domain and reserves its resources; it does not
	// start it. An existing id fails with ErrExists and starts nothing.
	Create(ctx context.Context, spec Spec) (Info, error)
	// Do applies a life-cycle operation and returns the domain afterwards.
	// An operation that does not apply fails with ErrState.
	Do(ctx context.Context, id int, op Op) (Info, error)
	// Info returns one domain.
	Info(id int) (Info, error)
	// List returns every domain, ordered by id.
	List() []Info
}

// VCPUInfo is one vCPU, as `xl vcpu-list` shows it.
type VCPUInfo struct {
	VCPU int `cbor:"1,keyasint" json:"vcpu"`
	// CPU is the host CPU it last ran on, -1 when not running.
	CPU   int   `cbor:"2,keyasint" json:"cpu"`
	State State `cbor:"3,keyasint" json:"state"`
	// Time is the CPU time it has used.
	Time time.Duration `cbor:"4,keyasint" json:"time"`
	// Affinity are the host CPUs it may run on.
	Affinity []int `cbor:"5,keyasint" json:"affinity"`
	// ThreadID is the host thread running it (qemu), 0 for none.
	ThreadID int `cbor:"6,keyasint,omitempty" json:"thread_id,omitempty"`
}

// Pinner pins vCPUs to host CPUs.
type Pinner interface {
	// PinVCPU restricts vCPU vcpu of domain id to host CPU pcpu.
	PinVCPU(ctx context.Context, id, vcpu, pcpu int) error
	// VCPUs reports the domain's vCPUs.
	VCPUs(ctx context.Context, id int) ([]VCPUInfo, error)
}

// NUMAReporter reports where a domain's memory lives ("show numa").
type NUMAReporter interface {
	NUMA(ctx context.Context, id int) (NUMAInfo, error)
}

// Consoler returns a domain's console output (the serial port).
type Consoler interface {
	// Console returns the most recent console output, at most the
	// driver's console buffer.
	Console(ctx context.Context, id int) ([]byte, error)
}

// Statser samples a domain's counters for the stat emitter.
type Statser interface {
	Stats(ctx context.Context, id int) (Stats, error)
}

// Wild is a guest found running on the node that the node did not start.
type Wild struct {
	PID int `cbor:"1,keyasint" json:"pid"`
	// Name is the guest's name (-name), possibly empty.
	Name string `cbor:"2,keyasint,omitempty" json:"name,omitempty"`
	// Cmdline is the process's command line.
	Cmdline []string `cbor:"3,keyasint,omitempty" json:"cmdline,omitempty"`
	// QMP is the guest's QMP socket when one was found.
	QMP string `cbor:"4,keyasint,omitempty" json:"qmp,omitempty"`
	// VCPUs and Memory (bytes) as far as the command line tells.
	VCPUs  int    `cbor:"5,keyasint,omitempty" json:"vcpus,omitempty"`
	Memory uint64 `cbor:"6,keyasint,omitempty" json:"memory,omitempty"`
	// Launched marks a guest this node started (an earlier run of its
	// daemon) that its driver no longer controls: a zombie in seed 000's
	// monitoring terms, to be recovered rather than imported.
	Launched bool `cbor:"7,keyasint,omitempty" json:"launched,omitempty"`
}

// WildFinder scans for guests the node did not start and adopts them.
type WildFinder interface {
	Wild(ctx context.Context) ([]Wild, error)
	// Import adopts a wild guest as domain id; it then shows in List
	// with Imported set.
	Import(ctx context.Context, w Wild, id int) (Info, error)
}

// Zombies returns the ids the node should run that are not running: missing
// from have, or present but shut off or crashed (seed 000: launched by the
// platform but no longer under its control).
func Zombies(want []int, have []Info) []int {
	state := make(map[int]State, len(have))
	for _, i := range have {
		state[i.ID] = i.State
	}
	var out []int
	for _, id := range want {
		if !state[id].Active() {
			out = append(out, id)
		}
	}
	return out
}
