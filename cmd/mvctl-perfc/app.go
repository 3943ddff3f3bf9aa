package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/cmd/internal/mgmt"
	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/perfcrpc"
	"github.com/mvstack/mvstack/proto"
)

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "mvctl-perfc",
		Usage: "read and reset a node's performance counters over raw Ethernet",
		UsageText: "mvctl-perfc --mvmac MAC --perfc-dump | --perfc-get NAME | --perf-reset [-d DOMID] [--json]\n" +
			"mvctl-perfc --mvmac MAC --perfc-dump | --perfc-get NAME --interval 1s [--count N] [-d DOMID] [--json]",
		Description: "Counters are named component first (proto.drops.auth, aoe.cmd.read.latency); --perfc-get NAME\n" +
			"returns NAME and every counter below it. Without -d the node's counters and its domains' are\n" +
			"dumped or reset; -d 5 (or -d dn5) narrows to domain dn5. --perf-reset prints what it took away.",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mvmac", Aliases: []string{"m"}, Usage: "the node's management MAC (colons optional)"},
			&cli.BoolFlag{Name: "perfc-dump", Usage: "dump all performance counters"},
			&cli.StringFlag{Name: "perfc-get", Usage: "dump the counter `NAME` and those below it"},
			&cli.BoolFlag{Name: "perf-reset", Usage: "reset the performance counters and print what they held"},
			&cli.StringFlag{Name: "domain", Aliases: []string{"d"}, Usage: "only domain `DOMID` (5 or dn5)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text (one object per interval with --interval)"},
			&cli.DurationFlag{Name: "interval", Aliases: []string{"I"}, Usage: "print increases and rates every `D` (as perf stat -I) until interrupted"},
			&cli.IntFlag{Name: "count", Usage: "with --interval: stop after `N` intervals (0: until interrupted)"},
			&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, EnvVars: []string{"MVCTL_IFACE"},
				Usage: "management interface (default: the first Ethernet interface that is up)"},
			&cli.StringFlag{Name: "key", EnvVars: []string{"MVSTACK_KEY"}, Value: mgmt.DefaultKeyFile,
				Usage: "cluster key file (made by 'mvctl keygen')"},
			&cli.DurationFlag{Name: "tolerance", Value: proto.DefaultConfig().Tolerance,
				Usage: "how long a silent node is waited for before it is declared dead"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log protocol events to stderr"},
		},
		Action: action,
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// options are the parsed command line.
type options struct {
	node     proto.MAC
	req      perfc.Request
	json     bool
	interval time.Duration
	count    int
}

func parseOptions(c *cli.Context) (options, error) {
	var o options
	if c.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: options only (see --help)", c.Args().First())
	}
	modes := 0
	if c.Bool("perfc-dump") {
		modes++
		o.req.Op = perfc.OpDump
	}
	if c.IsSet("perfc-get") {
		modes++
		o.req.Op = perfc.OpGet
		o.req.Query.Prefix = c.String("perfc-get")
		if o.req.Query.Prefix == "" {
			return o, errors.New("--perfc-get needs a counter name, e.g. --perfc-get proto.drops")
		}
	}
	if c.Bool("perf-reset") {
		modes++
		o.req.Op = perfc.OpReset
	}
	if modes != 1 {
		return o, errors.New("give exactly one of --perfc-dump, --perfc-get NAME or --perf-reset")
	}
	s := c.String("mvmac")
	if s == "" {
		return o, errors.New("--mvmac is required: the node's management MAC, e.g. --mvmac 0cc47a77f9af")
	}
	var err error
	if o.node, err = proto.ParseMAC(s); err != nil {
		return o, fmt.Errorf("--mvmac: %w", err)
	}
	if o.req.Domain, err = domain(c.String("domain")); err != nil {
		return o, err
	}
	o.json, o.interval, o.count = c.Bool("json"), c.Duration("interval"), c.Int("count")
	switch {
	case o.interval < 0:
		return o, fmt.Errorf("--interval %v: must be positive", o.interval)
	case o.interval > 0 && o.interval < 10*time.Millisecond:
		return o, fmt.Errorf("--interval %v: at least 10ms", o.interval)
	case o.interval > 0 && o.req.Op == perfc.OpReset:
		return o, errors.New("--interval goes with --perfc-dump or --perfc-get, not --perf-reset")
	case o.count < 0:
		return o, fmt.Errorf("--count %d: must not be negative", o.count)
	case o.count > 0 && o.interval == 0:
		return o, errors.New("--count needs --interval")
	}
	if err := o.req.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// domain turns -d 5 or -d dn5 into the domain's set name.
func domain(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "dn"), 10, 32)
	if err != nil {
		return "", fmt.Errorf("-d %q: a domain id is an instance number (5) or a domain name (dn5)", s)
	}
	return "dn" + strconv.FormatUint(n, 10), nil
}

func action(c *cli.Context) error {
	o, err := parseOptions(c)
	if err != nil {
		return err
	}
	ep, iface, err := openEndpoint(c)
	if err != nil {
		return err
	}
	defer ep.Close()
	client := perfcrpc.NewClient(ep)
	explain := func(err error) error { return explainErr(err, o.node, iface, c.Duration("tolerance")) }
	if o.interval > 0 {
		return explain(poll(c.Context, client, o, c.App.Writer))
	}
	d, err := client.Do(c.Context, o.node, o.req)
	if err != nil {
		return explain(err)
	}
	return printDump(c.App.Writer, o, d)
}

// report is the JSON form of an answer.
type report struct {
	Node   string         `json:"node"`
	NodeID string         `json:"node_id"`
	Op     string         `json:"op"`
	Domain string         `json:"domain,omitempty"`
	Metric []perfc.Metric `json:"metrics"`
}

func printDump(w io.Writer, o options, d perfc.Dump) error {
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(report{Node: o.node.String(), NodeID: o.node.NodeID(), Op: o.req.Op.String(), Domain: o.req.Domain, Metric: nonNil(d.Metrics)})
	}
	where := "node " + o.node.NodeID()
	if o.req.Domain != "" {
		where += " domain " + o.req.Domain
	}
	if o.req.Op == perfc.OpReset {
		fmt.Fprintf(w, "reset %d counters of %s (%s); they held:\n", len(d.Metrics), where, o.node)
	} else {
		fmt.Fprintf(w, "# %d counters of %s (%s)\n", len(d.Metrics), where, o.node)
	}
	return d.WriteText(w)
}

func nonNil(ms []perfc.Metric) []perfc.Metric {
	if ms == nil {
		return []perfc.Metric{}
	}
	return ms
}

// openEndpoint opens the control protocol on the management interface with
// the cluster key.
func openEndpoint(c *cli.Context) (*proto.Endpoint, string, error) {
	o := mgmt.Options{Iface: c.String("iface"), KeyFile: c.String("key"), Tolerance: c.Duration("tolerance")}
	if c.Bool("verbose") {
		o.Log = c.App.ErrWriter
	}
	return mgmt.Open(o)
}

// explainErr turns protocol errors into what an operator needs to read.
func explainErr(err error, mac proto.MAC, iface string, tolerance time.Duration) error {
	if errors.Is(err, proto.ErrUnknownMethod) {
		return fmt.Errorf("the node at MAC %s on %s does not serve performance counters: %w", mac, iface, err)
	}
	return mgmt.Explain(err, mac, iface, tolerance)
}
