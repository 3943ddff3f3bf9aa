package netns_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/test/netns"
)

// The real node daemon sends stat frames that the real aggregator stores:
// mvnode (sim driver, a domain with a NIC and a disk) every second, to
// mvstatsd in its own namespace. Every entity kind of seed 003 §2.6.1 shows
// up for that node: host, pCPU, NUMA node, pool, domain, vCPU, VIF and VBD.
func TestMvnodeStatFramesReachMvstatsd(t *testing.T) {
	nl := newNodeLab(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	node, statsHost := nl.lab.Hosts[1], nl.lab.Hosts[2]
	bin := netns.BuildBinaries(t, "./cmd/mvstatsd")
	sock := filepath.Join(t.TempDir(), "mvstatsd.sock")
	sd := statsHost.Start(t, bin["mvstatsd"], "serve", "--iface", statsHost.Iface, "--key", nl.key,
		"--dir", t.TempDir(), "--listen", "unix:"+sock, "--flush", "1s")
	nl.startNode(t, ctx, node, "--driver", "sim", "--stats-interval", "1s", "--stats-dest", statsHost.MAC.String())
	nl.must(t, ctx, node, "create", "--id", "1", "--vcpus", "2", "--memory", "1G",
		"--disk", "file:/var/lib/dn1.img", "--nic", "02:aa:00:00:00:01", "--start")

	c := newStatsdClient(t, sock)
	want := map[aggregator.Kind]bool{}
	for _, k := range aggregator.Kinds {
		want[k] = true
	}
	var got map[aggregator.Kind]int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if _, err := c.get("/api/series"); err != nil {
			continue // mvstatsd still starting
		}
		got = map[aggregator.Kind]int{}
		for _, s := range c.series() {
			if s.Labels["node"] == node.MAC.NodeID() && s.Last > 0 {
				got[s.Kind]++
			}
		}
		if len(got) == len(want) {
			break
		}
	}
	for k := range want {
		if got[k] == 0 {
			t.Errorf("no %s series from node %s in mvstatsd (got %v)\nmvstatsd said:\n%s", k, node.MAC.NodeID(), got, sd.Output())
		}
	}
}
