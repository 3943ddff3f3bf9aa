package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/rrd/rrdcached"
	"github.com/mvstack/mvstack/statsd/rrd/rrdcli"
)

// DefaultKeyFile is where the daemons look for the cluster key.
const DefaultKeyFile = "/etc/mvstack/cluster.key"

// printedError is an error already printed (by rrdcli, as rrdtool does).
type printedError struct{ err error }

func (e printedError) Error() string { return e.err.Error() }
func (e printedError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// `mvstatsd rrd …` takes rrdtool's arguments as they are.
	if len(args) > 1 && args[1] == "rrd" {
		if err := rrdcli.Run(ctx, args[2:], stdout, stderr); err != nil {
			return printedError{err}
		}
		return nil
	}
	return newApp(stdout, stderr).RunContext(ctx, args)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	def := aggregator.DefaultConfig("")
	return &cli.App{
		Name:      "mvstatsd",
		Usage:     "store the nodes' stat frames as RRD time series and serve them",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			{
				Name:      "serve",
				Usage:     "receive stat frames on an interface and serve the series over HTTP",
				UsageText: "mvstatsd serve --iface IF [--dir DIR] [--listen ADDR|unix:PATH] [--key FILE] [--step S] [--rra RRA:CF:xff:steps:rows ...]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Required: true, Usage: "interface the stat frames arrive on"},
					&cli.StringFlag{Name: "key", EnvVars: []string{"MVSTACK_KEY"}, Value: DefaultKeyFile, Usage: "cluster key file (made by 'mvctl keygen')"},
					&cli.StringFlag{Name: "dir", Value: "/var/lib/mvstatsd", Usage: "where the RRD files live"},
					&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8086", Usage: "HTTP address, host:port or unix:/path/to/socket"},
					&cli.Uint64Flag{Name: "step", Value: def.Step, Usage: "RRD step (seconds) of new files"},
					&cli.Uint64Flag{Name: "heartbeat", Value: def.Heartbeat, Usage: "seconds of silence before a series is unknown"},
					&cli.StringSliceFlag{Name: "rra", Usage: "archives of new files in rrdtool syntax (default: 10 s for a day, 1 min for a week, 1 h for 13 months; AVERAGE, MIN, MAX, LAST)"},
					&cli.DurationFlag{Name: "flush", Value: def.FlushInterval, Usage: "how often received updates are committed to disk"},
					&cli.IntFlag{Name: "max-series", Value: def.MaxSeries, Usage: "most series (files) kept; updates of more are dropped and counted"},
					&cli.StringFlag{Name: "rrdcached", Usage: "also hand every update to rrdcached at this socket (unix:/path or host:port), so it writes real .rrd files in its -b directory"},
					&cli.StringFlag{Name: "sync", Value: "fs", Usage: "how commits are made durable: fs (one syncfs), each (fsync per file), none"},
					&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log to stderr"},
				},
				Action: serve,
			},
			{
				Name:            "rrd",
				Usage:           "rrdtool's create, update, fetch, dump, restore, info, last and first on mvstatsd's files",
				UsageText:       "mvstatsd rrd COMMAND [rrdtool arguments]",
				SkipFlagParsing: true,
				Action:          func(*cli.Context) error { return nil }, // run() hands `rrd` to rrdcli
			},
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func serve(c *cli.Context) error {
	cfg := aggregator.DefaultConfig(c.String("dir"))
	cfg.Step, cfg.Heartbeat, cfg.FlushInterval = c.Uint64("step"), c.Uint64("heartbeat"), c.Duration("flush")
	cfg.MaxSeries = c.Int("max-series")
	switch s := c.String("sync"); s {
	case "fs":
		cfg.Sync = rrd.SyncFS
	case "each":
		cfg.Sync = rrd.SyncEach
	case "none":
		cfg.Sync = rrd.SyncNone
	default:
		return fmt.Errorf("--sync %q: fs, each or none", s)
	}
	if rras := c.StringSlice("rra"); len(rras) > 0 {
		cfg.RRA = nil
		for _, s := range rras {
			r, err := rrd.ParseRRA(s)
			if err != nil {
				return fmt.Errorf("--rra: %w", err)
			}
			cfg.RRA = append(cfg.RRA, r)
		}
	}
	log := slog.New(slog.DiscardHandler)
	if c.Bool("verbose") {
		log = slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	}
	cfg.Logger = log
	keys, err := proto.LoadKeyring(c.String("key"))
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	cfg.Keys = keys
	if addr := c.String("rrdcached"); addr != "" {
		rc := rrdcached.DefaultConfig()
		rc.Addr, rc.Logger = addr, log
		client, err := rrdcached.Dial(c.Context, rc)
		if err != nil {
			return fmt.Errorf("--rrdcached %s: %w", addr, err)
		}
		cfg.Mirror = rrdcached.NewBackend(client)
	}
	iface := c.String("iface")
	link, err := proto.OpenPacketLink(iface, proto.EtherTypeStats, nil)
	if err != nil {
		if cfg.Mirror != nil {
			cfg.Mirror.Close()
		}
		return fmt.Errorf("--iface %s: %w", iface, err)
	}
	cfg.Link = link
	agg, err := aggregator.New(cfg)
	if err != nil {
		link.Close()
		if cfg.Mirror != nil {
			cfg.Mirror.Close()
		}
		return err
	}
	ln, err := listen(c.String("listen"))
	if err != nil {
		agg.Close()
		link.Close()
		return err
	}
	srv := &http.Server{Handler: agg.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	fmt.Fprintf(c.App.Writer, "mvstatsd: listening on %s, receiving stat frames on %s (%s), %d series in %s\n",
		c.String("listen"), iface, link.Addr(), len(agg.List("", "")), cfg.Dir)

	runErr := make(chan error, 1)
	go func() { runErr <- agg.Run(c.Context) }()
	select {
	case err = <-runErr:
	case err = <-srvErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(sctx)
	cancel()
	link.Close()
	if c.Context.Err() != nil {
		err = nil // asked to stop
	}
	if cerr := agg.Close(); err == nil {
		err = cerr
	}
	return err
}

// listen opens host:port or unix:/path (replacing a stale socket).
func listen(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		os.Remove(p)
		ln, err := net.Listen("unix", p)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", addr, err)
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	return ln, nil
}
