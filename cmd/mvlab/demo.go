package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

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
	mvctl, mvnode := filepath.Join(bin, "mvctl"), filepath.Join(bin, "mvnode")
	for _, b := range []string{mvctl, mvnode} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("no %s next to mvlab in %s: build with 'make build' or name the directory with --bin", filepath.Base(b), bin)
		}
	}
	w := c.App.Writer
	step := func(format string, a ...any) { fmt.Fprintf(w, "\n==> "+format+"\n", a...) }

	if n, _ := removeLeftovers(); n > 0 {
		fmt.Fprintf(w, "removed %d namespace(s) left by an earlier lab\n", n)
	}
	names := []string{"ctl"}
	for i := 1; i <= nodes; i++ {
		names = append(names, fmt.Sprintf("node%d", i))
	}
	step("making the rack: a bridge and %d namespaces (a controller host and %d nodes), MTU 9000", len(names), nodes)
	l, err := newLab(names, 9000)
	if err != nil {
		return err
	}
	defer func() {
		step("removing the rack")
		l.remove()
	}()
	ctl, rack := l.hosts[0], l.hosts[1:]
	for _, h := range l.hosts {
		fmt.Fprintf(w, "    %-16s eth0 %s (node id %s)\n", h.name, h.mac, strings.ReplaceAll(h.mac, ":", "")[4:])
	}

	dir, err := os.MkdirTemp("", "mvlab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	key := filepath.Join(dir, "cluster.key")
	step("making the cluster key every host shares: mvctl keygen --out %s", key)
	if out, err := l.run(c.Context, ctl, mvctl, "keygen", "--out", key); err != nil {
		return fmt.Errorf("keygen: %v: %s", err, out)
	}

	step("starting mvnode in each node namespace: simulated hardware of 2 sockets × 8 cores × 2 threads, 64 GiB, 2 NVMe disks")
	var logs []*bytes.Buffer
	for i, h := range rack {
		_, out, err := l.start(h, mvnode, "--iface", "eth0", "--key", key, "--driver", "sim",
			"--sim-hardware", "2x8x2,64G,2", "--rack", "r1", "--chassis", "c1", "--blade", fmt.Sprintf("b%d", i+1))
		if err != nil {
			return err
		}
		logs = append(logs, out)
	}

	show := func(args ...string) (string, error) {
		fmt.Fprintf(w, "$ %s\n", strings.Join(append([]string{"mvctl"}, args...), " "))
		out, err := l.run(c.Context, ctl, mvctl, args...)
		fmt.Fprint(w, indent(out))
		return out, err
	}
	common := []string{"--iface", "eth0", "--key", key}
	step("discovering the nodes from the controller host (one authenticated broadcast)")
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err = l.run(c.Context, ctl, mvctl, append([]string{"discover"}, common...)...)
		if err == nil && strings.Contains(out, fmt.Sprintf("%d node(s)", nodes)) || time.Now().After(deadline) {
			break
		}
	}
	fmt.Fprintf(w, "$ mvctl discover %s\n%s", strings.Join(common, " "), indent(out))
	if !strings.Contains(out, fmt.Sprintf("%d node(s)", nodes)) {
		for i, lg := range logs {
			fmt.Fprintf(w, "mvnode on %s said:\n%s", rack[i].name, indent(lg.String()))
		}
		return fmt.Errorf("only some nodes answered the discovery")
	}

	node := rack[0].mac
	with := func(args ...string) []string { return append(append(args, common...), "--mvmac", node) }
	step("what node %s is: its hardware, NUMA layout and allocation", node)
	if _, err := show(with("info")...); err != nil {
		return fmt.Errorf("info: %w", err)
	}
	step("a 4-vCPU domain (1 socket × 2 cores × 2 threads, 4 GiB) split over 2 vNUMA nodes, started")
	if _, err := show(with("create", "--id", "1", "--vcpus", "4", "--sockets", "1", "--cores", "2", "--threads", "2", "--memory", "4G", "--vnuma", "2", "--start")...); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	show(with("domains")...)
	step("the node's NUMA view, as the MicroVisor console prints it")
	show(with("show", "numa")...)
	step("pinning vCPU 0 to host CPU 3")
	show(with("vcpu-pin", "-d", "1", "-v", "0", "-c", "3")...)
	step("bad input is refused with the rule or the numbers")
	show(with("create", "--id", "2", "--vcpus", "6", "--sockets", "1", "--cores", "2", "--threads", "2")...)
	show(with("create", "--id", "3", "--vcpus", "2", "--memory", "100G")...)
	show(with("create", "--id", "1", "--vcpus", "1")...)

	step("round trips to %s over the reliable control protocol", node)
	if _, err := show(append([]string{"ping"}, with("--count", "5", "--interval", "20ms")...)...); err != nil {
		return fmt.Errorf("ping failed: %w", err)
	}
	step("a 4 MiB message is fragmented, acknowledged and reassembled")
	if _, err := show(append([]string{"ping"}, with("--count", "3", "--size", "4194304", "--interval", "0s")...)...); err != nil {
		return fmt.Errorf("large ping failed: %w", err)
	}

	step("a host without the cluster key is refused, and told so (not why)")
	other := filepath.Join(dir, "other.key")
	l.run(c.Context, ctl, mvctl, "keygen", "--out", other)
	show("info", "--iface", "eth0", "--key", other, "--mvmac", node)

	step("a MAC where no node lives: the error says so within the tolerance")
	show("info", "--iface", "eth0", "--key", key, "--mvmac", "02:6d:76:00:00:99")

	if c.Bool("keep") {
		step("the rack keeps running; try: ip netns exec %s %s discover --iface eth0 --key %s   (interrupt to stop)", ctl.name, mvctl, key)
		<-c.Context.Done()
	}
	return nil
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
