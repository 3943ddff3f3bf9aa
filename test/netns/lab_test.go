package netns_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/mdlayher/packet"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// TestMain removes the binaries BuildBinaries made. It is the one TestMain
// of package test/netns; integration tests in other files share it.
func TestMain(m *testing.M) { netns.Main(m) }

// testType is the EtherType of the harness's own test frames: IEEE local
// experimental, so nothing in the kernel answers it.
const testType = proto.EtherTypeControl

// rawConn is an AF_PACKET datagram socket on a host's interface; the kernel
// adds and strips the Ethernet header.
type rawConn struct {
	*packet.Conn
	host *netns.Host
}

// openRaw opens a raw socket inside h's namespace for testType, with a
// receive buffer large enough that a burst of test frames is not dropped
// by the socket itself.
func openRaw(t *testing.T, h *netns.Host) *rawConn {
	t.Helper()
	var c *packet.Conn
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Datagram, int(testType), nil)
		if err != nil {
			return err
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20)
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		t.Fatalf("opening a raw socket in %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, host: h}
}

// send writes one frame whose payload starts with seq, padded to size.
func (c *rawConn) send(t *testing.T, dst proto.MAC, seq uint32, size int) {
	t.Helper()
	p := make([]byte, max(size, 4))
	binary.BigEndian.PutUint32(p, seq)
	if _, err := c.WriteTo(p, &packet.Addr{HardwareAddr: net.HardwareAddr(dst[:])}); err != nil {
		t.Fatalf("sending from %s: %v", c.host.Name, err)
	}
}

// collect reads frames until done says so or quiet passes without one,
// and returns the sequence numbers seen and the largest payload. It may
// run on its own goroutine, so it reports errors without stopping the test.
func (c *rawConn) collect(t *testing.T, quiet time.Duration, done func(seen map[uint32]bool) bool) (seen map[uint32]bool, biggest int) {
	t.Helper()
	seen = make(map[uint32]bool)
	buf := make([]byte, 65536)
	for !done(seen) {
		if err := c.SetReadDeadline(time.Now().Add(quiet)); err != nil {
			t.Error(err)
			return seen, biggest
		}
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Errorf("reading in %s: %v", c.host.Name, err)
			return seen, biggest
		}
		if n >= 4 {
			seen[binary.BigEndian.Uint32(buf)] = true
			biggest = max(biggest, n)
		}
	}
	return seen, biggest
}

// all is a collect condition: every one of seqs has arrived.
func all(seqs ...uint32) func(map[uint32]bool) bool {
	return func(seen map[uint32]bool) bool {
		for _, s := range seqs {
			if !seen[s] {
				return false
			}
		}
		return true
	}
}

// count is a collect condition: n frames have arrived.
func count(n int) func(map[uint32]bool) bool {
	return func(seen map[uint32]bool) bool { return len(seen) >= n }
}

// ipLink returns what `ip -d link show` says about the host's interface,
// from inside its namespace.
func ipLink(t *testing.T, h *netns.Host) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := h.Command(ctx, "ip", "link", "show", "dev", h.Iface).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show in %s: %v\n%s", h.Name, err, out)
	}
	return string(out)
}

func TestLabCarriesFramesBetweenNamespaces(t *testing.T) {
	netns.RequireRoot(t)
	for _, tc := range []struct {
		hosts, mtu int
	}{
		{hosts: 2, mtu: 1500},
		{hosts: 5, mtu: 9000},
	} {
		t.Run(fmt.Sprintf("%dhosts-mtu%d", tc.hosts, tc.mtu), func(t *testing.T) {
			lab := netns.New(t, netns.Config{Hosts: tc.hosts, MTU: tc.mtu})
			if len(lab.Hosts) != tc.hosts {
				t.Fatalf("lab has %d hosts, want %d", len(lab.Hosts), tc.hosts)
			}
			macs := make(map[proto.MAC]bool)
			for _, h := range lab.Hosts {
				link := ipLink(t, h)
				for _, want := range []string{
					",UP,", "state UP", fmt.Sprintf("mtu %d ", tc.mtu), "link/ether " + h.MAC.String(),
				} {
					if !strings.Contains(link, want) {
						t.Errorf("%s in %s: want %q in:\n%s", h.Iface, h.Name, want, link)
					}
				}
				if macs[h.MAC] {
					t.Errorf("MAC %s used twice", h.MAC)
				}
				macs[h.MAC] = true
			}

			conns := make([]*rawConn, len(lab.Hosts))
			for i, h := range lab.Hosts {
				conns[i] = openRaw(t, h)
			}
			// Host 0 sends a full-MTU frame to each other host, then a
			// broadcast; each must get both.
			for i, h := range lab.Hosts[1:] {
				conns[0].send(t, h.MAC, uint32(100+i+1), tc.mtu)
			}
			conns[0].send(t, proto.Broadcast, 1, 64)
			for i, c := range conns[1:] {
				mine := uint32(100 + i + 1)
				seen, biggest := c.collect(t, 2*time.Second, all(mine, 1))
				if !seen[mine] || !seen[1] {
					t.Errorf("%s got frames %v, want its unicast %d and broadcast 1", c.host.Name, seen, mine)
				}
				for s := range seen {
					if s != mine && s != 1 {
						t.Errorf("%s got frame %d meant for another host: the bridge flooded a unicast", c.host.Name, s)
					}
				}
				if biggest != tc.mtu {
					t.Errorf("%s: largest payload %d, want %d (the MTU)", c.host.Name, biggest, tc.mtu)
				}
			}
			// And the way back: every host answers host 0.
			for i, c := range conns[1:] {
				c.send(t, lab.Hosts[0].MAC, uint32(200+i+1), 64)
			}
			var answers []uint32
			for i := range conns[1:] {
				answers = append(answers, uint32(200+i+1))
			}
			seen, _ := conns[0].collect(t, 2*time.Second, all(answers...))
			for i := range conns[1:] {
				if !seen[uint32(200+i+1)] {
					t.Errorf("host 0 did not get the answer of host %d; got %v", i+1, seen)
				}
			}
		})
	}
}

func TestSetLossDropsAShareOfFrames(t *testing.T) {
	netns.RequireNft(t)
	lab := netns.New(t, netns.Config{Hosts: 2})
	a, b := openRaw(t, lab.Hosts[0]), openRaw(t, lab.Hosts[1])
	const frames = 2000

	burst := func(base uint32) int {
		t.Helper()
		for i := range uint32(frames) {
			a.send(t, lab.Hosts[1].MAC, base+i, 64)
		}
		seen, _ := b.collect(t, 500*time.Millisecond, count(frames))
		return len(seen)
	}

	if got := burst(0); got != frames {
		t.Fatalf("without loss %d of %d frames arrived", got, frames)
	}
	if err := lab.SetLoss(50); err != nil {
		t.Fatal(err)
	}
	// 2000 draws at p = 0.5: the standard deviation is 22 frames, so
	// 800..1200 is a 9-sigma band.
	if got := burst(10000); got < 800 || got > 1200 {
		t.Errorf("at 50%% loss %d of %d frames arrived, want about half", got, frames)
	}
	if err := lab.SetLoss(0); err != nil {
		t.Fatal(err)
	}
	if got := burst(20000); got != frames {
		t.Errorf("after SetLoss(0) %d of %d frames arrived, want all", got, frames)
	}

	// Loss restricted to another EtherType leaves ours alone.
	if err := lab.SetLoss(100, proto.EtherTypeAoE); err != nil {
		t.Fatal(err)
	}
	if got := burst(30000); got != frames {
		t.Errorf("with 100%% loss of AoE only, %d of %d control frames arrived, want all", got, frames)
	}
	if err := lab.SetLoss(100, testType); err != nil {
		t.Fatal(err)
	}
	if got := burst(40000); got != 0 {
		t.Errorf("with 100%% loss of %#04x, %d frames arrived, want none", uint16(testType), got)
	}
}

func TestPartitionAndCut(t *testing.T) {
	netns.RequireNft(t)
	lab := netns.New(t, netns.Config{Hosts: 4})
	h := lab.Hosts
	c := make([]*rawConn, len(h))
	for i := range h {
		c[i] = openRaw(t, h[i])
	}
	// reach sends a broadcast from host from and reports which hosts got it.
	seq := uint32(0)
	reach := func(from int) []int {
		t.Helper()
		seq++
		c[from].send(t, proto.Broadcast, seq, 64)
		got := make([]bool, len(c))
		var wg sync.WaitGroup
		for i := range c {
			if i == from {
				continue
			}
			wg.Go(func() {
				seen, _ := c[i].collect(t, 300*time.Millisecond, all(seq))
				got[i] = seen[seq]
			})
		}
		wg.Wait()
		var hosts []int
		for i, ok := range got {
			if ok {
				hosts = append(hosts, i)
			}
		}
		return hosts
	}
	check := func(what string, from int, want []int) {
		t.Helper()
		got := reach(from)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: host %d reached %v, want %v", what, from, got, want)
		}
	}

	check("healthy", 0, []int{1, 2, 3})
	if err := lab.Partition([]*netns.Host{h[0], h[1]}, []*netns.Host{h[2]}); err != nil {
		t.Fatal(err)
	}
	check("partitioned", 0, []int{1, 3})
	check("partitioned", 2, []int{3})
	check("partitioned, outside any group", 3, []int{0, 1, 2})
	if err := lab.Heal(); err != nil {
		t.Fatal(err)
	}
	check("healed", 0, []int{1, 2, 3})
	check("healed", 2, []int{0, 1, 3})

	if err := lab.Block([]*netns.Host{h[0]}, []*netns.Host{h[2], h[3]}); err != nil {
		t.Fatal(err)
	}
	check("0 blocked towards 2 and 3", 0, []int{1})
	check("0 blocked towards 2 and 3, other way", 2, []int{0, 1, 3})
	if err := lab.Heal(); err != nil {
		t.Fatal(err)
	}
	check("block healed", 0, []int{1, 2, 3})

	if err := lab.Cut(h[1], true); err != nil {
		t.Fatal(err)
	}
	if link := ipLink(t, h[1]); strings.Contains(link, "state UP") {
		t.Errorf("after Cut, %s in %s is still up:\n%s", h[1].Iface, h[1].Name, link)
	}
	check("cable 1 pulled", 0, []int{2, 3})
	if err := lab.Cut(h[1], false); err != nil {
		t.Fatal(err)
	}
	check("cable 1 back", 0, []int{1, 2, 3})
}

func TestCleanupRemovesEverything(t *testing.T) {
	netns.RequireRoot(t)
	bins := netns.BuildBinaries(t, "./test/netns/testdata/nsinfo")
	var (
		names []string
		proc  *netns.Process
	)
	t.Run("lab", func(t *testing.T) {
		lab := netns.New(t, netns.Config{Hosts: 3, Prefix: "cleanup"})
		names = append(names, lab.Switch)
		for _, h := range lab.Hosts {
			names = append(names, h.Name)
		}
		h := lab.Hosts[2]
		proc = h.Start(t, bins["nsinfo"], "-wait")
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if err := proc.WaitOutput(ctx, "waiting"); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("iface=eth0 mac=%s mtu=1500", h.MAC)
		if !strings.Contains(proc.Output(), want) {
			t.Errorf("nsinfo in %s printed %q, want %q: it did not run inside the namespace", h.Name, proc.Output(), want)
		}
	})
	if !proc.Exited() {
		t.Errorf("process %d started with Start is still running after the test ended", proc.Pid())
	}
	out, err := runHere(t, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(out, n) {
			t.Errorf("namespace %s still exists after cleanup:\n%s", n, out)
		}
	}
	again := netns.BuildBinaries(t, "./test/netns/testdata/nsinfo")
	if again["nsinfo"] != bins["nsinfo"] {
		t.Errorf("second BuildBinaries gave %s, want the first build %s", again["nsinfo"], bins["nsinfo"])
	}
}

func TestProcessSignalAndRestart(t *testing.T) {
	lab := netns.New(t, netns.Config{Hosts: 1})
	bins := netns.BuildBinaries(t, "./test/netns/testdata/nsinfo")
	h := lab.Hosts[0]
	for round := range 2 { // the second round is a restart
		p := h.Start(t, bins["nsinfo"], "-wait")
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		if err := p.WaitOutput(ctx, "waiting"); err != nil {
			t.Fatal(err)
		}
		err := p.Stop(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: nsinfo exited with %v, want status 0 after SIGTERM; output:\n%s", round, err, p.Output())
		}
		if !strings.Contains(p.Output(), "terminated") {
			t.Errorf("round %d: output %q, want it to end with terminated", round, p.Output())
		}
	}
}

// runHere runs a command in the test's own namespace.
func runHere(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := osexec.CommandContext(t.Context(), name, args...).CombinedOutput()
	return string(out), err
}

func TestIPv4AndBridgeHost(t *testing.T) {
	lab := netns.New(t, netns.Config{Hosts: 2, IPv4: true})
	a, b := lab.Hosts[0], lab.Hosts[1]
	if !a.IPv4.IsValid() || !b.IPv4.IsValid() || a.IPv4 == b.IPv4 {
		t.Fatalf("IPv4 addresses %v and %v, want two distinct ones", a.IPv4, b.IPv4)
	}
	// A TCP echo across the lab, sockets opened inside the namespaces.
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(b.IPv4.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err == nil {
			_, _ = c.Write(buf)
		}
	}()
	var conn net.Conn
	if err := a.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo over TCP between namespaces: got %q, %v", got, err)
	}
	// The test's own namespace has no such address: the lab is private.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range addrs {
		if p, ok := ad.(*net.IPNet); ok && (p.IP.Equal(net.IP(a.IPv4.AsSlice())) || p.IP.Equal(net.IP(b.IPv4.AsSlice()))) {
			t.Errorf("the test's namespace has the lab's address %v", p)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := lab.Bridge.Run(ctx, "ip", "link", "show", "master", "br0")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range lab.Hosts {
		if !strings.Contains(out, h.Port()+"@") {
			t.Errorf("bridge ports %q do not include %s", out, h.Port())
		}
	}
	if err := lab.Cut(lab.Bridge, true); err == nil {
		t.Error("Cut accepted the bridge itself")
	}
}

func TestCaptureRecordsEachFrameOnce(t *testing.T) {
	lab := netns.New(t, netns.Config{Hosts: 3})
	a, b := openRaw(t, lab.Hosts[0]), openRaw(t, lab.Hosts[1])
	file := filepath.Join(t.TempDir(), "lab.pcapng")
	capture := lab.Capture(t, file, testType)

	for seq := range uint32(3) {
		a.send(t, lab.Hosts[1].MAC, seq, 100)
	}
	b.send(t, proto.Broadcast, 3, 100)
	if seen, _ := b.collect(t, 2*time.Second, count(3)); len(seen) != 3 {
		t.Fatalf("host 1 got %v, want 3 frames", seen)
	}
	if err := capture.Stop(); err != nil {
		t.Fatalf("stopping the capture: %v", err)
	}

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 18 {
			t.Fatalf("captured a %d-byte frame", len(data))
		}
		var dst, src proto.MAC
		copy(dst[:], data[0:6])
		copy(src[:], data[6:12])
		got = append(got, fmt.Sprintf("%s>%s #%d", src, dst, binary.BigEndian.Uint32(data[14:18])))
	}
	if tshark, err := osexec.LookPath("tshark"); err == nil {
		out, err := osexec.CommandContext(t.Context(), tshark, "-r", file, "-T", "fields", "-e", "eth.type").CombinedOutput()
		if err != nil || strings.Count(string(out), "0x88b5") != 4 {
			t.Errorf("tshark -r %s: %v, want 4 frames of type 0x88b5:\n%s", file, err, out)
		}
	}
	h := lab.Hosts
	want := []string{
		fmt.Sprintf("%s>%s #0", h[0].MAC, h[1].MAC),
		fmt.Sprintf("%s>%s #1", h[0].MAC, h[1].MAC),
		fmt.Sprintf("%s>%s #2", h[0].MAC, h[1].MAC),
		fmt.Sprintf("%s>%s #3", h[1].MAC, proto.Broadcast),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("captured frames (-want +got):\n%s", diff)
	}
}

func TestSetMTUCarriesJumboFrames(t *testing.T) {
	lab := netns.New(t, netns.Config{Hosts: 2})
	if err := lab.SetMTU(9000); err != nil {
		t.Fatal(err)
	}
	if lab.MTU() != 9000 {
		t.Errorf("MTU() = %d after SetMTU(9000)", lab.MTU())
	}
	for _, h := range lab.Hosts {
		if link := ipLink(t, h); !strings.Contains(link, "mtu 9000 ") {
			t.Errorf("%s in %s after SetMTU(9000):\n%s", h.Iface, h.Name, link)
		}
	}
	a, b := openRaw(t, lab.Hosts[0]), openRaw(t, lab.Hosts[1])
	a.send(t, lab.Hosts[1].MAC, 7, 9000)
	if seen, biggest := b.collect(t, 2*time.Second, all(7)); !seen[7] || biggest != 9000 {
		t.Errorf("a 9000-byte payload after SetMTU(9000): got %v, largest %d", seen, biggest)
	}
	if err := lab.SetMTU(65536); err == nil {
		t.Error("SetMTU(65536) accepted; veth carries at most 65535")
	}
}
