package netns_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// After exactly N control RPCs and M AoE writes to a real mvnode, its
// counters read N and M through mvctl-perfc (issue 7's first acceptance
// point), and a reset zeroes them.
func TestPerfcCountsControlRPCsAndAoEWritesOfMvnode(t *testing.T) {
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: 3, MTU: 1500})
	bin := netns.BuildBinaries(t, "./cmd/mvctl", "./cmd/mvctl-perfc", "./cmd/mvnode")
	ctlHost, nodeHost, initHost := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if out, err := ctlHost.Run(ctx, bin["mvctl"], "keygen", "--out", key); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	disk := filepath.Join(dir, "disk1.img")
	if err := os.WriteFile(disk, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	p := nodeHost.Start(t, bin["mvnode"], "--iface", nodeHost.Iface, "--key", key, "--driver", "sim",
		"--stats-interval", "0", "--export", "7.1:"+disk)
	if err := p.WaitOutput(ctx, "answering on"); err != nil {
		t.Fatalf("mvnode did not start: %v\n%s", err, p.Output())
	}
	cli := perfcCLI{t: t, h: ctlHost, bin: bin["mvctl-perfc"], key: key, node: nodeHost.MAC}
	cli.json(ctx, "--perf-reset")

	const n, m = 17, 23
	if out, err := ctlHost.Run(ctx, bin["mvctl"], "ping", "--iface", ctlHost.Iface, "--key", key,
		"--mvmac", nodeHost.MAC.String(), "--count", strconv.Itoa(n), "--interval", "1ms"); err != nil {
		t.Fatalf("mvctl ping: %v\n%s", err, out)
	}

	var link *proto.PacketLink
	if err := initHost.Do(func() (err error) {
		link, err = proto.OpenPacketLink(initHost.Iface, proto.EtherTypeAoE, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	icfg := initiator.DefaultConfig()
	icfg.Links = []proto.Link{link}
	in, err := initiator.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); link.Close() }()
	dev, err := in.Open(ctx, 7, 1)
	if err != nil {
		t.Fatalf("opening the node's export 7.1: %v", err)
	}
	sector := make([]byte, 512)
	for i := range m {
		sector[0] = byte(i)
		if _, err := dev.WriteAtContext(ctx, sector, int64(i)*512); err != nil {
			t.Fatalf("AoE write %d: %v", i, err)
		}
	}

	got := cli.json(ctx, "--perfc-get", "proto.rpc.served.ping")
	if v := got.value(t, "proto.rpc.served.ping"); v != n {
		t.Errorf("proto.rpc.served.ping = %d after %d pings", v, n)
	}
	got = cli.json(ctx, "--perfc-get", "aoe.target.cmd.write")
	if v := got.value(t, "aoe.target.cmd.write"); v != m {
		t.Errorf("aoe.target.cmd.write = %d after %d AoE writes", v, m)
	}
	if v := cli.json(ctx, "--perfc-get", "aoe.target.write.bytes").value(t, "aoe.target.write.bytes"); v != m*512 {
		t.Errorf("aoe.target.write.bytes = %d, want %d", v, m*512)
	}
	cli.json(ctx, "--perf-reset")
	after := cli.json(ctx, "--perfc-get", "aoe.target.cmd.write")
	if v := after.value(t, "aoe.target.cmd.write"); v != 0 {
		t.Errorf("after --perf-reset aoe.target.cmd.write = %d, want 0", v)
	}
	if v := cli.json(ctx, "--perfc-get", "proto.rpc.served.ping").value(t, "proto.rpc.served.ping"); v != 0 {
		t.Errorf("after --perf-reset proto.rpc.served.ping = %d, want 0", v)
	}
}
