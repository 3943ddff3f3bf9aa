package main

import (
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
	mvctl := filepath.Join(bin, "mvctl")
	if _, err := os.Stat(mvctl); err != nil {
		return fmt.Errorf("no mvctl next to mvlab in %s: build with 'make build' or name the directory with --bin", bin)
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

	step("starting a node agent in each node namespace (mvctl responder; mvnode takes its place later)")
	for _, h := range rack {
		if _, _, err := l.start(h, mvctl, "responder", "--iface", "eth0", "--key", key); err != nil {
			return err
		}
	}

	show := func(args ...string) (string, error) {
		fmt.Fprintf(w, "$ %s\n", strings.Join(append([]string{"mvctl"}, args...), " "))
		out, err := l.run(c.Context, ctl, mvctl, args...)
		fmt.Fprint(w, indent(out))
		return out, err
	}
	step("discovering the nodes from the controller host (one broadcast, authenticated answers)")
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err = l.run(c.Context, ctl, mvctl, "discover", "--iface", "eth0", "--key", key)
		if err == nil && strings.Contains(out, fmt.Sprintf("%d node(s)", nodes)) || time.Now().After(deadline) {
			break
		}
	}
	fmt.Fprintf(w, "$ mvctl discover --iface eth0 --key %s\n%s", key, indent(out))

	step("round trips to %s over the reliable control protocol", rack[0].mac)
	if _, err := show("ping", "--iface", "eth0", "--key", key, "--mvmac", rack[0].mac, "--count", "5", "--interval", "20ms"); err != nil {
		return fmt.Errorf("ping failed: %w", err)
	}
	step("a 4 MiB message is fragmented, acknowledged and reassembled")
	if _, err := show("ping", "--iface", "eth0", "--key", key, "--mvmac", rack[len(rack)-1].mac, "--count", "3", "--size", "4194304", "--interval", "0s"); err != nil {
		return fmt.Errorf("large ping failed: %w", err)
	}

	step("a host without the cluster key is refused, and told so (not why)")
	other := filepath.Join(dir, "other.key")
	l.run(c.Context, ctl, mvctl, "keygen", "--out", other)
	show("ping", "--iface", "eth0", "--key", other, "--mvmac", rack[0].mac, "--count", "1")

	step("a MAC where no node lives: the error says so within the tolerance")
	show("ping", "--iface", "eth0", "--key", key, "--mvmac", "02:6d:76:00:00:99", "--count", "1")

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
