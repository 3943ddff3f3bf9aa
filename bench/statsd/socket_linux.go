package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mdlayher/packet"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/aggregator"
)

// vethPair makes a veth pair in this namespace for the socket figures and
// returns its ends and a function that removes it.
func vethPair() (a, b string, del func(), err error) {
	if os.Geteuid() != 0 {
		return "", "", nil, errors.New("needs root for a veth pair and raw sockets")
	}
	base := "mvbs" + strconv.Itoa(os.Getpid()%100000)
	a, b = base+"a", base+"b"
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := ip("link", "add", a, "mtu", "1500", "type", "veth", "peer", "name", b, "mtu", "1500"); err != nil {
		return "", "", nil, err
	}
	del = func() { ip("link", "del", a) }
	for _, n := range []string{a, b} {
		if err := ip("link", "set", n, "up"); err != nil {
			del()
			return "", "", nil, err
		}
	}
	return a, b, del, nil
}

// socketRates sends the rounds' frames over a veth pair as fast as the
// sender can and measures (1) mvstatsd's path, AF_PACKET with recvmmsg →
// aggregator → RRD files committed, until every update is written, and
// (2) the bare socket: the same frames read with recvmmsg and thrown
// away. Both report frames lost in the socket. When the first is far
// below the second, the receive path is not what limits mvstatsd
// (TPACKET_V3 would not help).
func socketRates(ctx context.Context, dir string, cfg aggregator.Config, rounds [][]frame, perRound int, log io.Writer) (ours, bare float64, lost uint32, err error) {
	a, b, del, err := vethPair()
	if err != nil {
		return 0, 0, 0, err
	}
	defer del()
	// The sender writes whole Ethernet frames, each with its node's source
	// MAC (the seal binds it), as many nodes would.
	ifi, err := net.InterfaceByName(a)
	if err != nil {
		return 0, 0, 0, err
	}
	tx, err := packet.Listen(ifi, packet.Raw, int(proto.EtherTypeStats), nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer tx.Close()
	send := func(fs []frame) error {
		buf := make([]byte, 0, 1514)
		for _, f := range fs {
			buf = append(append(append(append(buf[:0], f.dst[:]...), f.src[:]...), 0x88, 0xb6), f.b...)
			if _, err := tx.WriteTo(buf, &packet.Addr{HardwareAddr: f.dst.HardwareAddr()}); err != nil {
				return err
			}
		}
		return nil
	}

	// (1) mvstatsd's path.
	rx, err := proto.OpenPacketLink(b, proto.EtherTypeStats, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	cfg.Dir, cfg.Link = filepath.Join(dir, "socket"), rx
	cfg.FlushInterval = 200 * time.Millisecond
	agg, err := aggregator.New(cfg)
	if err != nil {
		rx.Close()
		return 0, 0, 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agg.Run(rctx) }()
	stop := func() {
		cancel()
		<-done
		agg.Close()
		rx.Close()
	}
	wait := func(want uint64, limit time.Duration) error {
		for deadline := time.Now().Add(limit); agg.Stats().UpdatesWritten < want; {
			if time.Now().After(deadline) {
				return fmt.Errorf("after %v: %d of %d updates written (%+v)", limit, agg.Stats().UpdatesWritten, want, agg.Stats())
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}
	for range 50 { // the first round creates the files; resend until the link carries
		if err := send(rounds[0]); err != nil {
			stop()
			return 0, 0, 0, err
		}
		if wait(uint64(perRound), 200*time.Millisecond) == nil {
			break
		}
	}
	if err := wait(uint64(perRound), 30*time.Second); err != nil {
		stop()
		return 0, 0, 0, err
	}
	rx.Stats() // zero the kernel's counters
	base := agg.Stats().UpdatesWritten
	total := uint64(perRound * (len(rounds) - 1))
	t0 := time.Now()
	for _, r := range rounds[1:] {
		if err := send(r); err != nil {
			stop()
			return 0, 0, 0, err
		}
	}
	err = wait(base+total, time.Minute)
	el := time.Since(t0)
	_, drops, _ := rx.Stats()
	lost += drops
	stop()
	if err != nil {
		return 0, 0, lost, err
	}
	ours = float64(total) / el.Seconds()
	fmt.Fprintf(log, "socket path: %d updates in %v, %d frames lost in the socket\n", total, el, drops)

	// (2) the bare socket, same frames (replays do not matter here).
	rx2, err := proto.OpenPacketLink(b, proto.EtherTypeStats, nil)
	if err != nil {
		return ours, 0, lost, err
	}
	defer rx2.Close()
	var frames []frame
	for _, r := range rounds[1:] {
		frames = append(frames, r...)
	}
	got := make(chan time.Time, 1)
	go func() {
		fs := make([]proto.Frame, 64)
		bufs := make([][]byte, 64)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		n := 0
		for n < len(frames) {
			for i := range fs {
				fs[i].Payload = bufs[i]
			}
			rx2.SetReadDeadline(time.Now().Add(time.Second))
			k, err := rx2.ReadBatch(fs)
			if err != nil {
				break
			}
			n += k
		}
		if n < len(frames) {
			got <- time.Time{}
			return
		}
		got <- time.Now()
	}()
	rx2.Stats()
	t0 = time.Now()
	if err := send(frames); err != nil {
		return ours, 0, lost, err
	}
	end := <-got
	_, drops, _ = rx2.Stats()
	lost += drops
	if end.IsZero() {
		return ours, 0, lost, fmt.Errorf("bare socket: frames lost (%d dropped by the kernel)", drops)
	}
	el = end.Sub(t0)
	bare = float64(total) / el.Seconds()
	fmt.Fprintf(log, "bare socket: %d frames in %v\n", len(frames), el)
	return ours, bare, lost, nil
}
