package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/cmd/internal/mgmt"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// nodeCommands are the commands that talk to one node (--mvmac).
func nodeCommands() []*cli.Command {
	cmds := []*cli.Command{infoCommand(), domainsCommand(), createCommand(), consoleCommand(),
		vcpuPinCommand(), vcpuInfoCommand(), showCommand(), wildCommand(), importCommand()}
	return append(cmds, opCommands()...)
}

// mvmacFlag names the node; it may also be given before the command.
func mvmacFlag() cli.Flag {
	return &cli.StringFlag{Name: "mvmac", Aliases: []string{"m"}, EnvVars: []string{"MVCTL_MVMAC"},
		Usage: "the node's management MAC (colons optional), e.g. 0cc47a77f9af"}
}

// nodeConn is an open endpoint aimed at one node.
type nodeConn struct {
	ep     *proto.Endpoint
	iface  string
	mac    proto.MAC
	client *nodeclient.Client
	tol    time.Duration
}

// dialNode parses --mvmac and opens the control protocol.
func dialNode(c *cli.Context) (*nodeConn, error) {
	s := optString(c, "mvmac")
	if s == "" {
		return nil, fmt.Errorf("--mvmac is required: the node's management MAC, e.g. mvctl %s --mvmac 0cc47a77f9af", c.Command.Name)
	}
	mac, err := proto.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("--mvmac: %w", err)
	}
	ep, iface, err := openEndpoint(c)
	if err != nil {
		return nil, err
	}
	return &nodeConn{ep: ep, iface: iface, mac: mac, client: nodeclient.New(ep), tol: optDuration(c, "tolerance")}, nil
}

func (n *nodeConn) Close() { n.ep.Close() }

// fail explains an error the way an operator reads it.
func (n *nodeConn) fail(err error) error {
	if ne, ok := err.(*nodeclient.Error); ok {
		return fmt.Errorf("node %s refused: %s", n.mac.NodeID(), ne.Message)
	}
	return mgmt.Explain(err, n.mac, n.iface, n.tol)
}

// nodeAction is the action of a command that asks one node: it opens the
// endpoint, runs ask, and prints the answer as JSON (--json) or as text.
func nodeAction[T any](ask func(c *cli.Context, n *nodeConn) (T, error), text func(c *cli.Context, v T) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		n, err := dialNode(c)
		if err != nil {
			return err
		}
		defer n.Close()
		v, err := ask(c, n)
		if err != nil {
			return n.fail(err)
		}
		if optBool(c, "json") {
			return printJSON(c.App.Writer, v)
		}
		return text(c, v)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "describe a node: hardware, NUMA, allocation, wild and zombie domains",
		UsageText: "mvctl info --mvmac MAC [--json]",
		Flags:     withCommon(mvmacFlag()),
		Action: nodeAction(func(c *cli.Context, n *nodeConn) (nodeclient.NodeInfo, error) {
			return n.client.Info(c.Context, n.mac)
		}, func(c *cli.Context, info nodeclient.NodeInfo) error {
			writeInfo(c.App.Writer, info)
			return nil
		}),
	}
}

func writeInfo(w io.Writer, info nodeclient.NodeInfo) {
	inv := info.Inventory
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("node", "%s", inv.NodeID)
	row("mac", "%s", inv.MAC)
	row("hostname", "%s", inv.Hostname)
	row("hypervisor", "%s", inv.Hypervisor)
	row("arch", "%s", inv.Arch)
	row("location", "rack %s, chassis %s, blade %s", dash(inv.Location.Rack), dash(inv.Location.Chassis), dash(inv.Location.Blade))
	row("cpu", "%s %s, %.0f MHz", inv.CPU.Vendor, inv.CPU.Model, inv.CPU.MHz)
	row("topology", "%d sockets × %d cores × %d threads = %d pCPUs", inv.CPU.Sockets, inv.CPU.CoresPerSocket, inv.CPU.ThreadsPerCore, inv.PCPUs())
	for _, nn := range inv.NUMA {
		row(fmt.Sprintf("numa %d", nn.ID), "cpus %s, %d MiB, distances %s", inventory.FormatCPUList(nn.CPUs), nn.Memory>>20, ints(nn.Distances))
	}
	u := info.Usage
	row("memory", "%d MiB for domains, %d MiB allocated, %d MiB free", u.Memory>>20, (u.Memory-u.MemoryFree)>>20, u.MemoryFree>>20)
	row("vcpus", "%d allocated of %d pCPUs × overcommit %d", u.VCPUs, u.PCPUs, u.Overcommit)
	for _, d := range inv.Disks {
		row("disk "+d.Name, "%s, %d GB, %s", d.Kind, d.Size/1e9, d.Path)
	}
	for _, nic := range inv.NICs {
		row("nic "+nic.Name, "%s, mtu %d", nic.MAC, nic.MTU)
	}
	row("domains", "%d", u.Domains)
	row("wild", "%s", dash(strings.Join(info.Wild, ",")))
	row("zombies", "%s", dash(strings.Join(info.Zombies, ",")))
	row("term", "%d", info.Term)
	row("up since", "%s", info.Started.UTC().Format(time.RFC3339))
	tw.Flush()
	for _, e := range info.Events {
		if e.State == domain.StateCrashed {
			fmt.Fprintf(w, "event %s %s crashed: %s\n", e.At.UTC().Format(time.RFC3339), domain.Name(e.ID), e.Reason)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, " ")
}

func domainsCommand() *cli.Command {
	return &cli.Command{
		Name:      "domains",
		Usage:     "list a node's domains",
		UsageText: "mvctl domains --mvmac MAC [--json]",
		Flags:     withCommon(mvmacFlag()),
		Action: nodeAction(func(c *cli.Context, n *nodeConn) ([]domain.Info, error) {
			return n.client.List(c.Context, n.mac)
		}, func(c *cli.Context, doms []domain.Info) error {
			writeDomains(c.App.Writer, doms)
			return nil
		}),
	}
}

func writeDomains(w io.Writer, doms []domain.Info) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tVCPUS\tTOPOLOGY\tMEMORY\tPID\tNOTE")
	for _, d := range doms {
		t := d.Spec.Topology
		note := d.Reason
		if d.Imported {
			note = strings.TrimSpace("imported " + note)
		}
		pid := "-"
		if d.PID != 0 {
			pid = fmt.Sprint(d.PID)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%dx%dx%d\t%d MiB\t%s\t%s\n", d.ID, d.Name, d.State, d.Spec.VCPUs,
			t.Sockets, t.Cores, t.Threads, d.Spec.Memory>>20, pid, note)
	}
	tw.Flush()
}

// discoverNodes is the table of nodes on the segment (mvctl discover):
// node id, MAC, hostname, hypervisor, location, cores, memory, domains.
func discoverNodes(c *cli.Context) error {
	ep, iface, err := openEndpoint(c)
	if err != nil {
		return err
	}
	defer ep.Close()
	window := c.Duration("window")
	found, err := nodeclient.New(ep).Discover(c.Context, window)
	if err != nil {
		return err
	}
	if optBool(c, "json") {
		type node struct {
			nodeclient.Summary
			Error string `json:"error,omitempty"`
		}
		out := make([]node, 0, len(found))
		for _, f := range found {
			n := node{Summary: f.Summary}
			n.MAC = f.From
			if f.Err != nil {
				n.Error = f.Err.Error()
			}
			out = append(out, n)
		}
		return printJSON(c.App.Writer, out)
	}
	writeNodes(c.App.Writer, found)
	fmt.Fprintf(c.App.Writer, "%d node(s) answered on %s within %v\n", len(found), iface, window)
	return nil
}

// writeNodes prints the nodes as a table, then what answered without
// being a node (a controller, mvctl responder) and any node's error.
func writeNodes(w io.Writer, found []nodeclient.Found) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tMAC\tHOSTNAME\tHYPERVISOR\tRACK/CHASSIS/BLADE\tPCPUS\tMEMORY\tDOMAINS")
	var others []string
	for _, f := range found {
		s := f.Summary
		switch {
		case errors.Is(f.Err, proto.ErrUnknownMethod):
			others = append(others, f.From.String())
			continue
		case f.Err != nil:
			others = append(others, fmt.Sprintf("%s (%v)", f.From, f.Err))
			continue
		}
		loc := "-"
		if s.Location != (inventory.Location{}) {
			loc = dash(s.Location.Rack) + "/" + dash(s.Location.Chassis) + "/" + dash(s.Location.Blade)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d GiB\t%d (%d running)\n", s.NodeID, f.From, s.Hostname, s.Hypervisor,
			loc, s.PCPUs, s.Memory>>30, s.Domains, s.Running)
	}
	tw.Flush()
	if len(others) > 0 {
		fmt.Fprintf(w, "not nodes (no node.discover): %s\n", strings.Join(others, ", "))
	}
}
