package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/cmd/internal/mgmt"
	"github.com/mvstack/mvstack/proto"
)

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "mvctl",
		Usage:     "manage MicroVisor nodes over raw Ethernet",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     append(append(commonFlags(), mvmacFlag()), seedFlags()...),
		// mvctl --mvmac MAC --vcpu-pin -d N -v V -c P, as the MicroVisor CLI takes it.
		Action:   seedAction,
		Commands: append([]*cli.Command{keygenCommand(), discoverCommand(), pingCommand(), responderCommand(), statsCommand()}, nodeCommands()...),
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// commonFlags are accepted before the command (mvctl --iface eth0 ping …)
// and after it (mvctl ping --iface eth0 …), as operators type both.
func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, EnvVars: []string{"MVCTL_IFACE"},
			Usage: "management interface (default: the first Ethernet interface that is up)"},
		&cli.StringFlag{Name: "key", EnvVars: []string{"MVSTACK_KEY"}, Value: mgmt.DefaultKeyFile,
			Usage: "cluster key file (made by 'mvctl keygen')"},
		&cli.DurationFlag{Name: "tolerance", Value: proto.DefaultConfig().Tolerance,
			Usage: "how long a silent node is waited for before it is declared dead"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log protocol events to stderr"},
	}
}

// withCommon adds the common flags to a command's own.
func withCommon(flags ...cli.Flag) []cli.Flag { return append(flags, commonFlags()...) }

// The value of a common flag: from the innermost level where it was set.
func optString(c *cli.Context, name string) string {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return cc.String(name)
		}
	}
	return c.String(name)
}

func optDuration(c *cli.Context, name string) time.Duration {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return cc.Duration(name)
		}
	}
	return c.Duration(name)
}

func optBool(c *cli.Context, name string) bool {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return cc.Bool(name)
		}
	}
	return c.Bool(name)
}

// openEndpoint opens the control protocol on the management interface with
// the cluster key, from the common flags.
func openEndpoint(c *cli.Context) (*proto.Endpoint, string, error) {
	o := mgmt.Options{Iface: optString(c, "iface"), KeyFile: optString(c, "key"), Tolerance: optDuration(c, "tolerance")}
	if optBool(c, "verbose") {
		o.Log = c.App.ErrWriter
	}
	return mgmt.Open(o)
}

// mvmac parses the --mvmac flag.
func mvmac(c *cli.Context) (proto.MAC, error) {
	s := optString(c, "mvmac")
	if s == "" {
		return proto.MAC{}, errors.New("--mvmac is required: the node's management MAC, e.g. --mvmac 0cc47a77f9af")
	}
	m, err := proto.ParseMAC(s)
	if err != nil {
		return m, fmt.Errorf("--mvmac: %w", err)
	}
	return m, nil
}
