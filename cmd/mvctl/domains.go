package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

func domidFlag() cli.Flag {
	return &cli.IntFlag{Name: "domid", Aliases: []string{"d"}, Usage: "the domain's id N (domain dnN); or give it as the argument"}
}

// domID reads the domain id from -d or the first argument.
func domID(c *cli.Context) (int, error) {
	if c.IsSet("domid") {
		if id := c.Int("domid"); id > 0 {
			return id, nil
		}
		return 0, fmt.Errorf("-d %d: domain ids are positive", c.Int("domid"))
	}
	if c.NArg() == 0 {
		return 0, fmt.Errorf("name the domain: mvctl %s --mvmac MAC DOMID (or -d DOMID)", c.Command.Name)
	}
	s := c.Args().First()
	if strings.HasPrefix(s, "dn") {
		return domain.ParseName(s)
	}
	id, err := strconv.Atoi(s)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("domain %q: want a positive id N or its name dnN", s)
	}
	return id, nil
}

// withCommonNoV is withCommon for commands whose own -v is not --verbose
// (vcpu-pin's -v VCPU, as the MicroVisor CLI spells it).
func withCommonNoV(flags ...cli.Flag) []cli.Flag {
	common := commonFlags()
	for _, f := range common {
		if b, ok := f.(*cli.BoolFlag); ok && b.Name == "verbose" {
			b.Aliases = nil
		}
	}
	return append(flags, common...)
}

func createCommand() *cli.Command {
	return &cli.Command{
		Name:  "create",
		Usage: "define a domain on a node (and start it with --start)",
		UsageText: "mvctl create --mvmac MAC --id N --vcpus V [--sockets S --cores C --threads T] --memory 2G\n" +
			"   [--disk file:PATH | --disk nbd:SOCKET ...] [--vnuma K | --vnode PNODE:MEMORY:VCPUS ...]\n" +
			"   [--cpu-mode host-passthrough|host-model|custom|none [--cpu-model NAME]]\n" +
			"   [--kernel F --initrd F --append CMDLINE] [--pin 0,1,...] [--start]",
		Flags: withCommon(mvmacFlag(),
			&cli.IntFlag{Name: "id", Aliases: []string{"d"}, Usage: "domain id N (the domain is dnN)", Required: true},
			&cli.IntFlag{Name: "vcpus", Usage: "vCPUs (VCPU = SOCKETS × CORES × THREADS)", Value: 1},
			&cli.IntFlag{Name: "sockets", Usage: "guest sockets (default 1, or VCPU with no topology given)"},
			&cli.IntFlag{Name: "cores", Usage: "cores per socket"},
			&cli.IntFlag{Name: "threads", Usage: "threads per core"},
			&cli.StringFlag{Name: "memory", Value: "512M", Usage: "memory, with K/M/G suffix"},
			&cli.StringSliceFlag{Name: "disk", Usage: "a disk: file:PATH, nbd:SOCKET or PATH; append ,ro for read-only (repeatable)"},
			&cli.IntFlag{Name: "vnuma", Usage: "split the guest into K vnodes over the node's NUMA nodes (the MicroVisor default layout)"},
			&cli.StringSliceFlag{Name: "vnode", Usage: "a vnode PNODE:MEMORY:VCPUS, e.g. 0:4G:0-3 (repeatable, in order)"},
			&cli.StringFlag{Name: "cpu-mode", Usage: "host-passthrough, host-model, custom or none"},
			&cli.StringFlag{Name: "cpu-model", Usage: "named baseline for --cpu-mode custom"},
			&cli.StringFlag{Name: "kernel", Usage: "direct kernel boot: the kernel"},
			&cli.StringFlag{Name: "initrd", Usage: "direct kernel boot: the initramfs"},
			&cli.StringFlag{Name: "append", Usage: "direct kernel boot: the kernel command line"},
			&cli.StringFlag{Name: "pin", Usage: "pin vCPU i to the i-th host CPU of this list at start, e.g. 0,1"},
			&cli.StringSliceFlag{Name: "nic", Usage: "a NIC MAC[@TAP] (repeatable)"},
			&cli.BoolFlag{Name: "start", Usage: "start the domain once it is defined"},
		),
		Action: nodeAction(func(c *cli.Context, n *nodeConn) (domain.Info, error) {
			spec, err := specFromFlags(c, n)
			if err != nil {
				return domain.Info{}, err
			}
			return n.client.Create(c.Context, n.mac, spec, c.Bool("start"))
		}, func(c *cli.Context, info domain.Info) error {
			t := info.Spec.Topology
			fmt.Fprintf(c.App.Writer, "%s %s: %d vCPUs (%dx%dx%d), %d MiB\n", info.Name, info.State,
				info.Spec.VCPUs, t.Sockets, t.Cores, t.Threads, info.Spec.Memory>>20)
			return nil
		}),
	}
}

// specFromFlags builds the spec; --vnuma asks the node for its NUMA nodes.
func specFromFlags(c *cli.Context, n *nodeConn) (domain.Spec, error) {
	mem, err := nodeclient.ParseSize(c.String("memory"))
	if err != nil {
		return domain.Spec{}, fmt.Errorf("--memory: %w", err)
	}
	s := domain.Spec{ID: c.Int("id"), VCPUs: c.Int("vcpus"), Memory: mem, CPUMode: domain.CPUMode(c.String("cpu-mode")),
		CPUModel: c.String("cpu-model"),
		Boot:     domain.Boot{Kernel: c.String("kernel"), Initrd: c.String("initrd"), Cmdline: c.String("append")}}
	if c.IsSet("sockets") || c.IsSet("cores") || c.IsSet("threads") {
		s.Topology = domain.Topology{Sockets: max(1, c.Int("sockets")), Cores: max(1, c.Int("cores")), Threads: max(1, c.Int("threads"))}
		if !c.IsSet("vcpus") {
			s.VCPUs = s.Topology.VCPUs()
		}
	}
	for _, d := range c.StringSlice("disk") {
		disk, err := parseDisk(d)
		if err != nil {
			return s, err
		}
		s.Disks = append(s.Disks, disk)
	}
	for _, v := range c.StringSlice("nic") {
		macS, tap, _ := strings.Cut(v, "@")
		m, err := proto.ParseMAC(macS)
		if err != nil {
			return s, fmt.Errorf("--nic %q: %w", v, err)
		}
		s.NICs = append(s.NICs, domain.NIC{MAC: m, Tap: tap})
	}
	if p := c.String("pin"); p != "" {
		if s.Pin, err = inventory.ParseCPUList(p); err != nil {
			return s, fmt.Errorf("--pin: %w", err)
		}
	}
	switch {
	case c.IsSet("vnode") && c.IsSet("vnuma"):
		return s, errors.New("give --vnuma K or --vnode ..., not both")
	case c.IsSet("vnode"):
		for _, v := range c.StringSlice("vnode") {
			vn, err := parseVNode(v)
			if err != nil {
				return s, err
			}
			s.VNodes = append(s.VNodes, vn)
		}
	case c.Int("vnuma") > 0:
		info, err := n.client.Info(c.Context, n.mac)
		if err != nil {
			return s, n.fail(err)
		}
		var pnodes []int
		for _, nn := range info.Inventory.NUMA {
			pnodes = append(pnodes, nn.ID)
		}
		if len(pnodes) == 0 {
			pnodes = []int{0}
		}
		k := c.Int("vnuma")
		if k > s.VCPUs {
			return s, fmt.Errorf("--vnuma %d: more vnodes than the %d vCPUs", k, s.VCPUs)
		}
		s.VNodes = domain.SplitVNodes(s.VCPUs, s.Memory, k, pnodes)
	}
	return s, nil
}

func parseDisk(v string) (domain.Disk, error) {
	var d domain.Disk
	v, ro := strings.CutSuffix(v, ",ro")
	d.ReadOnly = ro
	switch {
	case strings.HasPrefix(v, "nbd:"):
		d.NBD = strings.TrimPrefix(v, "nbd:")
	case strings.HasPrefix(v, "file:"):
		d.File = strings.TrimPrefix(v, "file:")
	default:
		d.File = v
	}
	if d.Source() == "" {
		return d, fmt.Errorf("--disk %q: want file:PATH, nbd:SOCKET or PATH", v)
	}
	return d, nil
}

// parseVNode reads PNODE:MEMORY:VCPUS, e.g. 1:4G:4-7.
func parseVNode(v string) (domain.VNode, error) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return domain.VNode{}, fmt.Errorf("--vnode %q: want PNODE:MEMORY:VCPUS, e.g. 0:4G:0-3", v)
	}
	p, err := strconv.Atoi(parts[0])
	if err != nil {
		return domain.VNode{}, fmt.Errorf("--vnode %q: pnode %q is not a number", v, parts[0])
	}
	mem, err := nodeclient.ParseSize(parts[1])
	if err != nil {
		return domain.VNode{}, fmt.Errorf("--vnode %q: %w", v, err)
	}
	cpus, err := inventory.ParseCPUList(parts[2])
	if err != nil {
		return domain.VNode{}, fmt.Errorf("--vnode %q: %w", v, err)
	}
	return domain.VNode{PNode: p, Memory: mem, VCPUs: cpus}, nil
}

// opCommands are the life-cycle commands: mvctl start|stop|… DOMID.
func opCommands() []*cli.Command {
	ops := []struct {
		name  string
		op    domain.Op
		usage string
	}{
		{"start", domain.OpStart, "start a defined, shut-off or crashed domain"},
		{"stop", domain.OpShutdown, "shut a domain down cleanly (ACPI power button; the guest powers off)"},
		{"destroy", domain.OpDestroy, "stop a domain at once (pull the plug)"},
		{"reboot", domain.OpReboot, "reset a running domain"},
		{"pause", domain.OpPause, "pause a running domain"},
		{"resume", domain.OpResume, "resume a paused domain"},
		{"undefine", domain.OpUndefine, "forget a stopped domain and free what it holds"},
	}
	out := make([]*cli.Command, 0, len(ops))
	for _, o := range ops {
		out = append(out, &cli.Command{
			Name:      o.name,
			Usage:     o.usage,
			UsageText: "mvctl " + o.name + " --mvmac MAC DOMID",
			Flags:     withCommon(mvmacFlag(), domidFlag()),
			Action: nodeAction(func(c *cli.Context, n *nodeConn) (domain.Info, error) {
				id, err := domID(c)
				if err != nil {
					return domain.Info{}, err
				}
				return n.client.Do(c.Context, n.mac, id, o.op)
			}, func(c *cli.Context, info domain.Info) error {
				_, err := fmt.Fprintf(c.App.Writer, "%s %s\n", info.Name, info.State)
				return err
			}),
		})
	}
	return out
}

func consoleCommand() *cli.Command {
	return &cli.Command{
		Name:      "console",
		Usage:     "print a domain's recent console (serial) output",
		UsageText: "mvctl console --mvmac MAC DOMID",
		Flags:     withCommon(mvmacFlag(), domidFlag()),
		Action: nodeAction(func(c *cli.Context, n *nodeConn) (consoleOutput, error) {
			id, err := domID(c)
			if err != nil {
				return consoleOutput{}, err
			}
			data, err := n.client.Console(c.Context, n.mac, id)
			return consoleOutput{ID: id, Console: string(data)}, err
		}, func(c *cli.Context, out consoleOutput) error {
			_, err := io.WriteString(c.App.Writer, out.Console)
			return err
		}),
	}
}

// consoleOutput is mvctl console --json.
type consoleOutput struct {
	ID      int    `json:"id"`
	Console string `json:"console"`
}

func vcpuPinCommand() *cli.Command {
	return &cli.Command{
		Name:      "vcpu-pin",
		Usage:     "pin a domain's vCPU to a host CPU",
		UsageText: "mvctl vcpu-pin --mvmac MAC -d DOMID -v VCPU -c PCPU",
		Flags: withCommonNoV(mvmacFlag(), domidFlag(),
			&cli.IntFlag{Name: "vcpu", Aliases: []string{"v"}, Usage: "the vCPU number", Required: true},
			&cli.IntFlag{Name: "pcpu", Aliases: []string{"c"}, Usage: "the host CPU (logical index)", Required: true},
		),
		Action: vcpuPin(func(c *cli.Context) (int, error) { return c.Int("vcpu"), nil }),
	}
}

// vcpuPin pins vCPU vcpu(c) of domain -d to host CPU -c.
func vcpuPin(vcpu func(c *cli.Context) (int, error)) cli.ActionFunc {
	return nodeAction(func(c *cli.Context, n *nodeConn) ([]domain.VCPUInfo, error) {
		id, err := domID(c)
		if err != nil {
			return nil, err
		}
		v, err := vcpu(c)
		if err != nil {
			return nil, err
		}
		return n.client.Pin(c.Context, n.mac, id, v, c.Int("pcpu"))
	}, printVCPUs)
}

func vcpuInfoCommand() *cli.Command {
	return &cli.Command{
		Name:      "vcpuinfo",
		Aliases:   []string{"vcpu-info"},
		Usage:     "show a domain's vCPUs: where each runs, its CPU time and affinity",
		UsageText: "mvctl vcpuinfo --mvmac MAC DOMID",
		Flags:     withCommon(mvmacFlag(), domidFlag()),
		Action:    vcpuInfo,
	}
}

// vcpuInfo shows domain -d's vCPUs.
func vcpuInfo(c *cli.Context) error {
	return nodeAction(func(c *cli.Context, n *nodeConn) ([]domain.VCPUInfo, error) {
		id, err := domID(c)
		if err != nil {
			return nil, err
		}
		return n.client.VCPUs(c.Context, n.mac, id)
	}, printVCPUs)(c)
}

func printVCPUs(c *cli.Context, vs []domain.VCPUInfo) error {
	id, err := domID(c)
	if err != nil {
		return err
	}
	writeVCPUs(c.App.Writer, domain.Name(id), id, vs)
	return nil
}

// writeVCPUs prints vCPUs as `xl vcpu-list` does.
func writeVCPUs(w io.Writer, name string, id int, vs []domain.VCPUInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Name\tID\tVCPU\tCPU\tState\tTime(s)\tAffinity\tThread")
	for _, v := range vs {
		cpu := "-"
		if v.CPU >= 0 {
			cpu = fmt.Sprint(v.CPU)
		}
		tid := "-"
		if v.ThreadID != 0 {
			tid = fmt.Sprint(v.ThreadID)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.1f\t%s\t%s\n", name, id, v.VCPU, cpu, v.State, v.Time.Seconds(),
			inventory.FormatCPUList(v.Affinity), tid)
	}
	tw.Flush()
}

func showCommand() *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "MicroVisor console views",
		Subcommands: []*cli.Command{{
			Name:      "numa",
			Usage:     "each domain's memory per host NUMA node and its vnode layout, as the MicroVisor console prints it",
			UsageText: "mvctl show numa --mvmac MAC [DOMID]",
			Flags:     withCommon(mvmacFlag(), domidFlag()),
			Action: nodeAction(func(c *cli.Context, n *nodeConn) (nodeclient.NUMAReport, error) {
				id := 0
				if c.IsSet("domid") || c.NArg() > 0 {
					var err error
					if id, err = domID(c); err != nil {
						return nodeclient.NUMAReport{}, err
					}
				}
				return n.client.NUMA(c.Context, n.mac, id)
			}, func(c *cli.Context, rep nodeclient.NUMAReport) error {
				return domain.FormatNUMA(c.App.Writer, domain.ConsolePrefix(rep.At), rep.Domains...)
			}),
		}},
	}
}

func wildCommand() *cli.Command {
	return &cli.Command{
		Name:      "wild",
		Usage:     "list guests running on a node that it did not start (import them with mvctl import)",
		UsageText: "mvctl wild --mvmac MAC",
		Flags:     withCommon(mvmacFlag()),
		Action: nodeAction(func(c *cli.Context, n *nodeConn) ([]domain.Wild, error) {
			return n.client.Wild(c.Context, n.mac)
		}, func(c *cli.Context, ws []domain.Wild) error {
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PID\tNAME\tVCPUS\tMEMORY\tQMP")
			for _, w := range ws {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d MiB\t%s\n", w.PID, dash(w.Name), w.VCPUs, w.Memory>>20, dash(w.QMP))
			}
			return tw.Flush()
		}),
	}
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "adopt a wild guest as one of the node's domains",
		UsageText: "mvctl import --mvmac MAC --pid PID --id N",
		Flags: withCommon(mvmacFlag(),
			&cli.IntFlag{Name: "pid", Usage: "the wild guest's process id", Required: true},
			&cli.IntFlag{Name: "id", Aliases: []string{"d"}, Usage: "the domain id to give it", Required: true},
		),
		Action: nodeAction(func(c *cli.Context, n *nodeConn) (domain.Info, error) {
			return n.client.Import(c.Context, n.mac, c.Int("pid"), c.Int("id"))
		}, func(c *cli.Context, info domain.Info) error {
			_, err := fmt.Fprintf(c.App.Writer, "%s %s (imported pid %d)\n", info.Name, info.State, c.Int("pid"))
			return err
		}),
	}
}

// Seed-style global options: mvctl --mvmac MAC --vcpu-pin -d N -v V -c P
// and mvctl --mvmac MAC --vcpuinfo N, as the MicroVisor CLI takes them.
// The app registers seedFlags among its flags and seedAction as its
// action (see the report to the lead).
// (--mvmac itself is among the app's flags already.)
func seedFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "vcpu-pin", Usage: "with -d DOMID --vcpu VCPU -c PCPU: pin a vCPU"},
		&cli.IntFlag{Name: "vcpuinfo", Usage: "show the vCPUs of domain `DOMID`"},
		domidFlag(),
		&cli.IntFlag{Name: "vcpu", Usage: "the vCPU for --vcpu-pin"},
		&cli.IntFlag{Name: "pcpu", Aliases: []string{"c"}, Usage: "the host CPU for --vcpu-pin"},
	}
}

// seedAction runs the seed-style global options, or shows help.
func seedAction(c *cli.Context) error {
	switch {
	case c.Bool("vcpu-pin"):
		vcpu, err := seedVCPU(c)
		if err != nil {
			return err
		}
		if !c.IsSet("vcpu") {
			// "-v V" also set the app's --verbose: that was not meant.
			if err := c.Set("verbose", "false"); err != nil {
				return err
			}
		}
		if !c.IsSet("pcpu") || !c.IsSet("domid") {
			return errors.New("--vcpu-pin needs -d DOMID, -v VCPU and -c PCPU")
		}
		return vcpuPin(func(*cli.Context) (int, error) { return vcpu, nil })(c)
	case c.IsSet("vcpuinfo"):
		if err := c.Set("domid", strconv.Itoa(c.Int("vcpuinfo"))); err != nil {
			return err
		}
		return vcpuInfo(c)
	}
	return cli.ShowAppHelp(c)
}

// seedVCPU reads the vCPU of --vcpu-pin: --vcpu V, or the seed's -v V. The
// app's -v is --verbose (a bool), so "-v 1" leaves "1" as the first
// argument, followed by whatever came after it ("-c 3").
func seedVCPU(c *cli.Context) (int, error) {
	if c.IsSet("vcpu") {
		return c.Int("vcpu"), nil
	}
	args := c.Args().Slice()
	if len(args) == 0 {
		return 0, errors.New("--vcpu-pin needs -v VCPU")
	}
	v, err := strconv.Atoi(args[0])
	if err != nil || v < 0 {
		return 0, fmt.Errorf("-v %q: want a vCPU number", args[0])
	}
	// Flags after the vCPU were not parsed as flags: take -c and -d here.
	for i := 1; i+1 < len(args); i += 2 {
		switch args[i] {
		case "-c", "--pcpu":
			if err := c.Set("pcpu", args[i+1]); err != nil {
				return 0, fmt.Errorf("-c %q: %w", args[i+1], err)
			}
		case "-d", "--domid":
			if err := c.Set("domid", args[i+1]); err != nil {
				return 0, fmt.Errorf("-d %q: %w", args[i+1], err)
			}
		default:
			return 0, fmt.Errorf("unexpected %q after -v %s", args[i], args[0])
		}
	}
	return v, nil
}
