// Command proto benchmarks the control protocol on one veth pair between two
// network namespaces, beside Go TCP on the same pair and a bare
// mdlayher/packet loop, and prints each figure beside its anchor.
//
//	sudo go run ./bench/proto            # both MTUs
//	sudo go run ./bench/proto -mtu 9000  # one
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/proto"
)

func main() {
	mtu := flag.Int("mtu", 0, "run only this MTU (default: 1500 and 9000)")
	calls := flag.Int("calls", 20000, "64-byte round trips per protocol")
	mib := flag.Int("mib", 300, "1 MiB messages per protocol and round")
	rounds := flag.Int("rounds", 5, "rounds alternating ours and TCP; figures are their medians")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	tracefile := flag.String("trace", "", "write an execution trace of the run to this file")
	flag.Parse()
	if *tracefile != "" {
		f, err := os.Create(*tracefile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/proto:", err)
			os.Exit(1)
		}
		trace.Start(f)
		defer trace.Stop()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/proto:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if os.Geteuid() != 0 {
		fmt.Println("bench/proto: needs root (CAP_NET_ADMIN to make namespaces, CAP_NET_RAW for raw sockets): skipped")
		return
	}
	mtus := []int{1500, 9000}
	if *mtu != 0 {
		mtus = []int{*mtu}
	}
	for _, m := range mtus {
		if err := benchMTU(m, *calls, *mib, max(*rounds, 1)); err != nil {
			fmt.Fprintln(os.Stderr, "bench/proto:", err)
			return
		}
	}
}

// pair is two namespaces joined by one veth pair, with IPv4 for the TCP anchor.
type pair struct {
	ns     [2]string
	ifname string
	ip     [2]string
}

func newPair(mtu int) (*pair, error) {
	id := fmt.Sprintf("mvb%d", os.Getpid())
	p := &pair{ns: [2]string{id + "a", id + "b"}, ifname: "eth0", ip: [2]string{"10.231.0.1", "10.231.0.2"}}
	steps := [][]string{
		{"ip", "netns", "add", p.ns[0]},
		{"ip", "netns", "add", p.ns[1]},
		{"ip", "link", "add", id + "x", "mtu", fmt.Sprint(mtu), "netns", p.ns[0], "type", "veth", "peer", "name", id + "y", "mtu", fmt.Sprint(mtu), "netns", p.ns[1]},
	}
	for i, ns := range p.ns {
		veth := id + "x"
		if i == 1 {
			veth = id + "y"
		}
		steps = append(steps,
			[]string{"ip", "-n", ns, "link", "set", veth, "name", p.ifname},
			[]string{"ip", "-n", ns, "addr", "add", p.ip[i] + "/24", "dev", p.ifname},
			[]string{"ip", "-n", ns, "link", "set", p.ifname, "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			p.close()
			return nil, fmt.Errorf("%v: %v: %s", s, err, out)
		}
	}
	return p, nil
}

func (p *pair) close() {
	for _, ns := range p.ns {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// in runs fn on a thread inside namespace i; sockets made there stay there.
func (p *pair) in(i int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		target, err := netns.GetFromName(p.ns[i])
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread() // else the thread dies with the goroutine
		}
		errc <- ferr
	}()
	return <-errc
}

func benchMTU(mtu, calls, mib, rounds int) error {
	p, err := newPair(mtu)
	if err != nil {
		return err
	}
	defer p.close()
	t := report.Table{Title: fmt.Sprintf("proto: control protocol vs Go TCP, one veth pair, MTU %d", mtu)}

	// The machine is shared and noisy: each figure is the median of rounds
	// that alternate ours and TCP, and the per-round ratios are printed.
	var oursR, tcpR []figures
	for range rounds {
		ours, err := benchOurs(p, calls, mib)
		if err != nil {
			return fmt.Errorf("control protocol: %w", err)
		}
		tcp, err := benchTCP(p, calls, mib)
		if err != nil {
			return fmt.Errorf("tcp: %w", err)
		}
		oursR, tcpR = append(oursR, ours), append(tcpR, tcp)
	}
	ours, tcp := medianFigures(oursR), medianFigures(tcpR)
	t.Title += fmt.Sprintf(" (medians of %d alternating rounds)", rounds)
	note := ""
	if mtu == 9000 {
		note = "first mark: p50 ≤ TCP's; rounds " + roundRatios(oursR, tcpR, func(o, t figures) float64 { return t.p50 / o.p50 })
	}
	t.Add(report.Row{What: "RPC round trip p50, 64 B", Unit: "µs", Ours: ours.p50, Anchor: tcp.p50, AnchorName: "Go TCP, same veth", LowerIsBetter: true, Note: note})
	t.Add(report.Row{What: "RPC round trip p99, 64 B", Unit: "µs", Ours: ours.p99, Anchor: tcp.p99, AnchorName: "Go TCP, same veth", LowerIsBetter: true})
	t.Add(report.Row{What: "RPC round trips/s, 64 B, one at a time", Unit: "/s", Ours: ours.rps, Anchor: tcp.rps, AnchorName: "Go TCP, same veth"})
	if mtu == 9000 {
		note = "first mark: ≥ 0.8 × TCP's; rounds " + roundRatios(oursR, tcpR, func(o, t figures) float64 { return o.mbps / t.mbps })
	}
	t.Add(report.Row{What: "1 MiB messages, one at a time", Unit: "MB/s", Ours: ours.mbps, Anchor: tcp.mbps, AnchorName: "Go TCP, same veth", Note: note})

	oursF, bareF, err := benchFrames(p)
	if err != nil {
		return fmt.Errorf("frames: %w", err)
	}
	t.Add(report.Row{What: "raw 64 B frames/s received, one writer", Unit: "/s", Ours: oursF, Anchor: bareF, AnchorName: "bare mdlayher/packet loop"})
	if rawMBps, err := benchRawBulk(p, mtu); err == nil {
		t.Add(report.Row{What: "raw MTU-sized frames, batched, no protocol", Unit: "MB/s", Ours: rawMBps, Anchor: tcp.mbps,
			AnchorName: "Go TCP 1 MiB messages", Note: "the link's limit for bulk data"})
	}
	t.Print(os.Stdout)
	return nil
}

type figures struct{ p50, p99, rps, mbps float64 }

// medianFigures takes each figure's median over the rounds.
func medianFigures(fs []figures) figures {
	med := func(get func(figures) float64) float64 {
		v := make([]float64, len(fs))
		for i, f := range fs {
			v[i] = get(f)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return figures{
		p50:  med(func(f figures) float64 { return f.p50 }),
		p99:  med(func(f figures) float64 { return f.p99 }),
		rps:  med(func(f figures) float64 { return f.rps }),
		mbps: med(func(f figures) float64 { return f.mbps }),
	}
}

// roundRatios lists each round's ratio (above 1: ours better) and their
// median.
func roundRatios(ours, tcp []figures, ratio func(o, t figures) float64) string {
	var b strings.Builder
	rs := make([]float64, len(ours))
	for i := range ours {
		rs[i] = ratio(ours[i], tcp[i])
		fmt.Fprintf(&b, "×%.2f ", rs[i])
	}
	slices.Sort(rs)
	fmt.Fprintf(&b, "(median ×%.2f)", rs[len(rs)/2])
	return b.String()
}

func percentiles(d []time.Duration) (p50, p99 float64) {
	slices.Sort(d)
	us := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1000 }
	return us(d[len(d)/2]), us(d[len(d)*99/100])
}

func benchOurs(p *pair, calls, mib int) (figures, error) {
	k, err := proto.NewKey(1)
	if err != nil {
		return figures{}, err
	}
	keys, _ := proto.NewKeyring(k)
	var eps [2]*proto.Endpoint
	for i := range eps {
		var link *proto.PacketLink
		if err := p.in(i, func() (err error) {
			link, err = proto.OpenPacketLink(p.ifname, proto.EtherTypeControl, nil)
			return err
		}); err != nil {
			return figures{}, err
		}
		cfg := proto.DefaultConfig()
		cfg.Keys = keys
		if eps[i], err = proto.NewEndpoint(link, cfg); err != nil {
			return figures{}, err
		}
		defer eps[i].Close()
	}
	// The sink is done with the payload when it returns, so it gives it
	// back, as the TCP server below reuses its one buffer.
	eps[1].Handle("sink", func(ctx context.Context, r *proto.Request) ([]byte, error) { r.Release(); return nil, nil })
	ctx := context.Background()
	dst := eps[1].Addr()
	req := make([]byte, 64)
	for range 500 { // warm up: handshake, timers
		if _, err := eps[0].Call(ctx, dst, proto.MethodPing, req); err != nil {
			return figures{}, err
		}
	}
	rtts := make([]time.Duration, calls)
	start := time.Now()
	for i := range rtts {
		t0 := time.Now()
		if _, err := eps[0].Call(ctx, dst, proto.MethodPing, req); err != nil {
			return figures{}, err
		}
		rtts[i] = time.Since(t0)
	}
	var f figures
	f.rps = float64(calls) / time.Since(start).Seconds()
	f.p50, f.p99 = percentiles(rtts)
	big := make([]byte, 1<<20)
	start = time.Now()
	for range mib {
		if _, err := eps[0].Call(ctx, dst, "sink", big); err != nil {
			return figures{}, err
		}
	}
	f.mbps = float64(mib) * (1 << 20) / 1e6 / time.Since(start).Seconds()
	if os.Getenv("MVBENCH_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "sender %+v\nreceiver %+v\n", eps[0].Stats(), eps[1].Stats())
	}
	return f, nil
}

// benchTCP runs the same exchanges over TCP: a 4-byte length, the bytes,
// and a reply of the same kind (an echo for 64 B, 1 byte for 1 MiB).
func benchTCP(p *pair, calls, mib int) (figures, error) {
	var ln net.Listener
	if err := p.in(1, func() (err error) {
		ln, err = net.Listen("tcp", p.ip[1]+":7000")
		return err
	}); err != nil {
		return figures{}, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if _, err := io.ReadFull(c, buf[:n]); err != nil {
				return
			}
			reply := buf[:n]
			if n > 64 {
				reply = buf[:1]
			}
			binary.BigEndian.PutUint32(hdr[:], uint32(len(reply)))
			if _, err := c.Write(append(hdr[:], reply...)); err != nil {
				return
			}
		}
	}()
	var c net.Conn
	if err := p.in(0, func() (err error) {
		c, err = net.Dial("tcp", p.ip[1]+":7000")
		return err
	}); err != nil {
		return figures{}, err
	}
	defer c.Close()
	rt := func(msg []byte, in []byte) error {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
		if _, err := c.Write(append(hdr[:], msg...)); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		_, err := io.ReadFull(c, in[:binary.BigEndian.Uint32(hdr[:])])
		return err
	}
	in := make([]byte, 1<<20)
	req := make([]byte, 64)
	for range 500 {
		if err := rt(req, in); err != nil {
			return figures{}, err
		}
	}
	rtts := make([]time.Duration, calls)
	start := time.Now()
	for i := range rtts {
		t0 := time.Now()
		if err := rt(req, in); err != nil {
			return figures{}, err
		}
		rtts[i] = time.Since(t0)
	}
	var f figures
	f.rps = float64(calls) / time.Since(start).Seconds()
	f.p50, f.p99 = percentiles(rtts)
	big := make([]byte, 1<<20)
	start = time.Now()
	for range mib {
		if err := rt(big, in); err != nil {
			return figures{}, err
		}
	}
	f.mbps = float64(mib) * (1 << 20) / 1e6 / time.Since(start).Seconds()
	return f, nil
}

// benchFrames counts 64-byte frames received in one second from a writer
// that sends as fast as it can: through our PacketLink, then through a bare
// mdlayher/packet socket (the link's limit).
func benchFrames(p *pair) (ours, bare float64, err error) {
	const run = time.Second
	var tx, rx *proto.PacketLink
	if err := p.in(0, func() (err error) {
		tx, err = proto.OpenPacketLink(p.ifname, 0x88b7, nil)
		return err
	}); err != nil {
		return 0, 0, err
	}
	if err := p.in(1, func() (err error) {
		rx, err = proto.OpenPacketLink(p.ifname, 0x88b7, nil)
		return err
	}); err != nil {
		return 0, 0, err
	}
	ours = countFrames(run,
		func(b []byte) error { return tx.WriteTo(b, rx.Addr()) },
		func(b []byte) error { _, _, _, err := rx.ReadFrom(b); return err },
		func() { rx.Close(); tx.Close() })

	var btx, brx *packet.Conn
	var ifi *net.Interface
	if err := p.in(0, func() (err error) {
		ifi, err = net.InterfaceByName(p.ifname)
		if err != nil {
			return err
		}
		btx, err = packet.Listen(ifi, packet.Raw, 0x88b8, nil)
		return err
	}); err != nil {
		return 0, 0, err
	}
	var rxMAC net.HardwareAddr
	if err := p.in(1, func() (err error) {
		ifi, err := net.InterfaceByName(p.ifname)
		if err != nil {
			return err
		}
		rxMAC = ifi.HardwareAddr
		brx, err = packet.Listen(ifi, packet.Raw, 0x88b8, nil)
		return err
	}); err != nil {
		return 0, 0, err
	}
	frame := make([]byte, 14+64)
	copy(frame, rxMAC)
	binary.BigEndian.PutUint16(frame[12:], 0x88b8)
	addr := &packet.Addr{HardwareAddr: rxMAC}
	bare = countFrames(run,
		func([]byte) error { _, err := btx.WriteTo(frame, addr); return err },
		func(b []byte) error { _, _, err := brx.ReadFrom(b); return err },
		func() { brx.Close(); btx.Close() })
	return ours, bare, nil
}

func countFrames(run time.Duration, write, read func([]byte) error, stop func()) float64 {
	var got atomic.Int64
	var counting atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 9100)
		for {
			if err := read(buf); err != nil {
				if counting.Load() {
					fmt.Fprintln(os.Stderr, "bench/proto: reading frames:", err)
				}
				return
			}
			if counting.Load() {
				got.Add(1)
			}
		}
	}()
	payload := make([]byte, 64)
	end := time.Now().Add(run + 200*time.Millisecond)
	go func() {
		time.Sleep(200 * time.Millisecond) // warm up
		counting.Store(true)
		time.Sleep(run)
		counting.Store(false)
	}()
	for time.Now().Before(end) {
		write(payload)
	}
	counting.Store(false) // the window is over; closing must not read as an error
	n := got.Load()
	stop()
	<-done
	return float64(n) / run.Seconds()
}

// benchRawBulk is the link's own limit for bulk data: MTU-sized payloads
// written in batches of 32 (sendmmsg) and read in batches (recvmmsg), with
// no protocol, no crypto, and no acknowledgement, for one second.
func benchRawBulk(p *pair, mtu int) (float64, error) {
	var tx, rx *proto.PacketLink
	if err := p.in(0, func() (err error) {
		tx, err = proto.OpenPacketLink(p.ifname, 0x88b9, nil)
		return err
	}); err != nil {
		return 0, err
	}
	if err := p.in(1, func() (err error) {
		rx, err = proto.OpenPacketLink(p.ifname, 0x88b9, nil)
		return err
	}); err != nil {
		return 0, err
	}
	var got atomic.Int64
	var counting atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		frames := make([]proto.Frame, 32)
		for i := range frames {
			frames[i].Payload = make([]byte, mtu)
		}
		for {
			for i := range frames {
				frames[i].Payload = frames[i].Payload[:cap(frames[i].Payload)]
			}
			n, err := rx.ReadBatch(frames)
			if err != nil {
				return
			}
			if counting.Load() {
				for _, f := range frames[:n] {
					got.Add(int64(len(f.Payload)))
				}
			}
		}
	}()
	batch := make([][]byte, 32)
	for i := range batch {
		batch[i] = make([]byte, mtu)
	}
	const run = time.Second
	go func() {
		time.Sleep(200 * time.Millisecond)
		counting.Store(true)
		time.Sleep(run)
		counting.Store(false)
	}()
	for end := time.Now().Add(run + 200*time.Millisecond); time.Now().Before(end); {
		tx.WriteBatch(batch, rx.Addr())
	}
	n := got.Load()
	rx.Close()
	tx.Close()
	<-done
	return float64(n) / 1e6 / run.Seconds(), nil
}
