package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/mvstack/mvstack/cmd/internal/cmdmain"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/nbd"
	"github.com/mvstack/mvstack/aoe/rawlink"
	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/proto"
	"github.com/urfave/cli/v2"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &cli.App{
		Name:      "mvaoe",
		Usage:     "ATA over Ethernet (AoE r11) target, initiator and NBD front end",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log debug messages to stderr"},
			&cli.BoolFlag{Name: "netpoll-link", Hidden: true, Usage: "use proto's netpoller AF_PACKET link instead of aoe/rawlink (for comparison)"},
		},
		Commands: []*cli.Command{
			{
				Name:      "serve",
				Usage:     "serve FILE (regular, sparse or block device) as AoE target SHELF.SLOT on IFACE, like vblade",
				ArgsUsage: "SHELF SLOT IFACE FILE",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "read-only", Aliases: []string{"r"}, Usage: "abort every write"},
					&cli.IntFlag{Name: "buffers", Aliases: []string{"b"}, Value: target.DefaultBufferCount, Usage: "Buffer Count advertised to initiators (requests in flight), at least 64"},
					&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "initial config string"},
					&cli.StringFlag{Name: "mac-mask", Aliases: []string{"m"}, Usage: "comma-separated MACs: answer only these initiators"},
					&cli.BoolFlag{Name: "write-back", Usage: "ack writes before they are durable (FLUSH CACHE still syncs)"},
					&cli.BoolFlag{Name: "direct", Aliases: []string{"d"}, Usage: "open FILE with O_DIRECT (bypass the page cache)"},
					&cli.BoolFlag{Name: "no-map", Usage: "read FILE with pread only; by default a page-cached FILE is also mapped read-only and reads copy from the mapping"},
					&cli.IntFlag{Name: "workers", Value: target.DefaultConfig().Workers, Usage: "parallel I/O workers"},
					&cli.StringSliceFlag{Name: "export", Usage: "another export on the same interface, as SHELF.SLOT=FILE (repeatable)"},
					&cli.Uint64Flag{Name: "epoch", Usage: "keep an epoch starting at N (replicated volumes): ATA I/O only from initiators registered at the current epoch (see mvaoe epoch); 0 = a standard AoE target"},
					&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile to this file"},
				},
				Action: func(c *cli.Context) error { return serve(c, stderr) },
			},
			{
				Name:  "discover",
				Usage: "broadcast Query Config and list the AoE targets that answer",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "iface", Aliases: []string{"i"}, Required: true, Usage: "interface to ask on (repeatable)"},
					&cli.DurationFlag{Name: "wait", Value: time.Second, Usage: "how long to collect answers"},
				},
				Action: func(c *cli.Context) error { return discover(c, stdout, stderr) },
			},
			{
				Name:  "stat",
				Usage: "discover targets and identify each: size, model, paths",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "iface", Aliases: []string{"i"}, Required: true, Usage: "interface to ask on (repeatable)"},
					&cli.DurationFlag{Name: "wait", Value: time.Second, Usage: "how long to collect answers"},
				},
				Action: func(c *cli.Context) error { return stat(c, stdout, stderr) },
			},
			{
				Name:      "epoch",
				Usage:     "register this host at epoch N with every target of SHELF.SLOT (raising it), or read the epoch; prints the current epoch",
				ArgsUsage: "SHELF.SLOT [N]",
				Description: "With N, registers this host's MAC at epoch N with every target serving SHELF.SLOT (mvstack's\n" +
					"vendor command 0xF0): a target at an older epoch raises it to N, so initiators registered\n" +
					"before are fenced; a target at a newer epoch refuses (\"stale\", exit status 1). Without N,\n" +
					"reads the epoch. Standard targets (vblade) do not know the command.",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "iface", Aliases: []string{"i"}, Required: true, Usage: "interface to reach the target on (repeatable: multipath)"},
					&cli.DurationFlag{Name: "wait", Value: time.Second, Usage: "how long discovery collects answers"},
				},
				Action: func(c *cli.Context) error { return epoch(c, stdout, stderr) },
			},
			{
				Name:      "nbd",
				Usage:     "serve AoE device SHELF.SLOT as an NBD export on unix socket SOCKET",
				ArgsUsage: "SHELF.SLOT SOCKET",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "iface", Aliases: []string{"i"}, Required: true, Usage: "interface to reach the target on (repeatable: multipath)"},
					&cli.StringFlag{Name: "name", Usage: "export name (the empty name always works too)", Value: "aoe"},
					&cli.BoolFlag{Name: "read-only", Usage: "refuse writes"},
					&cli.DurationFlag{Name: "wait", Value: time.Second, Usage: "how long discovery collects answers"},
				},
				Action: func(c *cli.Context) error { return serveNBD(c, stderr) },
			},
		},
	}
	return app.RunContext(ctx, args)
}

func logger(c *cli.Context, stderr io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// parseAddr parses "SHELF.SLOT".
func parseAddr(s string) (uint16, uint8, error) {
	sh, sl, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, fmt.Errorf("address %q: want SHELF.SLOT, like 1.0", s)
	}
	shelf, slot, err := parseShelfSlot(sh, sl)
	if err != nil {
		return 0, 0, fmt.Errorf("address %q: %w", s, err)
	}
	return shelf, slot, nil
}

func parseShelfSlot(sh, sl string) (uint16, uint8, error) {
	shelf, err := strconv.ParseUint(sh, 0, 16)
	if err != nil || shelf >= aoe.BroadcastShelf {
		return 0, 0, fmt.Errorf("shelf %q: want 0 to 65534", sh)
	}
	slot, err := strconv.ParseUint(sl, 0, 8)
	if err != nil || slot >= aoe.BroadcastSlot {
		return 0, 0, fmt.Errorf("slot %q: want 0 to 254", sl)
	}
	return uint16(shelf), uint8(slot), nil
}

// openLink opens an AoE link on the interface: aoe/rawlink, whose reads
// block on their own thread, unless --netpoll-link asks for proto's.
func openLink(c *cli.Context, name string) (proto.Link, error) {
	if c.Bool("netpoll-link") {
		return proto.OpenPacketLink(name, proto.EtherTypeAoE, nil)
	}
	return rawlink.Open(name, proto.EtherTypeAoE)
}

func openLinks(c *cli.Context, ifaces []string) ([]proto.Link, func(), error) {
	var links []proto.Link
	closeAll := func() {
		for _, l := range links {
			l.Close()
		}
	}
	for _, name := range ifaces {
		l, err := openLink(c, name)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		links = append(links, l)
	}
	return links, closeAll, nil
}

func serve(c *cli.Context, stderr io.Writer) error {
	if c.NArg() != 4 {
		return fmt.Errorf("serve wants SHELF SLOT IFACE FILE, got %d arguments (see mvaoe serve --help)", c.NArg())
	}
	shelf, slot, err := parseShelfSlot(c.Args().Get(0), c.Args().Get(1))
	if err != nil {
		return err
	}
	iface, file := c.Args().Get(2), c.Args().Get(3)
	var mask []proto.MAC
	if s := c.String("mac-mask"); s != "" {
		for _, m := range strings.Split(s, ",") {
			mac, err := proto.ParseMAC(m)
			if err != nil {
				return fmt.Errorf("--mac-mask: %w", err)
			}
			mask = append(mask, mac)
		}
	}
	type spec struct {
		shelf uint16
		slot  uint8
		file  string
	}
	specs := []spec{{shelf, slot, file}}
	for _, e := range c.StringSlice("export") {
		addr, f, ok := strings.Cut(e, "=")
		if !ok {
			return fmt.Errorf("--export %q: want SHELF.SLOT=FILE", e)
		}
		sh, sl, err := parseAddr(addr)
		if err != nil {
			return fmt.Errorf("--export: %w", err)
		}
		specs = append(specs, spec{sh, sl, f})
	}
	var exports []target.ExportConfig
	for _, s := range specs {
		b, err := target.OpenFile(s.file, target.FileOptions{ReadOnly: c.Bool("read-only"), Direct: c.Bool("direct"), NoMap: c.Bool("no-map")})
		if err != nil {
			return err
		}
		defer b.Close()
		ec := target.DefaultExportConfig()
		ec.Shelf, ec.Slot, ec.Backend = s.shelf, s.slot, b
		ec.ReadOnly, ec.WriteBack = c.Bool("read-only"), c.Bool("write-back")
		ec.BufferCount, ec.Config, ec.MACMask = c.Int("buffers"), c.String("config"), mask
		if ec.Epoch = c.Uint64("epoch"); ec.Epoch > 0 {
			log := logger(c, stderr)
			ec.OnEpoch = func(e uint64) error {
				log.Info("epoch raised", "export", fmt.Sprintf("%d.%d", s.shelf, s.slot), "epoch", e)
				return nil
			}
		}
		exports = append(exports, ec)
	}
	link, err := openLink(c, iface)
	if err != nil {
		return err
	}
	defer link.Close()
	cfg := target.DefaultConfig()
	cfg.Workers = c.Int("workers")
	cfg.Logger = logger(c, stderr)
	srv, err := target.NewServer(link, cfg, exports...)
	if err != nil {
		return err
	}
	if c.Bool("direct") || !c.Bool("write-back") && !c.Bool("read-only") {
		// Reads or writes wait on the disk, each holding a P meanwhile.
		cfg.Logger.Debug("GOMAXPROCS", "n", cmdmain.AtLeastProcs(cfg.Procs()))
	}
	if p := c.String("cpuprofile"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, e := range exports {
		fmt.Fprintf(stderr, "serving %d.%d on %s (%s), %d sectors, %d sectors per frame",
			e.Shelf, e.Slot, iface, link.Addr(), e.Backend.Size()/aoe.SectorSize, srv.SectorsPerFrame())
		if e.Epoch > 0 {
			fmt.Fprintf(stderr, ", epoch %d", e.Epoch)
		}
		fmt.Fprintln(stderr)
	}
	return srv.Serve(c.Context)
}

func newInitiator(c *cli.Context, stderr io.Writer) (*initiator.Initiator, func(), error) {
	links, closeLinks, err := openLinks(c, c.StringSlice("iface"))
	if err != nil {
		return nil, nil, err
	}
	cfg := initiator.DefaultConfig()
	cfg.Links = links
	cfg.DiscoverWait = c.Duration("wait")
	cfg.Logger = logger(c, stderr)
	in, err := initiator.New(cfg)
	if err != nil {
		closeLinks()
		return nil, nil, err
	}
	return in, func() { in.Close(); closeLinks() }, nil
}

// discoverAll broadcasts a Query Config on the --iface links and calls
// show with what answered; it fails when nothing did.
func discoverAll(c *cli.Context, stderr io.Writer, show func(in *initiator.Initiator, found []initiator.TargetInfo, ifaces []string) error) error {
	in, done, err := newInitiator(c, stderr)
	if err != nil {
		return err
	}
	defer done()
	found, err := in.Discover(c.Context, aoe.BroadcastShelf, aoe.BroadcastSlot)
	if err != nil {
		return err
	}
	ifaces := c.StringSlice("iface")
	if err := show(in, found, ifaces); err != nil {
		return err
	}
	if len(found) == 0 {
		return fmt.Errorf("no AoE target answered on %s", strings.Join(ifaces, ", "))
	}
	return nil
}

func discover(c *cli.Context, stdout, stderr io.Writer) error {
	return discoverAll(c, stderr, func(_ *initiator.Initiator, found []initiator.TargetInfo, ifaces []string) error {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TARGET\tMAC\tIFACE\tBUFFERS\tSECTORS/FRAME\tFIRMWARE\tCONFIG")
		for _, t := range found {
			fmt.Fprintf(tw, "%d.%d\t%s\t%s\t%d\t%d\t%#04x\t%q\n", t.Shelf, t.Slot, t.MAC, ifaces[t.Link], t.BufferCount, t.SectorsPerFrame, t.Firmware, t.Config)
		}
		return tw.Flush()
	})
}

func stat(c *cli.Context, stdout, stderr io.Writer) error {
	return discoverAll(c, stderr, func(in *initiator.Initiator, found []initiator.TargetInfo, ifaces []string) error {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TARGET\tSIZE\tMODEL\tSERIAL\tPATHS")
		seen := map[[2]int]bool{}
		var errs []error
		for _, t := range found {
			k := [2]int{int(t.Shelf), int(t.Slot)}
			if seen[k] {
				continue
			}
			seen[k] = true
			d, err := in.Open(c.Context, t.Shelf, t.Slot)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var paths []string
			for _, p := range d.Paths() {
				paths = append(paths, fmt.Sprintf("%s@%s", p.MAC, ifaces[p.Link]))
			}
			id := d.Identity()
			fmt.Fprintf(tw, "%d.%d\t%.3f GB\t%s\t%s\t%s\n", t.Shelf, t.Slot, float64(d.Size())/1e9, id.Model, id.Serial, strings.Join(paths, ","))
			d.Close()
		}
		tw.Flush()
		return errors.Join(errs...)
	})
}

// epoch registers at an epoch by hand, or reads it.
func epoch(c *cli.Context, stdout, stderr io.Writer) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return fmt.Errorf("epoch wants SHELF.SLOT [N], got %d arguments (see mvaoe epoch --help)", c.NArg())
	}
	shelf, slot, err := parseAddr(c.Args().Get(0))
	if err != nil {
		return err
	}
	var n uint64
	if c.NArg() == 2 {
		if n, err = strconv.ParseUint(c.Args().Get(1), 0, 64); err != nil || n == 0 {
			return fmt.Errorf("epoch %q: want a number from 1 to 2^64-1", c.Args().Get(1))
		}
	}
	in, done, err := newInitiator(c, stderr)
	if err != nil {
		return err
	}
	defer done()
	d, err := in.Open(c.Context, shelf, slot)
	if err != nil {
		return err
	}
	defer d.Close()
	if n > 0 {
		if err := d.SetEpoch(c.Context, n); err != nil {
			return err
		}
	}
	cur, err := d.TargetEpoch(c.Context)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, cur)
	return nil
}

// serveNBD serves an AoE device as an NBD export.
func serveNBD(c *cli.Context, stderr io.Writer) error {
	if c.NArg() != 2 {
		return fmt.Errorf("nbd wants SHELF.SLOT SOCKET, got %d arguments (see mvaoe nbd --help)", c.NArg())
	}
	shelf, slot, err := parseAddr(c.Args().Get(0))
	if err != nil {
		return err
	}
	sock := c.Args().Get(1)
	in, done, err := newInitiator(c, stderr)
	if err != nil {
		return err
	}
	defer done()
	d, err := in.Open(c.Context, shelf, slot)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := nbd.DefaultConfig()
	cfg.Exports = []nbd.Export{{Name: c.String("name"), Description: fmt.Sprintf("AoE %d.%d", shelf, slot), Device: d, ReadOnly: c.Bool("read-only")}}
	cfg.Logger = logger(c, stderr)
	srv, err := nbd.NewServer(cfg)
	if err != nil {
		return err
	}
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	fmt.Fprintf(stderr, "serving AoE %d.%d (%d bytes, %d paths) as NBD export %q on %s\n", shelf, slot, d.Size(), len(d.Paths()), c.String("name"), sock)
	return srv.Serve(c.Context, ln)
}
