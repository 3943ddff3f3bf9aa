// Command node benchmarks the node daemon; sudo for the veth and mvnode
// parts:
//
//	go run ./bench/node
//
// It prints each figure beside an anchor measured in the same run: domain
// create+start (sim) through the control protocol beside a ping round trip
// on the same endpoints (the floor of any RPC); domain create+start (qemu,
// TCG) beside a bare qemu-system-x86_64 started with the same machine
// options until its QMP socket answers; control RPCs/s against one real
// mvnode over a veth pair (vcpu.info, node.probe) beside mvctl ping's
// method on the same pair; mvnode's resident memory with 500 running sim
// domains beside the same mvnode idle.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/node/agent"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/node:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench/node", flag.ContinueOnError)
	sims := fs.Int("sim", 500, "sim domains to create (create+start and the memory figure)")
	qemus := fs.Int("qemu", 5, "qemu domains to create and start, one at a time")
	secs := fs.Duration("rpc-time", 2*time.Second, "how long each RPC rate is measured, per round")
	if err := fs.Parse(args); err != nil {
		return err
	}
	keys, err := newKeys()
	if err != nil {
		return err
	}
	t := report.Table{Title: "node: the node daemon (mvnode)"}
	if err := benchSimCreate(ctx, &t, keys, *sims); err != nil {
		return err
	}
	if err := benchQEMUCreate(ctx, &t, keys, *qemus, stderr); err != nil {
		fmt.Fprintln(stderr, "bench/node: qemu create+start skipped:", err)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "bench/node: RPCs/s and mvnode memory need root (a veth pair, AF_PACKET): skipped")
	} else if err := benchDaemon(ctx, &t, keys, *sims, *secs, stderr); err != nil {
		fmt.Fprintln(stderr, "bench/node: mvnode figures skipped:", err)
	}
	t.Print(stdout)
	return nil
}

func newKeys() (*proto.Keyring, error) {
	k, err := proto.NewKey(1)
	if err != nil {
		return nil, err
	}
	return proto.NewKeyring(k)
}

var (
	nodeMAC   = proto.MAC{0x02, 0x6e, 0x6f, 0x64, 0x65, 0x01}
	clientMAC = proto.MAC{0x02, 0x6e, 0x6f, 0x64, 0x65, 0x02}
)

// inMemory is an agent and a client endpoint on the in-memory switch.
type inMemory struct {
	sw     *linktest.Switch
	agent  *agent.Agent
	ep     *proto.Endpoint
	client *nodeclient.Client
}

func newInMemory(keys *proto.Keyring, edit func(*agent.Config)) (*inMemory, error) {
	m := &inMemory{sw: linktest.NewSwitch(linktest.Config{MTU: 1500})}
	cfg := agent.DefaultConfig()
	cfg.Link, cfg.Keys = m.sw.Link(nodeMAC, proto.EtherTypeControl), keys
	if edit != nil {
		edit(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		m.sw.Close()
		return nil, err
	}
	m.agent = a
	pcfg := proto.DefaultConfig()
	pcfg.Keys = keys
	if m.ep, err = proto.NewEndpoint(m.sw.Link(clientMAC, proto.EtherTypeControl), pcfg); err != nil {
		m.close()
		return nil, err
	}
	m.client = nodeclient.New(m.ep)
	return m, nil
}

func (m *inMemory) close() {
	if m.ep != nil {
		m.ep.Close()
	}
	m.agent.Close()
	m.sw.Close()
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// pingOnce is one ping round trip: mvctl ping's method.
func pingOnce(ctx context.Context, ep *proto.Endpoint, mac proto.MAC) (time.Duration, error) {
	payload := make([]byte, 64)
	start := time.Now()
	_, err := ep.Call(ctx, mac, proto.MethodPing, payload)
	return time.Since(start), err
}

// benchSimCreate creates and starts n sim domains in the in-memory switch,
// a ping between each, and compares the medians.
func benchSimCreate(ctx context.Context, t *report.Table, keys *proto.Keyring, n int) error {
	m, err := newInMemory(keys, nil)
	if err != nil {
		return err
	}
	defer m.close()
	var creates, pings []time.Duration
	for i := 1; i <= n; i++ {
		p, err := pingOnce(ctx, m.ep, nodeMAC)
		if err != nil {
			return err
		}
		pings = append(pings, p)
		start := time.Now()
		if _, err := m.client.Create(ctx, nodeMAC, domain.Spec{ID: i, VCPUs: 1, Memory: 256 * domain.MiB}, true); err != nil {
			return fmt.Errorf("sim create+start dn%d: %w", i, err)
		}
		creates = append(creates, time.Since(start))
	}
	t.Add(report.Row{What: fmt.Sprintf("sim domain create+start, median of %d (in-memory switch)", n), Unit: "µs",
		Ours: us(median(creates)), AnchorName: "ping round trip, same endpoints", Anchor: us(median(pings)), LowerIsBetter: true})
	return nil
}

// benchQEMUCreate times create+start of a 1-vCPU qemu domain (no guest
// kernel: QEMU's firmware runs) beside a bare QEMU with the same machine
// options, started until its QMP socket greets, interleaved.
func benchQEMUCreate(ctx context.Context, t *report.Table, keys *proto.Keyring, n int, stderr io.Writer) error {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return errors.New("needs qemu-system-x86_64 (Debian package qemu-system-x86)")
	}
	dir, err := os.MkdirTemp("", "bench-node-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, err := newInMemory(keys, func(c *agent.Config) {
		c.Driver, c.QEMU.Binary, c.QEMU.RunDir, c.StopGuestsOnExit = agent.DriverQEMU, bin, filepath.Join(dir, "run"), true
		hw := inventory.DefaultSimHardware()
		c.SimHardware = &hw
	})
	if err != nil {
		return err
	}
	defer m.close()
	var ours, bare []time.Duration
	for i := 1; i <= n; i++ {
		start := time.Now()
		if _, err := m.client.Create(ctx, nodeMAC, domain.Spec{ID: i, VCPUs: 1, Memory: 128 * domain.MiB}, true); err != nil {
			return fmt.Errorf("qemu create+start dn%d: %w", i, err)
		}
		ours = append(ours, time.Since(start))
		if _, err := m.client.Do(ctx, nodeMAC, i, domain.OpDestroy); err != nil {
			return err
		}
		if _, err := m.client.Do(ctx, nodeMAC, i, domain.OpUndefine); err != nil {
			return err
		}
		d, err := bareQEMU(ctx, bin, filepath.Join(dir, fmt.Sprintf("bare%d.sock", i)))
		if err != nil {
			return err
		}
		bare = append(bare, d)
		fmt.Fprintf(stderr, "qemu round %d: create+start %v, bare start %v\n", i, ours[i-1].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	t.Add(report.Row{What: fmt.Sprintf("qemu (TCG) domain create+start, median of %d", n), Unit: "ms", Ours: ms(median(ours)),
		AnchorName: "bare qemu-system-x86_64 start to QMP greeting", Anchor: ms(median(bare)), LowerIsBetter: true,
		Note: "ours adds QMP handshake, vCPU thread pinning, cont"})
	return nil
}

// bareQEMU starts QEMU as the driver does (paused, QMP socket) and returns
// how long until the QMP greeting arrives; then kills it.
func bareQEMU(ctx context.Context, bin, sock string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "-machine", "pc,accel=tcg", "-nodefaults", "-no-user-config", "-display", "none",
		"-S", "-qmp", "unix:"+sock+",server=on,wait=off", "-smp", "1", "-m", "128M")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || !strings.Contains(line, "QMP") {
				return 0, fmt.Errorf("bare qemu: no QMP greeting: %q %v", line, err)
			}
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond): // polling a real process's socket
		}
	}
}

// benchDaemon runs the real mvnode binary in a namespace, cabled to the
// root namespace by a veth pair, and measures it from here.
func benchDaemon(ctx context.Context, t *report.Table, keys *proto.Keyring, n int, per time.Duration, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "bench-node-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mvnode := filepath.Join(dir, "mvnode")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", mvnode, "./cmd/mvnode").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/mvnode: %v: %s", err, out)
	}
	keyFile := filepath.Join(dir, "cluster.key")
	if err := proto.WriteKeyFile(keyFile, keys.Primary()); err != nil {
		return err
	}
	id := fmt.Sprintf("mvbn%d", os.Getpid()%100000)
	ns, here := id, id+"h"
	if err := ipCommands(
		[]string{"netns", "add", ns},
		[]string{"link", "add", here, "type", "veth", "peer", "name", "eth0", "netns", ns},
		[]string{"link", "set", here, "up"},
		[]string{"-n", ns, "link", "set", "eth0", "up"},
	); err != nil {
		exec.Command("ip", "netns", "del", ns).Run()
		return err
	}
	defer exec.Command("ip", "link", "del", here).Run()
	defer exec.Command("ip", "netns", "del", ns).Run()

	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, mvnode, "--iface", "eth0", "--key", keyFile, "--log-level", "warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ready := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		ready <- line
		io.Copy(io.Discard, r)
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(30 * time.Second):
		return errors.New("mvnode did not start within 30 s")
	}
	mac, err := macOf(line)
	if err != nil {
		return err
	}
	link, err := proto.OpenPacketLink(here, proto.EtherTypeControl, nil)
	if err != nil {
		return err
	}
	pcfg := proto.DefaultConfig()
	pcfg.Keys = keys
	ep, err := proto.NewEndpoint(link, pcfg)
	if err != nil {
		link.Close()
		return err
	}
	defer ep.Close()
	client := nodeclient.New(ep)
	pid := cmd.Process.Pid // ip netns exec execs mvnode

	if _, err := client.Probe(ctx, mac); err != nil {
		return err
	}
	idle, err := rss(pid)
	if err != nil {
		return err
	}
	if _, err := client.Create(ctx, mac, domain.Spec{ID: 1, VCPUs: 1, Memory: 256 * domain.MiB}, true); err != nil {
		return err
	}
	rates := map[string]float64{}
	calls := map[string]func() error{
		"ping": func() error { _, err := ep.Call(ctx, mac, proto.MethodPing, make([]byte, 64)); return err },
		"vcpu.info": func() error {
			_, err := client.VCPUs(ctx, mac, 1)
			return err
		},
		"node.probe": func() error { _, err := client.Probe(ctx, mac); return err },
	}
	for range 3 { // interleaved rounds; the best of each
		for _, name := range []string{"ping", "vcpu.info", "node.probe"} {
			r, err := rate(per, calls[name])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rates[name] = max(rates[name], r)
		}
	}
	t.Add(report.Row{What: "vcpu.info RPCs/s against one mvnode, one at a time, veth", Unit: "/s", Ours: rates["vcpu.info"],
		AnchorName: "mvctl ping's method, same pair", Anchor: rates["ping"]})
	t.Add(report.Row{What: "node.probe RPCs/s (answers a heartbeat), veth", Unit: "/s", Ours: rates["node.probe"],
		AnchorName: "mvctl ping's method, same pair", Anchor: rates["ping"]})

	for i := 2; i <= n; i++ {
		if _, err := client.Create(ctx, mac, domain.Spec{ID: i, VCPUs: 1, Memory: 256 * domain.MiB}, true); err != nil {
			return fmt.Errorf("dn%d: %w", i, err)
		}
	}
	doms, err := client.List(ctx, mac)
	if err != nil {
		return err
	}
	full, err := rss(pid)
	if err != nil {
		return err
	}
	t.Add(report.Row{What: fmt.Sprintf("mvnode RSS with %d running sim domains", len(doms)), Unit: "MiB", Ours: float64(full) / (1 << 20),
		AnchorName: "the same mvnode idle", Anchor: float64(idle) / (1 << 20), LowerIsBetter: true,
		Note: fmt.Sprintf("%.1f KiB per domain", float64(full-idle)/1024/float64(len(doms)))})
	return nil
}

func ipCommands(cmds ...[]string) error {
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

// macOf reads the MAC from mvnode's ready line "mvnode: node ID (MAC) ...".
func macOf(line string) (proto.MAC, error) {
	_, rest, ok := strings.Cut(line, "(")
	s, _, ok2 := strings.Cut(rest, ")")
	if !ok || !ok2 {
		return proto.MAC{}, fmt.Errorf("mvnode's first line %q has no (MAC)", line)
	}
	return proto.ParseMAC(s)
}

// rate runs fn one call at a time for d and returns calls per second.
func rate(d time.Duration, fn func() error) (float64, error) {
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if err := fn(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// rss reads a process's resident set size in bytes.
func rss(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}
