package netns_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// perfcNode starts the node whose counters the tests read: the real node
// daemon, on h with the cluster key in keyFile, returning once it answers.
var perfcNode = mvnodeNode

// mvnodeNode runs the real node daemon with the sim driver.
func mvnodeNode(t *testing.T, h *netns.Host, keyFile string) {
	t.Helper()
	bin := netns.BuildBinaries(t, "./cmd/mvnode")
	p := h.Start(t, bin["mvnode"], "--iface", h.Iface, "--key", keyFile, "--driver", "sim")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "answering on"); err != nil {
		t.Fatalf("mvnode did not start: %v\n%s", err, p.Output())
	}
}

// perfcAnswer is mvctl-perfc's --json output.
type perfcAnswer struct {
	Node    string         `json:"node"`
	Op      string         `json:"op"`
	Metrics []perfc.Metric `json:"metrics"`
}

func (a perfcAnswer) value(t *testing.T, name string) int64 {
	t.Helper()
	for _, m := range a.Metrics {
		if m.Domain == "" && m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("mvctl-perfc %s answer lacks %s", a.Op, name)
	return 0
}

// perfcCLI runs mvctl-perfc on one host against one node.
type perfcCLI struct {
	t    *testing.T
	h    *netns.Host
	bin  string
	key  string
	node proto.MAC
}

func (c perfcCLI) run(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"--iface", c.h.Iface, "--key", c.key, "--mvmac", c.node.String()}, args...)
	return c.h.Run(ctx, c.bin, args...)
}

func (c perfcCLI) json(ctx context.Context, args ...string) perfcAnswer {
	c.t.Helper()
	out, err := c.run(ctx, append(args, "--json")...)
	if err != nil {
		c.t.Fatal(err)
	}
	var a perfcAnswer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		c.t.Fatalf("mvctl-perfc %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return a
}

func TestMvctlPerfcCountsResetsAndRefusesOverVeth(t *testing.T) {
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: 3, MTU: 1500})
	bin := netns.BuildBinaries(t, "./cmd/mvctl", "./cmd/mvctl-perfc")
	ctlHost, nodeHost, rogueHost := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	key, rogueKey := filepath.Join(dir, "cluster.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{key, rogueKey} {
		if _, err := ctlHost.Run(ctx, bin["mvctl"], "keygen", "--out", k); err != nil {
			t.Fatal(err)
		}
	}
	perfcNode(t, nodeHost, key)
	cli := perfcCLI{t: t, h: ctlHost, bin: bin["mvctl-perfc"], key: key, node: nodeHost.MAC}

	// Start from zero. The reset's own request is counted when it arrives,
	// so it takes itself away too.
	cli.json(ctx, "--perf-reset")

	const n = 25
	if out, err := ctlHost.Run(ctx, bin["mvctl"], "ping", "--iface", ctlHost.Iface, "--key", key,
		"--mvmac", nodeHost.MAC.String(), "--count", strconv.Itoa(n), "--interval", "1ms"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, fmt.Sprintf("%d sent, %d received", n, n)) {
		t.Fatalf("mvctl ping:\n%s", out)
	}

	// Exactly n control RPCs reached the node, plus this get itself: the
	// endpoint counts a message when it arrives, before the handler reads
	// the counters.
	got := cli.json(ctx, "--perfc-get", "proto.messages_in")
	if v := got.value(t, "proto.messages_in"); v != n+1 {
		t.Errorf("--perfc-get proto.messages_in = %d after %d pings, want %d (the pings and the get)", v, n, n+1)
	}
	if len(got.Metrics) != 1 {
		t.Errorf("--perfc-get proto.messages_in answered %d metrics, want 1", len(got.Metrics))
	}

	// The dump lists every counter with its description and unit.
	dump := cli.json(ctx, "--perfc-dump")
	names := map[string]bool{}
	for _, m := range dump.Metrics {
		names[m.Name] = true
		if m.Desc == "" || m.Unit == "" {
			t.Errorf("--perfc-dump: %s lacks a description or unit: %+v", m.Path(), m)
		}
	}
	for _, name := range []string{"proto.frames_in.control", "proto.frames_out.control", "proto.drops.auth",
		"proto.retransmits", "proto.messages_in", "perfc.requests.dump", "perfc.requests.get", "perfc.requests.reset"} {
		if !names[name] {
			t.Errorf("--perfc-dump lacks %s", name)
		}
	}
	if text, err := cli.run(ctx, "--perfc-dump"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(text, "proto.drops.auth") || !strings.Contains(text, "Control frames dropped: authentication failed") {
		t.Errorf("--perfc-dump text lacks proto.drops.auth with its description:\n%s", text)
	}

	// A reset answers what the counters held and zeroes them: the pings,
	// the get, the two dumps and the reset itself.
	old := cli.json(ctx, "--perf-reset")
	if v := old.value(t, "proto.messages_in"); v != n+4 {
		t.Errorf("--perf-reset returned proto.messages_in = %d, want %d", v, n+4)
	}
	after := cli.json(ctx, "--perfc-get", "perfc")
	for name, want := range map[string]int64{"perfc.requests.get": 1, "perfc.requests.dump": 0, "perfc.requests.reset": 0} {
		if v := after.value(t, name); v != want {
			t.Errorf("after --perf-reset %s = %d, want %d", name, v, want)
		}
	}

	// --interval: every poll is one more message, so each interval sees 1.
	out, err := cli.run(ctx, "--perfc-get", "proto.messages_in", "--interval", "100ms", "--count", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); lines++ {
		var iv struct {
			Metrics []struct {
				Name   string   `json:"name"`
				Count  int64    `json:"count"`
				PerSec *float64 `json:"per_sec"`
			} `json:"metrics"`
		}
		if err := json.Unmarshal(sc.Bytes(), &iv); err != nil {
			t.Fatalf("--interval --json line %q: %v", sc.Text(), err)
		}
		if len(iv.Metrics) != 1 || iv.Metrics[0].Count != 1 || iv.Metrics[0].PerSec == nil {
			t.Errorf("--interval line %q: want proto.messages_in increased by 1 with a rate", sc.Text())
		}
	}
	if lines != 2 {
		t.Errorf("--interval 100ms --count 2 printed %d lines, want 2:\n%s", lines, out)
	}

	// A host with another key can neither reset nor dump: it is told it was
	// refused, and the node counts the frames it dropped.
	rogue := perfcCLI{t: t, h: rogueHost, bin: bin["mvctl-perfc"], key: rogueKey, node: nodeHost.MAC}
	for _, op := range []string{"--perf-reset", "--perfc-dump"} {
		out, err := rogue.run(ctx, op, "--tolerance", "500ms")
		if err == nil || !strings.Contains(out, "refused our frames") {
			t.Errorf("%s with another key: %v\n%s\nwant a failure saying the node refused our frames", op, err, out)
		}
	}
	final := cli.json(ctx, "--perfc-dump")
	if v := final.value(t, "proto.drops.auth"); v == 0 {
		t.Error("proto.drops.auth = 0 after a host with another key sent requests")
	}
	if v := final.value(t, "proto.auth.refused_sent"); v == 0 {
		t.Error("proto.auth.refused_sent = 0: the other host was never told")
	}
	for name, want := range map[string]int64{
		"perfc.requests.reset": 0, // the refused resets never ran
		"perfc.requests.dump":  1, // this dump
		// Since the reset: one get, the interval's three polls, this dump.
		"proto.messages_in": 5,
	} {
		if v := final.value(t, name); v != want {
			t.Errorf("after the refused requests %s = %d, want %d", name, v, want)
		}
	}

	// Names and domains the node does not have.
	if out, err := cli.run(ctx, "--perfc-get", "proto.no_such"); err == nil || !strings.Contains(out, `no metric "proto.no_such"`) {
		t.Errorf("--perfc-get of an unknown name: %v\n%s", err, out)
	}
	if out, err := cli.run(ctx, "--perfc-dump", "-d", "9"); err == nil || !strings.Contains(out, `domain "dn9"`) {
		t.Errorf("--perfc-dump -d 9 without such a domain: %v\n%s", err, out)
	}

	// A node that is not there.
	absent := cli
	absent.node = proto.MAC{0x02, 0xde, 0xad, 0, 0, 0x01}
	if out, err := absent.run(ctx, "--perfc-dump", "--tolerance", "300ms"); err == nil || !strings.Contains(out, "no node answered at MAC 02:de:ad:00:00:01 on "+ctlHost.Iface) {
		t.Errorf("dump of an absent node: %v\n%s", err, out)
	}
}
