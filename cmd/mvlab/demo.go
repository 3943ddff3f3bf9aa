package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// demoDescription is what 'mvlab demo --help' says the walkthrough shows.
const demoDescription = `Makes a rack of network namespaces on one bridge (MTU 9000): a controller host "ctl" and
--nodes node hosts, each running the real binaries found next to mvlab, then walks through it:

  1. mvnode (sim driver) in every node namespace, heartbeating to the controller host, each with
     a 1 GiB sparse drive file; mvctl discovers them with one authenticated broadcast, shows a
     node's hardware and NUMA layout, creates and pins a domain, shows bad input refused, pings
     over the reliable control protocol (a 4 MiB message fragmented and reassembled), and shows
     a host with another cluster key and a MAC where no node lives refused.
  2. mvcontroller serve in the ctl namespace as a one-replica cluster; osd lists the nodes and
     their drives, makes a 2-replica datastore and a 256 MiB volume, and attaches it to a node
     holding no replica of it (served there as NBD).
  3. qemu-io writes through NBD; one replica's mvnode is killed with SIGKILL and a second write
     still succeeds, the volume dropping to one in-sync replica at a higher epoch; the node comes
     back, osd repair_volume copies only the blocks written while it was away, and the data is
     read back. (Skipped, saying so, without qemu-io: apt-get install qemu-utils.)

Everything it made (processes, namespaces mvlab-*, its temporary directory) is removed when it
ends, fails or is interrupted; 'mvlab down' removes what a killed mvlab left.`

// demo makes a rack, walks through it, and removes it.
func demo(c *cli.Context) error {
	if err := needRoot(); err != nil {
		return err
	}
	nodes := c.Int("nodes")
	if nodes < 1 || nodes > 50 {
		return fmt.Errorf("--nodes %d: from 1 to 50", nodes)
	}
	bin := c.String("bin")
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		bin = filepath.Dir(self)
	}
	d := &walk{ctx: c.Context, w: c.App.Writer, nodes: nodes}
	for _, b := range []struct {
		path *string
		name string
	}{{&d.mvctl, "mvctl"}, {&d.mvnode, "mvnode"}, {&d.mvcontroller, "mvcontroller"}, {&d.osd, "osd"}} {
		*b.path = filepath.Join(bin, b.name)
		if _, err := os.Stat(*b.path); err != nil {
			return fmt.Errorf("no %s next to mvlab in %s: build with 'make build' or name the directory with --bin", b.name, bin)
		}
	}

	if n, _ := removeLeftovers(); n > 0 {
		fmt.Fprintf(d.w, "removed %d namespace(s) left by an earlier lab\n", n)
	}
	removeTempDirs()
	dir, err := makeTempDir()
	if err != nil {
		return err
	}
	d.dir = dir
	names := []string{"ctl"}
	for i := 1; i <= nodes; i++ {
		names = append(names, fmt.Sprintf("node%d", i))
	}
	d.step("making the rack: a bridge and %d namespaces (a controller host and %d nodes), MTU 9000", len(names), nodes)
	l, err := newLab(names, 9000)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	d.l = l
	defer func() {
		d.step("removing the rack")
		l.remove()
		os.RemoveAll(dir)
	}()
	d.ctl, d.rack = l.hosts[0], l.hosts[1:]
	d.nodeProcs = make([]*proc, nodes)
	for _, h := range l.hosts {
		fmt.Fprintf(d.w, "    %-16s eth0 %s (node id %s)\n", h.name, h.mac, nodeID(h))
	}

	if err := d.basics(); err != nil {
		return d.stopped(err)
	}
	if c.Bool("storage") {
		if err := d.storage(); err != nil {
			return d.stopped(err)
		}
	}
	if c.Bool("keep") {
		d.step("the rack keeps running; try: ip netns exec %s %s discover --iface eth0 --key %s   (interrupt to stop)", d.ctl.name, d.mvctl, d.key)
		if d.controller != nil {
			fmt.Fprintf(d.w, "    or: ip netns exec %s env %s %s get_volumes\n", d.ctl.name, strings.Join(d.osdEnv, " "), d.osd)
		}
		<-d.ctx.Done()
	}
	return nil
}

// walk is one run of the demo: the rack and what runs in it.
type walk struct {
	ctx   context.Context
	w     io.Writer
	nodes int
	l     *lab
	dir   string // temporary: key, drive files, state; removed at the end
	key   string // the cluster key file

	mvctl, mvnode, mvcontroller, osd string // binaries

	ctl        host
	rack       []host
	nodeProcs  []*proc // the mvnode running on each rack host
	controller *proc
	osdEnv     []string // OSD_URL and OSD_TOKEN
}

func (d *walk) step(format string, a ...any) { fmt.Fprintf(d.w, "\n==> "+format+"\n", a...) }

// nodeID is the id the controller and osd know a node by.
func nodeID(h host) string { return strings.ReplaceAll(h.mac, ":", "")[4:] }

// nodeArgs are rack node i's mvnode flags, the same at every start: a sim
// node that heartbeats to the controller host and reports one drive file.
func (d *walk) nodeArgs(i int) []string {
	n := fmt.Sprintf("node%d", i+1)
	return []string{"--iface", "eth0", "--key", d.key, "--driver", "sim",
		"--sim-hardware", "2x8x2,64G,0", "--rack", "r1", "--chassis", "c1", "--blade", fmt.Sprintf("b%d", i+1),
		"--controller", d.ctl.mac,
		"--drive-file", filepath.Join(d.dir, n+"-drive0.img"),
		"--state-dir", filepath.Join(d.dir, n+"-state"),
		"--volume-dir", filepath.Join(d.dir, n+"-volumes"),
		// A dead replica stalls writes this long before the controller
		// drops it (30 s by default); the demo need not wait that long.
		"--volume-io-timeout", "5s"}
}

// startNode (re)starts mvnode on rack host i.
func (d *walk) startNode(i int) error {
	p, err := d.l.start(d.rack[i], d.mvnode, d.nodeArgs(i)...)
	if err != nil {
		return err
	}
	d.nodeProcs[i] = p
	return nil
}

// failed prints the last lines the named programs logged and returns err;
// an interrupt prints nothing.
func (d *walk) failed(err error, procs ...*proc) error {
	if d.ctx.Err() != nil {
		return d.ctx.Err()
	}
	for _, p := range procs {
		if p == nil {
			continue
		}
		state := "running"
		if p.exited() {
			state = fmt.Sprintf("exited: %v", p.err)
		}
		fmt.Fprintf(d.w, "\n%s (%s) said:\n%s", p.name, state, indent(p.out.tail(40)))
	}
	return err
}

// stopped words the error the demo ends with.
func (d *walk) stopped(err error) error {
	if d.ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return fmt.Errorf("the demo failed: %w", err)
}

// basics is the first part: nodes and mvctl.
func (d *walk) basics() error {
	l, ctl, rack, w, ctx := d.l, d.ctl, d.rack, d.w, d.ctx
	d.key = filepath.Join(d.dir, "cluster.key")
	d.step("making the cluster key every host shares: mvctl keygen --out %s", d.key)
	if out, err := l.run(ctx, ctl, nil, d.mvctl, "keygen", "--out", d.key); err != nil {
		return fmt.Errorf("keygen: %v: %s", err, out)
	}

	d.step("starting mvnode in each node namespace: simulated hardware of 2 sockets × 8 cores × 2 threads, 64 GiB, and a 1 GiB drive file")
	for i := range rack {
		// A sparse file stands in for each node's drive.
		f := filepath.Join(d.dir, fmt.Sprintf("node%d-drive0.img", i+1))
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(f, 1<<30); err != nil {
			return err
		}
		if i == 0 {
			fmt.Fprintf(d.w, "$ mvnode %s &   # in %s, and likewise in the others\n", strings.Join(d.nodeArgs(i), " "), rack[i].name)
		}
		if err := d.startNode(i); err != nil {
			return err
		}
	}

	show := func(args ...string) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		fmt.Fprintf(w, "$ %s\n", strings.Join(append([]string{"mvctl"}, args...), " "))
		out, err := l.run(ctx, ctl, nil, d.mvctl, args...)
		fmt.Fprint(w, indent(out))
		return out, err
	}
	common := []string{"--iface", "eth0", "--key", d.key}
	d.step("discovering the nodes from the controller host (one authenticated broadcast)")
	var out string
	var err error
	want := fmt.Sprintf("%d node(s)", d.nodes)
	for deadline := time.Now().Add(10 * time.Second); ctx.Err() == nil; {
		out, err = l.run(ctx, ctl, nil, d.mvctl, append([]string{"discover"}, common...)...)
		if err == nil && strings.Contains(out, want) || time.Now().After(deadline) {
			break
		}
	}
	fmt.Fprintf(w, "$ mvctl discover %s\n%s", strings.Join(common, " "), indent(out))
	if !strings.Contains(out, want) {
		return d.failed(errors.New("only some nodes answered the discovery"), d.nodeProcs...)
	}

	node := rack[0].mac
	with := func(args ...string) []string { return append(append(args, common...), "--mvmac", node) }
	d.step("what node %s is: its hardware, NUMA layout and allocation", node)
	if _, err := show(with("info")...); err != nil {
		return d.failed(fmt.Errorf("info: %w", err), d.nodeProcs[0])
	}
	d.step("a 4-vCPU domain (1 socket × 2 cores × 2 threads, 4 GiB) split over 2 vNUMA nodes, started")
	if _, err := show(with("create", "--id", "1", "--vcpus", "4", "--sockets", "1", "--cores", "2", "--threads", "2", "--memory", "4G", "--vnuma", "2", "--start")...); err != nil {
		return d.failed(fmt.Errorf("create: %w", err), d.nodeProcs[0])
	}
	show(with("domains")...)
	d.step("the node's NUMA view, as the MicroVisor console prints it")
	show(with("show", "numa")...)
	d.step("pinning vCPU 0 to host CPU 3")
	show(with("vcpu-pin", "-d", "1", "-v", "0", "-c", "3")...)
	d.step("bad input is refused with the rule or the numbers")
	show(with("create", "--id", "2", "--vcpus", "6", "--sockets", "1", "--cores", "2", "--threads", "2")...)
	show(with("create", "--id", "3", "--vcpus", "2", "--memory", "100G")...)
	show(with("create", "--id", "1", "--vcpus", "1")...)

	d.step("round trips to %s over the reliable control protocol", node)
	if _, err := show(append([]string{"ping"}, with("--count", "5", "--interval", "20ms")...)...); err != nil {
		return d.failed(fmt.Errorf("ping failed: %w", err), d.nodeProcs[0])
	}
	d.step("a 4 MiB message is fragmented, acknowledged and reassembled")
	if _, err := show(append([]string{"ping"}, with("--count", "3", "--size", "4194304", "--interval", "0s")...)...); err != nil {
		return d.failed(fmt.Errorf("large ping failed: %w", err), d.nodeProcs[0])
	}

	d.step("a host without the cluster key is refused, and told so (not why)")
	other := filepath.Join(d.dir, "other.key")
	l.run(ctx, ctl, nil, d.mvctl, "keygen", "--out", other)
	show("info", "--iface", "eth0", "--key", other, "--mvmac", node)

	d.step("a MAC where no node lives: the error says so within the tolerance")
	show("info", "--iface", "eth0", "--key", d.key, "--mvmac", "02:6d:76:00:00:99")
	return ctx.Err()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
