package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/node/volume"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/emitter"
)

// Driver names.
const (
	DriverSim  = "sim"
	DriverQEMU = "qemu"
)

// Duration is a time.Duration that reads and writes "1.5s" in JSON.
type Duration time.Duration

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "250ms", "1.5s", "1m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config configures an Agent. The JSON names are those of the config file
// (mvnode --config FILE); fields tagged "-" are set in code.
type Config struct {
	// Iface is the management interface; its MAC is the node's identity.
	Iface string `json:"iface,omitempty"`
	// KeyFile is the cluster key file.
	KeyFile string `json:"key_file,omitempty"`
	// Driver is "sim" or "qemu".
	Driver string `json:"driver"`
	// SimHardware declares the node's hardware instead of probing it. A
	// sim node without it declares inventory.DefaultSimHardware; a qemu
	// node without it probes the machine.
	SimHardware *inventory.SimHardware `json:"sim_hardware,omitempty"`
	// DriveFiles are files reported as drives.
	DriveFiles []string           `json:"drive_files,omitempty"`
	Location   inventory.Location `json:"location"`
	// MetricsAddr, when set, serves /metrics over HTTP ("127.0.0.1:9101").
	MetricsAddr string `json:"metrics_addr,omitempty"`
	// StatsInterval is how often stat frames (EtherType 0x88B6) go out,
	// from 1 s to 1 h; 0 sends none. StatsDest is the aggregator's MAC,
	// "" for broadcast. StatsLink, for tests, sends them on a given link;
	// without it, stat frames go out on Iface (none when Link is given).
	StatsInterval Duration   `json:"stats_interval"`
	StatsDest     string     `json:"stats_dest,omitempty"`
	StatsLink     proto.Link `json:"-"`
	// Exports are the node's disks served as AoE targets (EtherType
	// 0x88A2) on Iface, e.g. {7, 1, "/srv/disk1.img"}. AoELink, for
	// tests, serves them on a given link.
	Exports []Export   `json:"exports,omitempty"`
	AoELink proto.Link `json:"-"`
	// InitiatorLink, for tests, is the link the node's volume client
	// reaches other nodes' replicas on (an AoE initiator); without it the
	// initiator opens Iface (none when Link is given).
	InitiatorLink proto.Link `json:"-"`
	// VolumeDir holds the unix sockets the node serves attached volumes
	// on as NBD, <id>.sock (default /run/mvstack/volumes).
	VolumeDir string `json:"volume_dir,omitempty"`
	// VolumeIOTimeout bounds each replica request of an attached volume
	// and the controller's answer when a replica fails (volume.Config.IOTimeout).
	VolumeIOTimeout Duration `json:"volume_io_timeout"`
	// StateDir keeps the highest term seen and the domains the node should
	// run across restarts; empty keeps nothing.
	StateDir string `json:"state_dir,omitempty"`
	// Controller is the MAC heartbeats go to; empty sends none.
	Controller string `json:"controller,omitempty"`
	// HeartbeatInterval is how often heartbeats go out and wild guests
	// are looked for.
	HeartbeatInterval Duration `json:"heartbeat_interval"`
	// Tolerance is the control protocol's dead-peer tolerance.
	Tolerance Duration `json:"tolerance"`
	// CPUOvercommit is vCPUs per pCPU for the whole node (1..8).
	CPUOvercommit int `json:"cpu_overcommit"`
	// ReservedMemoryMiB is kept for the node itself.
	ReservedMemoryMiB uint64 `json:"reserved_memory_mib,omitempty"`
	// ConsoleSize bounds each domain's console buffer, in bytes.
	ConsoleSize int `json:"console_size"`
	// Events is how many domain events the node keeps for node.info.
	Events int `json:"events"`
	// QEMU configures the qemu driver.
	QEMU QEMUConfig `json:"qemu,omitzero"`
	// StopGuestsOnExit kills the QEMU guests the node started when it
	// stops. By default they keep running and the next start adopts them
	// (the state directory says they are the node's own).
	StopGuestsOnExit bool `json:"stop_guests_on_exit,omitempty"`

	// Link replaces the interface (tests: a proto/linktest port).
	Link proto.Link `json:"-"`
	// Keys replaces the key file.
	Keys *proto.Keyring `json:"-"`
	// NewDriver builds the driver instead of the built-in choice (the
	// qemu driver is wired by cmd/mvnode through it).
	NewDriver func(DriverDeps) (domain.Driver, error) `json:"-"`
	// Logger receives the node's log; nil discards.
	Logger *slog.Logger `json:"-"`
}

// QEMUConfig is what the qemu driver needs from the config file.
type QEMUConfig struct {
	// Binary is qemu-system-x86_64's path.
	Binary string `json:"binary,omitempty"`
	// RunDir holds the guests' QMP sockets and logs (default
	// StateDir/qemu, or /run/mvnode/<node id> without a state directory).
	RunDir string `json:"run_dir,omitempty"`
	// Accel is "tcg" (the default) or "kvm".
	Accel string `json:"accel,omitempty"`
}

// DriverDeps is what a driver is built from.
type DriverDeps struct {
	Config    Config
	Inventory *inventory.Inventory
	Ledger    *domain.Ledger
	// Notify must receive every state change the driver reports.
	Notify func(domain.Event)
	Logger *slog.Logger
}

// duplicateExport names a shelf.slot that two exports share, or "".
func duplicateExport(xs []Export) string {
	seen := map[[2]int]bool{}
	for _, x := range xs {
		k := [2]int{int(x.Shelf), int(x.Slot)}
		if seen[k] {
			return fmt.Sprintf("%d.%d", x.Shelf, x.Slot)
		}
		seen[k] = true
	}
	return ""
}

func validMAC(s string) bool { _, err := proto.ParseMAC(s); return err == nil }

// DefaultConfig returns a sim node's defaults: heartbeats every second, the protocol's 1.5 s tolerance,
// overcommit 8, 64 KiB consoles, 256 events, volume sockets in /run/mvstack/volumes, 30 s volume I/O bound.
func DefaultConfig() Config {
	return Config{
		KeyFile:           "/etc/mvstack/cluster.key",
		Driver:            DriverSim,
		HeartbeatInterval: Duration(time.Second),
		StatsInterval:     Duration(emitter.DefaultInterval),
		Tolerance:         Duration(proto.DefaultConfig().Tolerance),
		CPUOvercommit:     8,
		ConsoleSize:       64 << 10,
		Events:            256,
		VolumeDir:         "/run/mvstack/volumes",
		VolumeIOTimeout:   Duration(volume.DefaultConfig().IOTimeout),
	}
}

// Validate checks the fields; the error names the field.
func (c Config) Validate() error {
	switch {
	case c.Link == nil && c.Iface == "":
		return errors.New("agent: Config.Iface is empty: name the management interface")
	case c.Keys == nil && c.KeyFile == "":
		return errors.New("agent: Config.KeyFile is empty: every frame is authenticated")
	case c.Driver != DriverSim && c.Driver != DriverQEMU:
		return fmt.Errorf("agent: Config.Driver %q: want sim or qemu", c.Driver)
	case c.StatsInterval != 0 && (time.Duration(c.StatsInterval) < emitter.MinInterval || time.Duration(c.StatsInterval) > emitter.MaxInterval):
		return fmt.Errorf("agent: Config.StatsInterval %v: 0 (off) or from %v to %v", time.Duration(c.StatsInterval), emitter.MinInterval, emitter.MaxInterval)
	case c.StatsDest != "" && !validMAC(c.StatsDest):
		return fmt.Errorf("agent: Config.StatsDest %q is not a MAC address", c.StatsDest)
	case duplicateExport(c.Exports) != "":
		return fmt.Errorf("agent: Config.Exports: %s is exported twice", duplicateExport(c.Exports))
	case c.HeartbeatInterval < Duration(10*time.Millisecond):
		return fmt.Errorf("agent: Config.HeartbeatInterval %v is below 10ms", time.Duration(c.HeartbeatInterval))
	case c.Tolerance < Duration(10*time.Millisecond):
		return fmt.Errorf("agent: Config.Tolerance %v is below 10ms", time.Duration(c.Tolerance))
	case c.ConsoleSize < 256:
		return fmt.Errorf("agent: Config.ConsoleSize %d: want at least 256 bytes", c.ConsoleSize)
	case c.Events < 1:
		return fmt.Errorf("agent: Config.Events %d: keep at least one", c.Events)
	case c.VolumeDir == "":
		return errors.New("agent: Config.VolumeDir is empty: attached volumes need a directory for their sockets")
	case c.VolumeIOTimeout < Duration(10*time.Millisecond):
		return fmt.Errorf("agent: Config.VolumeIOTimeout %v is below 10ms", time.Duration(c.VolumeIOTimeout))
	}
	if c.Controller != "" {
		m, err := proto.ParseMAC(c.Controller)
		if err != nil {
			return fmt.Errorf("agent: Config.Controller: %w", err)
		}
		if m.IsMulticast() || m.IsZero() {
			return fmt.Errorf("agent: Config.Controller %s is not a unicast MAC", m)
		}
	}
	if c.SimHardware != nil {
		if err := c.SimHardware.Validate(); err != nil {
			return fmt.Errorf("agent: Config.SimHardware: %w", err)
		}
	}
	return domain.LedgerConfig{CPUOvercommit: c.CPUOvercommit}.Validate()
}

// LoadConfig reads a JSON config file over DefaultConfig: fields the file
// leaves out keep their defaults. Unknown fields are refused, naming them.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("agent: config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("agent: config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseSimHardware reads the short form "2x16x2,256G,4" (sockets ×
// cores × threads, memory with a K/M/G/T suffix, NVMe drive count) used by
// mvnode --sim-hardware.
func ParseSimHardware(s string) (inventory.SimHardware, error) {
	hw := inventory.DefaultSimHardware()
	parts := strings.Split(s, ",")
	bad := func(why string) (inventory.SimHardware, error) {
		return hw, fmt.Errorf("sim hardware %q: %s (want SOCKETSxCORESxTHREADS[,MEMORY[,DISKS]], e.g. 2x16x2,256G,4)", s, why)
	}
	if len(parts) > 3 || parts[0] == "" {
		return bad("wrong number of parts")
	}
	var sock, cores, threads int
	if n, err := fmt.Sscanf(parts[0], "%dx%dx%d", &sock, &cores, &threads); err != nil || n != 3 {
		return bad("topology is not SOCKETSxCORESxTHREADS")
	}
	hw.Sockets, hw.CoresPerSocket, hw.ThreadsPerCore = sock, cores, threads
	if len(parts) > 1 {
		m, err := nodeclient.ParseSize(parts[1])
		if err != nil {
			return bad(err.Error())
		}
		hw.Memory = m
	}
	if len(parts) > 2 {
		var n int
		if _, err := fmt.Sscanf(parts[2], "%d", &n); err != nil || n < 0 || n > 64 {
			return bad("disk count is not 0..64")
		}
		hw.Disks = nil
		for i := range n {
			hw.Disks = append(hw.Disks, inventory.SimDisk{Name: fmt.Sprintf("nvme%dn1", i), Size: 1600e9, Kind: "nvme"})
		}
	}
	return hw, hw.Validate()
}
