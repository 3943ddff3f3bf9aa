package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/cmd/internal/cmdmain"
	"github.com/mvstack/mvstack/node/agent"
)

func newApp(stdout, stderr io.Writer) *cli.App {
	def := agent.DefaultConfig()
	return &cli.App{
		Name:  "mvnode",
		Usage: "the MicroVisor node daemon: runs domains and answers the control protocol",
		UsageText: "mvnode --config /etc/mvstack/mvnode.json\n" +
			"mvnode --iface eth0 --driver sim --sim-hardware 2x16x2,256G,4 --rack r1 --chassis c1 --blade b1",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "JSON config file (flags override it)"},
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Usage: "management interface; its MAC is the node's identity"},
			&cli.StringFlag{Name: "key", Value: def.KeyFile, Usage: "cluster key file"},
			&cli.StringFlag{Name: "driver", Value: def.Driver, Usage: "domain driver: sim or qemu"},
			&cli.StringFlag{Name: "sim-hardware", Usage: "declared hardware SOCKETSxCORESxTHREADS[,MEMORY[,DISKS]] (a sim node declares 2x16x2,256G,4 without it; a qemu node probes the machine)"},
			&cli.StringFlag{Name: "rack", Usage: "where the node sits: rack"},
			&cli.StringFlag{Name: "chassis", Usage: "where the node sits: chassis"},
			&cli.StringFlag{Name: "blade", Usage: "where the node sits: blade"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve /metrics on this HTTP address, e.g. 127.0.0.1:9101"},
			&cli.StringFlag{Name: "state-dir", Usage: "keep the highest controller term and the domains to run here across restarts"},
			&cli.StringFlag{Name: "controller", Usage: "send heartbeats to the controller at this MAC"},
			&cli.DurationFlag{Name: "heartbeat-interval", Value: time.Duration(def.HeartbeatInterval), Usage: "how often heartbeats go out"},
			&cli.DurationFlag{Name: "stats-interval", Value: time.Duration(def.StatsInterval), Usage: "how often stat frames (EtherType 0x88B6) go out, 1s to 1h; 0 sends none"},
			&cli.StringSliceFlag{Name: "export", Usage: "serve a disk as an AoE target: SHELF.SLOT:PATH[,ro][,wb] (repeatable), e.g. 7.1:/srv/disk1.img"},
			&cli.StringFlag{Name: "volume-dir", Value: def.VolumeDir, Usage: "where attached volumes are served as NBD: unix sockets DIR/VOLUME.sock (a domain disk nbd:DIR/VOLUME.sock)"},
			&cli.DurationFlag{Name: "volume-io-timeout", Value: time.Duration(def.VolumeIOTimeout), Usage: "how long an attached volume waits for a replica, and for the controller to drop a failed one, before the I/O fails"},
			&cli.StringFlag{Name: "stats-dest", Usage: "send stat frames to the aggregator (mvstatsd) at this MAC (default: broadcast)"},
			&cli.DurationFlag{Name: "tolerance", Value: time.Duration(def.Tolerance), Usage: "how long a silent peer is waited for"},
			&cli.IntFlag{Name: "cpu-overcommit", Value: def.CPUOvercommit, Usage: "vCPUs per pCPU for the whole node, 1..8"},
			&cli.StringSliceFlag{Name: "drive-file", Usage: "a file reported as a drive (repeatable); a blank one (first 64 KiB zero) is formatted as a pool when the controller first places a replica on it, one holding other data is refused, never overwritten"},
			&cli.StringFlag{Name: "qemu-binary", Usage: "qemu-system-x86_64 to run guests with (qemu driver)"},
			&cli.StringFlag{Name: "run-dir", Usage: "where QEMU guests' sockets and logs go (qemu driver; default STATE-DIR/qemu or /run/mvnode/NODE)"},
			&cli.StringFlag{Name: "accel", Usage: "QEMU accelerator: tcg or kvm (qemu driver; default tcg)"},
			&cli.BoolFlag{Name: "stop-guests-on-exit", Usage: "kill QEMU guests when mvnode stops (default: leave them running and adopt them at the next start)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: serve,
	}
}

// config builds the agent's config: defaults, then the file, then flags.
func config(c *cli.Context) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	if p := c.String("config"); p != "" {
		var err error
		if cfg, err = agent.LoadConfig(p); err != nil {
			return cfg, err
		}
	}
	str := func(name string, dst *string) {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	str("iface", &cfg.Iface)
	str("key", &cfg.KeyFile)
	str("driver", &cfg.Driver)
	str("rack", &cfg.Location.Rack)
	str("chassis", &cfg.Location.Chassis)
	str("blade", &cfg.Location.Blade)
	str("metrics-addr", &cfg.MetricsAddr)
	str("state-dir", &cfg.StateDir)
	str("controller", &cfg.Controller)
	str("qemu-binary", &cfg.QEMU.Binary)
	str("run-dir", &cfg.QEMU.RunDir)
	str("accel", &cfg.QEMU.Accel)
	if c.IsSet("stop-guests-on-exit") {
		cfg.StopGuestsOnExit = c.Bool("stop-guests-on-exit")
	}
	str("stats-dest", &cfg.StatsDest)
	str("volume-dir", &cfg.VolumeDir)
	if c.IsSet("volume-io-timeout") {
		cfg.VolumeIOTimeout = agent.Duration(c.Duration("volume-io-timeout"))
	}
	for _, x := range c.StringSlice("export") {
		e, err := agent.ParseExport(x)
		if err != nil {
			return cfg, fmt.Errorf("--export: %w", err)
		}
		cfg.Exports = append(cfg.Exports, e)
	}
	if c.IsSet("stats-interval") {
		cfg.StatsInterval = agent.Duration(c.Duration("stats-interval"))
	}
	if c.IsSet("heartbeat-interval") {
		cfg.HeartbeatInterval = agent.Duration(c.Duration("heartbeat-interval"))
	}
	if c.IsSet("tolerance") {
		cfg.Tolerance = agent.Duration(c.Duration("tolerance"))
	}
	if c.IsSet("cpu-overcommit") {
		cfg.CPUOvercommit = c.Int("cpu-overcommit")
	}
	if c.IsSet("drive-file") {
		cfg.DriveFiles = c.StringSlice("drive-file")
	}
	if c.IsSet("sim-hardware") {
		hw, err := agent.ParseSimHardware(c.String("sim-hardware"))
		if err != nil {
			return cfg, fmt.Errorf("--sim-hardware: %w", err)
		}
		cfg.SimHardware = &hw
	}
	return cfg, nil
}

func serve(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: mvnode takes flags only", c.Args().Slice())
	}
	cfg, err := config(c)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	// The node's AoE target acknowledges writes once durable: its workers
	// wait in fdatasync, each holding a P (bench/storage: 1-replica 1 MiB
	// writes 121 -> 199 MB/s with a P each).
	cfg.Logger.Debug("GOMAXPROCS", "n", cmdmain.AtLeastProcs(target.DefaultConfig().Procs()))
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(c.Context) }()
	// Tests and operators wait for this line.
	fmt.Fprintf(c.App.Writer, "mvnode: node %s (%s) answering on %s, driver %s, %d pCPUs, %d MiB\n",
		a.NodeID(), a.Addr(), cfg.Iface, a.Inventory().Hypervisor, a.Inventory().PCPUs(), a.Inventory().Memory>>20)
	err = <-done
	fmt.Fprintf(c.App.Writer, "mvnode: node %s stopped at %s\n", a.NodeID(), time.Now().UTC().Format(time.RFC3339))
	return err
}
