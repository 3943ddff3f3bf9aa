package netns_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/localcluster"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// ctlLab is a lab of three mvcontroller replicas (hosts 0-2, raft over TCP
// on the lab's IPv4 addresses, nodes over the control protocol on eth0),
// six sim mvnodes (hosts 3-8) and a spare host (9) from which the test
// reaches the REST API, runs osd and plays a deposed leader.
type ctlLab struct {
	t     *testing.T
	lab   *netns.Lab
	bin   map[string]string
	key   string
	token string
	ctls  []*netns.Host
	cargs [][]string
	cproc []*netns.Process
	nodes []*netns.Host
	nproc []*netns.Process
	spare *netns.Host
	http  *http.Client
}

const (
	ctlReplicas = 3
	ctlNodes    = 6
)

func newCtlLab(t *testing.T) *ctlLab {
	t.Helper()
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: ctlReplicas + ctlNodes + 1, MTU: 1500, IPv4: true})
	bin := netns.BuildBinaries(t, "./cmd/mvcontroller", "./cmd/mvnode", "./cmd/osd")
	dir := t.TempDir()
	key, tok, tokFile := clusterFiles(t, dir)
	cl := &ctlLab{t: t, lab: lab, bin: bin, key: key, token: tok,
		ctls: lab.Hosts[:ctlReplicas], nodes: lab.Hosts[ctlReplicas : ctlReplicas+ctlNodes], spare: lab.Hosts[ctlReplicas+ctlNodes]}
	cl.http = cl.spare.HTTPClient(2 * time.Second)
	var boot []string
	for i, h := range cl.ctls {
		boot = append(boot, "--bootstrap", fmt.Sprintf("c%d=%s:7000/%s:8080", i+1, h.IPv4, h.IPv4))
	}
	for i, h := range cl.ctls {
		args := []string{"serve", "--id", fmt.Sprintf("c%d", i+1), "--raft-addr", h.IPv4.String() + ":7000",
			"--http-addr", h.IPv4.String() + ":8080", "--data-dir", filepath.Join(dir, fmt.Sprintf("c%d", i+1)),
			"--admin-token-file", tokFile, "--iface", h.Iface, "--key", key, "--log-level", "info"}
		cl.cargs = append(cl.cargs, append(args, boot...))
	}
	cl.cproc = make([]*netns.Process, ctlReplicas)
	return cl
}

// startNodes starts the six nodes, each sending heartbeats to c1 at first.
func (cl *ctlLab) startNodes(ctx context.Context) {
	cl.t.Helper()
	for _, h := range cl.nodes {
		p := h.Start(cl.t, cl.bin["mvnode"], "--iface", h.Iface, "--key", cl.key, "--driver", "sim",
			"--sim-hardware", "1x4x2,8G,1", "--rack", "r1", "--blade", h.Name,
			"--controller", cl.ctls[0].MAC.String(), "--log-level", "warn")
		cl.nproc = append(cl.nproc, p)
	}
	for _, p := range cl.nproc {
		if err := p.WaitOutput(ctx, "answering on"); err != nil {
			cl.t.Fatal(err)
		}
	}
}

// startCtl (re)starts replica i and waits until it serves.
func (cl *ctlLab) startCtl(ctx context.Context, i int) {
	cl.t.Helper()
	cl.cproc[i] = cl.ctls[i].Start(cl.t, cl.bin["mvcontroller"], cl.cargs[i]...)
	if err := cl.cproc[i].WaitOutput(ctx, "nodes on "+cl.ctls[i].Iface); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *ctlLab) url(i int) string { return "http://" + cl.ctls[i].IPv4.String() + ":8080" }

func (cl *ctlLab) api(i int) *client.Client {
	c := client.New(cl.url(i), cl.token)
	c.HTTP = cl.http
	return c
}

func (cl *ctlLab) running(i int) bool { return cl.cproc[i] != nil && !cl.cproc[i].Exited() }

type clusterView struct {
	Self, Leader, State string
	Term                uint64
}

func (cl *ctlLab) cluster(ctx context.Context, i int) (clusterView, error) {
	var v clusterView
	err := cl.api(i).Do(ctx, "GET", "/api/cluster", nil, &v)
	return v, err
}

// poll calls fn every 20 ms until it returns true or an error, or until
// limit has passed; it fails the test then, with what.
func poll(t *testing.T, ctx context.Context, limit time.Duration, what string, fn func() (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		ok, err := fn()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v (last error: %v)", what, limit, last)
		case <-time.After(20 * time.Millisecond): // polling real processes
		}
	}
}

// leader waits until one of the replicas in among says it leads, and
// returns it with its term.
func (cl *ctlLab) leader(ctx context.Context, limit time.Duration, among ...int) (int, uint64) {
	cl.t.Helper()
	if len(among) == 0 {
		among = []int{0, 1, 2}
	}
	l, term := -1, uint64(0)
	poll(cl.t, ctx, limit, "a leader", func() (bool, error) {
		for _, i := range among {
			if !cl.running(i) {
				continue
			}
			if v, err := cl.cluster(ctx, i); err == nil && v.Self != "" && v.Leader == v.Self && v.State == "Leader" {
				l, term = i, v.Term
				return true, nil
			}
		}
		return false, nil
	})
	return l, term
}

// write creates a token named name through replica i (forwarded to the
// leader by a follower) and returns the error of the last attempt.
func (cl *ctlLab) write(ctx context.Context, i int, name string) error {
	return cl.api(i).Do(ctx, "POST", "/api/tokens", map[string]string{"name": name}, nil)
}

// hasToken reports whether replica i's own state holds a token named name.
func (cl *ctlLab) hasToken(ctx context.Context, i int, name string) (bool, error) {
	var out struct{ Items []struct{ Name string } }
	if err := cl.api(i).Do(ctx, "GET", "/api/tokens?limit=1000", nil, &out); err != nil {
		return false, err
	}
	return slices.ContainsFunc(out.Items, func(x struct{ Name string }) bool { return x.Name == name }), nil
}

type nodeView struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	Monitoring struct {
		MaxCPU   uint64 `json:"max_cpu"`
		MaxMemKB uint64 `json:"max_memory_kb"`
	} `json:"monitoring"`
	Inventory struct {
		Hypervisor string `json:"hypervisor"`
		MemoryMB   uint64 `json:"memory_mb"`
		NUMA       []struct {
			Cores []int `json:"cores"`
		} `json:"numa"`
		Disks    []struct{ ID string } `json:"disks"`
		Location struct{ Rack, Blade string }
	} `json:"inventory"`
}

func (cl *ctlLab) listNodes(ctx context.Context, i int) (map[string]nodeView, error) {
	var out struct{ Items []nodeView }
	if err := cl.api(i).Do(ctx, "GET", "/api/nodes?limit=1000", nil, &out); err != nil {
		return nil, err
	}
	m := map[string]nodeView{}
	for _, n := range out.Items {
		m[n.ID] = n
	}
	return m, nil
}

// deposed is a control-protocol endpoint on the spare host: it plays a
// controller that still believes in an old term.
func (cl *ctlLab) deposed() *nodeclient.Client {
	cl.t.Helper()
	var link *proto.PacketLink
	if err := cl.spare.Do(func() (err error) {
		link, err = proto.OpenPacketLink(cl.spare.Iface, proto.EtherTypeControl, nil)
		return err
	}); err != nil {
		cl.t.Fatal(err)
	}
	keys, err := proto.LoadKeyring(cl.key)
	if err != nil {
		cl.t.Fatal(err)
	}
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	ep, err := proto.NewEndpoint(link, cfg)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.t.Cleanup(func() { ep.Close() })
	return nodeclient.New(ep)
}

// TestControllerOverEthernet is issue 8's namespace acceptance: three
// replicas and six sim nodes over veth; registration, leader kill -9,
// partitions of a follower and of the leader, and nodes killed or cut off.
func TestControllerOverEthernet(t *testing.T) {
	cl := newCtlLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	cl.startNodes(ctx)
	ids := make([]string, len(cl.nodes))
	for k, h := range cl.nodes {
		ids[k] = h.MAC.NodeID()
	}

	// Registration: every node is in the replicated state, with its
	// hardware, within 2 s of the cluster having a leader.
	started := time.Now()
	for i := range cl.ctls {
		cl.startCtl(ctx, i)
	}
	l, term := cl.leader(ctx, 20*time.Second)
	led := time.Now()
	var nodes map[string]nodeView
	poll(t, ctx, 20*time.Second, "all six nodes registered", func() (bool, error) {
		var err error
		nodes, err = cl.listNodes(ctx, l)
		return len(nodes) == ctlNodes, err
	})
	reg := time.Since(led)
	t.Logf("acceptance: %d nodes registered %v after the cluster had a leader (c%d, term %d), %v after the replicas started (bound 2 s)",
		ctlNodes, reg.Round(time.Millisecond), l+1, term, time.Since(started).Round(time.Millisecond))
	if reg > 2*time.Second {
		t.Errorf("registration took %v after the leader was elected, want at most 2 s", reg)
	}
	for k, id := range ids {
		n := nodes[id]
		if n.Inventory.Hypervisor != "sim" || n.Inventory.MemoryMB != 8192 || len(n.Inventory.NUMA) != 1 ||
			len(n.Inventory.NUMA[0].Cores) != 8 || len(n.Inventory.Disks) != 1 || n.Inventory.Location.Blade != cl.nodes[k].Name {
			t.Errorf("node %s registered as %+v; want sim, 8192 MB, 1 NUMA node of 8 cores, 1 disk, blade %s", id, n.Inventory, cl.nodes[k].Name)
		}
	}
	// Heartbeats reach the leader and carry the monitoring fields.
	poll(t, ctx, 15*time.Second, "every node's monitoring through REST", func() (bool, error) {
		ns, err := cl.listNodes(ctx, l)
		for _, id := range ids {
			if n := ns[id]; n.Monitoring.MaxCPU != 800 || n.Monitoring.MaxMemKB == 0 || n.State != "enabled" {
				return false, err
			}
		}
		return err == nil, err
	})

	// kill -9 of the leader: a new leader accepts a REST write within 3 s.
	cl.cproc[l].Kill()
	killed := time.Now()
	poll(t, ctx, 15*time.Second, "a REST write after the leader's kill -9", func() (bool, error) {
		for i := range cl.ctls {
			if cl.running(i) {
				wctx, c := context.WithTimeout(ctx, time.Second)
				err := cl.write(wctx, i, "after-kill")
				c()
				if err == nil {
					return true, nil
				}
			}
		}
		return false, nil
	})
	failover := time.Since(killed)
	nl, nterm := cl.leader(ctx, 5*time.Second)
	t.Logf("acceptance: after kill -9 of the leader c%d, new leader c%d (term %d) accepted a REST write %v later (bound 3 s)",
		l+1, nl+1, nterm, failover.Round(time.Millisecond))
	if failover > 3*time.Second {
		t.Errorf("failover took %v, want at most 3 s", failover)
	}
	// The killed replica restarts and catches up.
	cl.startCtl(ctx, l)
	poll(t, ctx, 20*time.Second, fmt.Sprintf("restarted c%d holding the write made while it was dead", l+1), func() (bool, error) {
		return cl.hasToken(ctx, l, "after-kill")
	})

	// A partitioned follower does not stop writes, and catches up after
	// healing.
	l, _ = cl.leader(ctx, 10*time.Second)
	f := (l + 1) % ctlReplicas
	others := slices.DeleteFunc(slices.Clone(cl.lab.Hosts), func(h *netns.Host) bool { return h == cl.ctls[f] })
	if err := cl.lab.Partition([]*netns.Host{cl.ctls[f]}, others); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	poll(t, ctx, 10*time.Second, "a write with a follower partitioned", func() (bool, error) {
		err := cl.write(ctx, l, "follower-partitioned")
		return err == nil, err
	})
	t.Logf("with follower c%d partitioned, a write through leader c%d took %v", f+1, l+1, time.Since(cut).Round(time.Millisecond))
	if err := cl.lab.Heal(); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 20*time.Second, fmt.Sprintf("healed follower c%d holding the write", f+1), func() (bool, error) {
		return cl.hasToken(ctx, f, "follower-partitioned")
	})

	// A leader partitioned into the minority stops acting; the majority
	// elects a new leader whose first discovery makes every node refuse the
	// old term. Nodes stay in the lab's no-group: they reach both sides.
	l, term = cl.leader(ctx, 10*time.Second)
	var rest []*netns.Host
	var restIdx []int
	for i, h := range cl.ctls {
		if i != l {
			rest, restIdx = append(rest, h), append(restIdx, i)
		}
	}
	if err := cl.lab.Partition([]*netns.Host{cl.ctls[l]}, rest); err != nil {
		t.Fatal(err)
	}
	parted := time.Now()
	nl, nterm = cl.leader(ctx, 15*time.Second, restIdx...)
	t.Logf("leader c%d (term %d) partitioned into the minority: c%d leads term %d after %v", l+1, term, nl+1, nterm, time.Since(parted).Round(time.Millisecond))
	poll(t, ctx, 10*time.Second, fmt.Sprintf("old leader c%d stepping down", l+1), func() (bool, error) {
		v, err := cl.cluster(ctx, l)
		return err == nil && v.State != "Leader", err
	})
	t.Logf("old leader c%d stopped leading %v after the partition", l+1, time.Since(parted).Round(time.Millisecond))
	if err := cl.write(ctx, l, "through-the-minority"); err == nil {
		t.Error("the minority's old leader accepted a write")
	}
	poll(t, ctx, 10*time.Second, "a write through the majority", func() (bool, error) {
		err := cl.write(ctx, nl, "majority-write")
		return err == nil, err
	})
	old := cl.deposed()
	poll(t, ctx, 10*time.Second, fmt.Sprintf("every node having heard term %d", nterm), func() (bool, error) {
		found, err := old.Discover(ctx, 300*time.Millisecond) // term 0: an operator's look, changes nothing
		n := 0
		for _, fd := range found {
			if fd.Err == nil && fd.Summary.Term >= nterm {
				n++
			}
		}
		return n == ctlNodes, err
	})
	stale := old.WithTerm(term)
	for k, h := range cl.nodes {
		if _, err := stale.Probe(ctx, h.MAC); !errors.Is(err, nodeclient.ErrStaleTerm) {
			t.Errorf("node %s answered a probe of term %d: %v; want ErrStaleTerm", ids[k], term, err)
		}
		_, err := stale.Create(ctx, h.MAC, domain.Spec{ID: 1, VCPUs: 1, Memory: 64 * domain.MiB}, true)
		if !errors.Is(err, nodeclient.ErrStaleTerm) {
			t.Errorf("node %s answered a create of term %d: %v; want ErrStaleTerm", ids[k], term, err)
		}
	}
	if err := cl.lab.Heal(); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 20*time.Second, fmt.Sprintf("healed old leader c%d holding the majority's write", l+1), func() (bool, error) {
		return cl.hasToken(ctx, l, "majority-write")
	})

	// A node killed, then one cut off: in error within 3 s, through REST
	// and osd.
	l, _ = cl.leader(ctx, 10*time.Second)
	inError := func(k int, how string, at time.Time) {
		t.Helper()
		id := ids[k]
		poll(t, ctx, 15*time.Second, fmt.Sprintf("node %s in error after %s", id, how), func() (bool, error) {
			var n nodeView
			err := cl.api(l).Do(ctx, "GET", "/api/nodes/"+id, nil, &n)
			return n.State == "error", err
		})
		took := time.Since(at)
		t.Logf("acceptance: node %s in error %v after %s (bound 3 s)", id, took.Round(time.Millisecond), how)
		if took > 3*time.Second {
			t.Errorf("node %s in error %v after %s, want at most 3 s", id, took, how)
		}
		out, err := cl.spare.Run(ctx, cl.bin["osd"], "--url", cl.url(l), "--token", cl.token, "get_node", "--id", id)
		if err != nil || !strings.Contains(out, "state=error") || !strings.Contains(out, "id="+id) {
			t.Errorf("osd get_node --id %s: %v\n%s\nwant state=error", id, err, out)
		}
	}
	cl.nproc[0].Kill()
	inError(0, "kill -9", time.Now())
	if err := cl.lab.Cut(cl.nodes[1], true); err != nil {
		t.Fatal(err)
	}
	inError(1, "its cable was pulled", time.Now())
	if err := cl.lab.Cut(cl.nodes[1], false); err != nil {
		t.Fatal(err)
	}
	plugged := time.Now()
	poll(t, ctx, 20*time.Second, fmt.Sprintf("node %s enabled again after its cable is back", ids[1]), func() (bool, error) {
		var n nodeView
		err := cl.api(l).Do(ctx, "GET", "/api/nodes/"+ids[1], nil, &n)
		return n.State == "enabled", err
	})
	t.Logf("node %s enabled again %v after its cable was plugged back (error -> retry -> ok after 3 heartbeats)", ids[1], time.Since(plugged).Round(time.Millisecond))

	// Through all of it, no other node was ever put in error: failovers
	// and partitions never failed a live node.
	var events struct {
		Items []struct{ Kind, Node, Message string }
	}
	if err := localcluster.Retry(ctx, func() error { return cl.api(l).Do(ctx, "GET", "/api/events?limit=1000", nil, &events) }); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Kind == "state" && strings.Contains(e.Message, "-> error") && e.Node != ids[0] && e.Node != ids[1] {
			t.Errorf("live node %s was put in error: %s", e.Node, e.Message)
		}
	}
}
