// Package mgmt opens the control protocol for mvstack's command-line tools
// (mvctl, mvctl-perfc) and explains its errors the way an operator reads
// them.
package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mvstack/mvstack/proto"
)

// DefaultKeyFile is where the tools and the daemons look for the cluster key.
const DefaultKeyFile = "/etc/mvstack/cluster.key"

// Options says how to reach the segment.
type Options struct {
	Iface     string        // "" picks DefaultInterface
	KeyFile   string        // the cluster key file
	Tolerance time.Duration // how long a silent node is waited for
	Log       io.Writer     // protocol events at debug level; nil: none
}

// Open opens the control protocol on the management interface with the
// cluster key, and returns the endpoint and the interface's name.
func Open(o Options) (*proto.Endpoint, string, error) {
	keys, err := proto.LoadKeyring(o.KeyFile)
	if err != nil {
		return nil, "", err
	}
	iface := o.Iface
	if iface == "" {
		if iface, err = DefaultInterface(); err != nil {
			return nil, "", err
		}
	}
	link, err := proto.OpenPacketLink(iface, proto.EtherTypeControl, nil)
	if err != nil {
		return nil, "", err
	}
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	if o.Tolerance > 0 {
		cfg.Tolerance = o.Tolerance
		cfg.ProbeInterval = o.Tolerance / 8
	}
	if o.Log != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ep, err := proto.NewEndpoint(link, cfg)
	if err != nil {
		link.Close()
		return nil, "", fmt.Errorf("on %s: %w", iface, err)
	}
	return ep, iface, nil
}

// DefaultInterface picks the first interface that is up, not loopback, and
// has an Ethernet address.
func DefaultInterface() (string, error) {
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

// Explain turns a protocol error into a sentence naming the node, the
// interface and the cause; the cause still matches errors.Is.
func Explain(err error, mac proto.MAC, iface string, tolerance time.Duration) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, proto.ErrUnauthenticated):
		return explained{fmt.Sprintf("the node at MAC %s on %s refused our frames: it has another cluster key", mac, iface), err}
	case errors.Is(err, proto.ErrPeerDead):
		return explained{fmt.Sprintf("no node answered at MAC %s on %s within %v", mac, iface, tolerance), err}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the node at MAC %s on %s did not answer in time: %w", mac, iface, err)
	}
	return err
}

// explained says what happened in an operator's words and still unwraps
// to the protocol's error, so errors.Is keeps working.
type explained struct {
	msg   string
	cause error
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.cause }
