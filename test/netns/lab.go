package netns

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mvstack/mvstack/proto"
)

// Config describes a lab.
type Config struct {
	// Hosts is the number of host namespaces on the bridge, 1 to 250.
	Hosts int
	// MTU of every interface in the lab; 0 means 1500. Veth carries up to
	// 65535.
	MTU int
	// Prefix is an optional tag put into the namespace names so that
	// `ip netns list` shows which test made them; the default is the test's
	// name. Lower-case letters, digits and dots are kept, at most 20.
	Prefix string
	// IPv4 gives every host interface the address 10.77.0.<index+1>/16.
	// The addresses exist only inside the lab's own namespaces, so labs do
	// not collide. mvstack's protocols never need IP; benchmarks use it for
	// their TCP anchors.
	IPv4 bool
}

// DefaultConfig returns a two-host lab at MTU 1500.
func DefaultConfig() Config { return Config{Hosts: 2, MTU: 1500} }

// MaxHosts is the largest lab [New] makes.
const MaxHosts = 250

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	if c.Hosts < 1 || c.Hosts > MaxHosts {
		return fmt.Errorf("netns: Config.Hosts = %d, want 1 to %d", c.Hosts, MaxHosts)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fmt.Errorf("netns: Config.MTU = %d, want 0 (1500) or 68 to 65535", c.MTU)
	}
	return nil
}

// The names inside a lab. Each lab has its own namespaces, so these never
// collide with anything outside it.
const (
	bridgeName = "br0"
	hostIface  = "eth0"
)

// portName is the bridge-side end of host i's veth.
func portName(i int) string { return "p" + strconv.Itoa(i) }

// Lab is a set of network namespaces ("hosts") cabled by veth pairs to one
// bridge that lives in its own "switch" namespace, so nothing touches the
// root namespace. Build one with [New]; it is removed when the test ends.
// A Lab's methods are safe for concurrent use.
type Lab struct {
	// Hosts are the host namespaces, in index order.
	Hosts []*Host
	// Switch is the namespace that holds the bridge and its ports.
	Switch string
	// Bridge is the switch namespace seen as a host, with Iface "br0", so
	// Command, Start and Do work there too: capture the lab's whole wire
	// with Bridge.Start(t, "tshark", "-i", "br0", "-w", file). Its MAC is
	// zero and its Index -1.
	Bridge *Host

	id       int
	mtu      int
	nsNames  []string // every namespace made so far, switch first
	teardown sync.Once

	mu        sync.Mutex
	loss      int
	lossType  []proto.EtherType
	groups    [][]int    // partition, by host index
	blocks    [][2][]int // one-way blocks: from hosts, to hosts
	procs     map[*Process]struct{}
	mirror    bool // the capture mirror port exists
	capturing bool // a capture's nft chain is in place
}

// Host is one network namespace with one Ethernet interface on the lab's
// bridge.
type Host struct {
	// Name is the namespace's name, as `ip netns` knows it.
	Name string
	// Iface is the interface inside the namespace (always "eth0").
	Iface string
	// MAC is Iface's hardware address: 02:6d:76:LL:00:II, LL the lab's
	// number in this process and II the host's index plus one.
	MAC proto.MAC
	// IPv4 is Iface's address when Config.IPv4 was set; the zero Addr
	// otherwise. The prefix length is 16.
	IPv4 netip.Addr
	// Index is the host's position in Lab.Hosts.
	Index int

	lab *Lab
}

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// Port is the name of the host's cable end on the bridge, in the lab's
// switch namespace.
func (h *Host) Port() string { return portName(h.Index) }

func (h *Host) String() string { return h.Name }

// labSeq numbers labs within this process.
var labSeq atomic.Int32

// settleTimeout bounds the wait for links and bridge ports to come up.
const settleTimeout = 15 * time.Second

// New makes a lab of cfg.Hosts namespaces on one bridge and registers its
// removal with t.Cleanup; an interrupt (SIGINT, SIGTERM, SIGHUP) of the
// test process removes it too. It first removes leftovers of earlier runs
// whose process is dead (see [Sweep]). It skips the test when not root and
// fails it when the lab cannot be made.
func New(t testing.TB, cfg Config) *Lab {
	t.Helper()
	RequireRoot(t)
	if cfg.Prefix == "" {
		cfg.Prefix = t.Name()
	}
	l, err := Open(cfg)
	if l != nil {
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Errorf("netns: removing lab: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Open makes a lab like [New] for a program that is not a test (a
// benchmark): the caller must Close it. An interrupt removes it too. On
// an error the lab made so far is returned as well, for Close.
func Open(cfg Config) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New(rootSkip)
	}
	if err := Sweep(); err != nil {
		slog.Warn("netns: sweeping leftovers of earlier runs", "err", err)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tag := sanitize(cfg.Prefix, 20)
	if tag == "" {
		tag = "lab"
	}
	l := &Lab{id: int(labSeq.Add(1)), mtu: cfg.MTU, procs: make(map[*Process]struct{})}
	base := fmt.Sprintf("%s-%d-%s", self(), l.id, tag)
	l.Switch = base + "-sw"
	l.Bridge = &Host{Name: l.Switch, Iface: bridgeName, Index: -1, lab: l}
	for i := range cfg.Hosts {
		h := &Host{
			Name:  base + "-h" + strconv.Itoa(i),
			Iface: hostIface,
			MAC:   proto.MAC{0x02, 0x6d, 0x76, byte(l.id), byte((i + 1) >> 8), byte(i + 1)},
			Index: i,
			lab:   l,
		}
		if cfg.IPv4 {
			h.IPv4 = netip.AddrFrom4([4]byte{10, 77, byte((i + 1) >> 8), byte(i + 1)})
		}
		l.Hosts = append(l.Hosts, h)
	}
	// Register before making anything, so an interrupt in the middle of
	// Open still removes what exists.
	live.add(l)
	if err := l.build(cfg); err != nil {
		return l, err
	}
	return l, nil
}

// Close kills every process in the lab and removes its namespaces.
func (l *Lab) Close() error { return l.destroy() }

// build makes the namespaces, the bridge and the cables, then waits until
// every link is up and every bridge port forwards.
func (l *Lab) build(cfg Config) error {
	mtu := strconv.Itoa(cfg.MTU)
	l.mu.Lock()
	l.nsNames = append(l.nsNames, l.Switch)
	for _, h := range l.Hosts {
		l.nsNames = append(l.nsNames, h.Name)
	}
	l.mu.Unlock()
	var add [][]string
	for _, ns := range l.nsNames {
		add = append(add, []string{"netns", "add", ns})
	}
	if err := ipBatch("", add); err != nil {
		return fmt.Errorf("netns: making namespaces: %w", err)
	}
	sw := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", bridgeName, "mtu", mtu, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"},
		{"link", "set", bridgeName, "addrgenmode", "none"},
	}
	for _, h := range l.Hosts {
		port := h.Port()
		portMAC := h.MAC
		portMAC[2] = 0x77
		sw = append(sw,
			[]string{"link", "add", port, "mtu", mtu, "address", portMAC.String(), "type", "veth",
				"peer", "name", h.Iface, "netns", h.Name, "mtu", mtu, "address", h.MAC.String()},
			[]string{"link", "set", port, "addrgenmode", "none"},
			[]string{"link", "set", port, "master", bridgeName},
			[]string{"link", "set", port, "up"},
		)
	}
	sw = append(sw, []string{"link", "set", bridgeName, "up"})
	if err := ipBatch(l.Switch, sw); err != nil {
		return fmt.Errorf("netns: making the bridge: %w", err)
	}
	// Static forwarding entries: the bridge knows every host from the
	// start, so a unicast frame reaches only its destination (no flooding
	// of unknown addresses before the bridge has learnt them).
	var fdb [][]string
	for _, h := range l.Hosts {
		fdb = append(fdb, []string{"fdb", "add", h.MAC.String(), "dev", h.Port(), "master", "static"})
	}
	if err := batch("bridge", l.Switch, fdb); err != nil {
		return fmt.Errorf("netns: filling the bridge's forwarding table: %w", err)
	}
	for _, h := range l.Hosts {
		cmds := [][]string{
			{"link", "set", "lo", "up"},
			// No IPv6 link-local address: no DAD, router or MLD chatter on
			// the lab's wire.
			{"link", "set", h.Iface, "addrgenmode", "none"},
			{"link", "set", h.Iface, "up"},
		}
		if h.IPv4.IsValid() {
			cmds = append(cmds, []string{"addr", "add", h.IPv4.String() + "/16", "dev", h.Iface})
		}
		if err := ipBatch(h.Name, cmds); err != nil {
			return fmt.Errorf("netns: setting up %s: %w", h.Name, err)
		}
	}
	return l.settle()
}

// settle waits until every host interface is operationally up and every
// bridge port forwards. The kernel brings carrier and port state up
// asynchronously, so a frame sent right after `ip link set up` may be lost.
func (l *Lab) settle() error {
	deadline := time.Now().Add(settleTimeout)
	var last error
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		last = l.ready()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns: lab not up after %v: %w", settleTimeout, last)
		}
		time.Sleep(delay)
	}
}

// ready reports why the lab is not yet usable, or nil.
func (l *Lab) ready() error {
	ports, err := l.bridgePorts()
	if err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if s := ports[h.Port()]; s != "forwarding" {
			return fmt.Errorf("bridge port %s of %s is %q, want forwarding", h.Port(), h.Name, s)
		}
		st, err := h.operState()
		if err != nil {
			return err
		}
		if st != "UP" {
			return fmt.Errorf("%s in %s is %s, want UP", h.Iface, h.Name, st)
		}
	}
	return nil
}

// destroy kills every process left in the lab's namespaces and deletes the
// namespaces, which removes the veths and the bridge with them. It runs
// once; later calls return nil.
func (l *Lab) destroy() error {
	var err error
	l.teardown.Do(func() {
		l.mu.Lock()
		procs := make([]*Process, 0, len(l.procs))
		for p := range l.procs {
			procs = append(procs, p)
		}
		names := append([]string(nil), l.nsNames...)
		l.mu.Unlock()
		for _, p := range procs {
			p.Kill()
		}
		err = removeNamespaces(names)
		live.remove(l)
	})
	return err
}

// removeNamespaces kills the processes inside the named namespaces and
// deletes them.
func removeNamespaces(names []string) error {
	if len(names) == 0 {
		return nil
	}
	var errs []error
	for _, ns := range names {
		if err := killAllIn(ns); err != nil {
			errs = append(errs, err)
		}
	}
	var del [][]string
	for _, ns := range names {
		del = append(del, []string{"netns", "del", ns})
	}
	if err := ipBatch("", del); err != nil {
		// The batch stops at the first failure (a namespace another
		// process's Sweep removed first, say); delete one by one so the
		// rest still goes, and count only those that remain.
		for _, ns := range names {
			if err := ip("netns", "del", ns); err != nil && nsExists(ns) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// nsExists reports whether /run/netns holds a namespace named ns.
func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

// killAllIn sends SIGKILL to every process whose network namespace is ns,
// except this one (a goroutine of ours may be inside it through Host.Do).
func killAllIn(ns string) error {
	out, err := run(nil, "ip", "netns", "pids", ns)
	if err != nil {
		if !nsExists(ns) {
			return nil // removed meanwhile
		}
		return err
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() || pid <= 1 {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

// Sweep removes namespaces and build directories left by earlier test
// processes that have died without cleaning up (killed, or timed out by
// go test). Names carry their owner's pid and start time, so live runs,
// including parallel ones, are never touched. [New] calls it.
func Sweep() error {
	names, err := listNamespaces()
	if err != nil {
		return fmt.Errorf("netns: listing namespaces: %w", err)
	}
	var stale []string
	for _, n := range names {
		if o, ok := parseOwner(n); ok && !o.alive() {
			stale = append(stale, n)
		}
	}
	errs := []error{removeNamespaces(stale)}
	errs = append(errs, sweepBuildDirs())
	return errors.Join(errs...)
}
