package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/proto"
)

// DefaultKeyFile is where mvctl and the daemons look for the cluster key.
const DefaultKeyFile = "/etc/mvstack/cluster.key"

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
		&cli.StringFlag{Name: "key", EnvVars: []string{"MVSTACK_KEY"}, Value: DefaultKeyFile,
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
// the cluster key.
func openEndpoint(c *cli.Context) (*proto.Endpoint, string, error) {
	keys, err := proto.LoadKeyring(optString(c, "key"))
	if err != nil {
		return nil, "", err
	}
	iface := optString(c, "iface")
	if iface == "" {
		if iface, err = defaultInterface(); err != nil {
			return nil, "", err
		}
	}
	link, err := proto.OpenPacketLink(iface, proto.EtherTypeControl, nil)
	if err != nil {
		return nil, "", err
	}
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	cfg.Tolerance = optDuration(c, "tolerance")
	cfg.ProbeInterval = cfg.Tolerance / 8
	if optBool(c, "verbose") {
		cfg.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ep, err := proto.NewEndpoint(link, cfg)
	if err != nil {
		link.Close()
		return nil, "", fmt.Errorf("on %s: %w", iface, err)
	}
	return ep, iface, nil
}

// defaultInterface picks the first interface that is up, not loopback and
// has an Ethernet address.
func defaultInterface() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 && len(ifi.HardwareAddr) == 6 {
			return ifi.Name, nil
		}
	}
	return "", errors.New("no Ethernet interface is up: name one with --iface")
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

// explain turns protocol errors into what an operator needs to read.
func explain(err error, mac proto.MAC, iface string, tolerance time.Duration) error {
	switch {
	case errors.Is(err, proto.ErrUnauthenticated):
		return fmt.Errorf("the node at MAC %s on %s refused our frames: it has another cluster key", mac, iface)
	case errors.Is(err, proto.ErrPeerDead):
		return fmt.Errorf("no node answered at MAC %s on %s within %v", mac, iface, tolerance)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the node at MAC %s on %s did not answer in time: %w", mac, iface, err)
	}
	return err
}
