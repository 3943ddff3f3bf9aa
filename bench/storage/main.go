// Command storage benchmarks replicated volumes end to end: a lab of one
// mvcontroller and three mvnodes in network namespaces (MTU 9000), thin
// pools on drive files, fio through each node's NBD socket on a 2-replica
// and a 1-replica volume beside fio on a local file (the limit), and the
// resync rate of a replica that missed writes beside the 1-replica
// volume's sequential write rate (the path a resync writes over).
//
//	sudo go run ./bench/storage
//	sudo go run ./bench/storage -seconds 5 -dir /var/tmp
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mvstack/mvstack/bench/fio"
	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/test/netns"
)

const nodes = 3

func main() {
	seconds := flag.Float64("seconds", 3, "duration of each fio run")
	dir := flag.String("dir", "/var/tmp", "directory on the machine's disk for the drive files")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Println("bench/storage: needs root (CAP_NET_ADMIN to make namespaces, CAP_NET_RAW for raw sockets): skipped")
		return
	}
	if _, err := exec.LookPath("fio"); err != nil {
		fmt.Println("bench/storage: fio not installed (apt-get install fio): skipped")
		return
	}
	b := &bench{dur: time.Duration(*seconds * float64(time.Second))}
	err := b.run(*dir)
	b.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/storage:", err)
		os.Exit(1)
	}
}

type bench struct {
	dur    time.Duration
	lab    *netns.Lab
	work   string
	bin    map[string]string
	key    string
	ctl    *netns.Host
	hosts  []*netns.Host
	procs  []*netns.Process
	drives [][]string
	api    *client.Client
}

func (b *bench) close() {
	if b.lab != nil {
		b.lab.Close()
	}
	netns.Cleanup()
	if b.work != "" {
		os.RemoveAll(b.work)
	}
}

func (b *bench) run(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fmt.Println("bench/storage: building mvcontroller and mvnode, making the lab")
	var err error
	if b.bin, err = netns.Build("./cmd/mvcontroller", "./cmd/mvnode"); err != nil {
		return err
	}
	if b.lab, err = netns.Open(netns.Config{Hosts: nodes + 2, MTU: 9000, IPv4: true, Prefix: "bstore"}); err != nil {
		return err
	}
	if b.work, err = os.MkdirTemp(dir, "mvstack-bench-storage-"); err != nil {
		return err
	}
	b.ctl, b.hosts = b.lab.Hosts[0], b.lab.Hosts[1:1+nodes]
	if err := b.start(ctx, b.lab.Hosts[1+nodes]); err != nil {
		return err
	}

	// r2 holds the 2-replica volume on every node's first drive; r1 the
	// 1-replica volume on the second drive of a node other than the user.
	disks, err := b.disks(ctx)
	if err != nil {
		return err
	}
	r2, err := b.datastore(ctx, "r2", 2, diskIDs(disks, "d0", ""))
	if err != nil {
		return err
	}
	v2, err := b.volume(ctx, "v2", r2, 2048)
	if err != nil {
		return err
	}
	user := -1
	for i, h := range b.hosts {
		if !slices.Contains(v2.replicaNodes(), h.MAC.NodeID()) {
			user = i
		}
	}
	other := (user + 1) % nodes
	r1, err := b.datastore(ctx, "r1", 1, diskIDs(disks, "d1", b.hosts[other].MAC.NodeID()))
	if err != nil {
		return err
	}
	v1, err := b.volume(ctx, "v1", r1, 2048)
	if err != nil {
		return err
	}
	s2, err := b.attach(ctx, v2.ID, user)
	if err != nil {
		return err
	}
	s1, err := b.attach(ctx, v1.ID, user)
	if err != nil {
		return err
	}
	local := filepath.Join(b.work, "local.img")
	if err := os.WriteFile(local, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(local, 2<<30); err != nil {
		return err
	}

	t := report.Table{Title: "fio through a node's NBD socket on replicated volumes (AoE, MTU 9000) beside fio on a local file\n" +
		"(a replica acknowledges a write once it is durable; the local file's writes stay in the page cache)"}
	for _, j := range []struct {
		name, rw, bs string
		unit         string
	}{
		{"write 1 MiB QD32", "write", "1m", "MB/s"},
		{"read 1 MiB QD32", "read", "1m", "MB/s"},
		{"randwrite 4 KiB QD32", "randwrite", "4k", "IOPS"},
		{"randread 4 KiB QD32", "randread", "4k", "IOPS"},
	} {
		loc, err := b.fio(ctx, j.rw, j.bs, j.unit, "--ioengine=libaio", "--filename="+local, "--size=1g")
		if err != nil {
			return err
		}
		for _, v := range []struct{ name, sock string }{{"2 replicas", s2}, {"1 replica", s1}} {
			ours, err := b.fio(ctx, j.rw, j.bs, j.unit, "--ioengine=nbd", "--uri=nbd+unix:///?socket="+v.sock)
			if err != nil {
				return err
			}
			t.Add(report.Row{What: "fio " + j.name + ", " + v.name, Unit: j.unit, Ours: ours, AnchorName: "fio libaio on a local file", Anchor: loc})
		}
	}

	// Resync: the second replica's node dies, the user writes 512 MiB, the
	// node comes back and a repair copies the dirty blocks.
	seqW, err := b.fio(ctx, "write", "1m", "MB/s", "--ioengine=nbd", "--uri=nbd+unix:///?socket="+s1)
	if err != nil {
		return err
	}
	victim := slices.IndexFunc(b.hosts, func(h *netns.Host) bool { return h.MAC.NodeID() == v2.Replicas[1].Node })
	fmt.Printf("bench/storage: killing %s, writing 512 MiB, restarting it and repairing\n", b.hosts[victim].MAC.NodeID())
	b.procs[victim].Kill()
	if _, err := b.fioOnce(ctx, "write", "1m", "--ioengine=nbd", "--uri=nbd+unix:///?socket="+s2, "--size=512m"); err != nil {
		return err
	}
	if err := b.startNode(ctx, victim); err != nil {
		return err
	}
	if err := b.api.Do(ctx, "POST", "/api/volumes/"+v2.ID+"/repair", nil, nil); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	var rep *repairView
	if err := poll(ctx, 5*time.Minute, func() (bool, error) {
		v, err := b.get(ctx, v2.ID)
		rep = v.LastRepair
		return err == nil && len(v.InSync) == 2 && rep != nil, err
	}); err != nil {
		return fmt.Errorf("waiting for the resync: %w", err)
	}
	rate := float64(rep.Bytes) / 1e6 / (float64(rep.Duration) / 1e9)
	t.Add(report.Row{What: fmt.Sprintf("resync of %d dirty blocks (%d MiB)", rep.Blocks, rep.Bytes>>20), Unit: "MB/s", Ours: rate,
		AnchorName: "fio write 1 MiB QD32, 1 replica", Anchor: seqW})
	t.Print(os.Stdout)
	fmt.Println("reproduce: sudo go run ./bench/storage")
	return nil
}

// start runs the controller and the nodes and points the REST client at
// the controller through the spare host's namespace.
func (b *bench) start(ctx context.Context, spare *netns.Host) error {
	key, tok, tokFile, err := netns.ClusterFiles(b.work)
	if err != nil {
		return err
	}
	b.key = key
	h := b.ctl
	p, err := h.StartProcess(b.bin["mvcontroller"], "serve", "--id", "c1", "--raft-addr", h.IPv4.String()+":7000",
		"--http-addr", h.IPv4.String()+":8080", "--data-dir", filepath.Join(b.work, "c1"),
		"--admin-token-file", tokFile, "--iface", h.Iface, "--key", b.key, "--log-level", "warn",
		"--bootstrap", fmt.Sprintf("c1=%s:7000/%s:8080", h.IPv4, h.IPv4))
	if err != nil {
		return err
	}
	if err := p.WaitOutput(ctx, "nodes on "+h.Iface); err != nil {
		return err
	}
	b.procs = make([]*netns.Process, nodes)
	for i := range b.hosts {
		var drives []string
		for _, d := range []string{"d0", "d1"} {
			f := filepath.Join(b.work, fmt.Sprintf("n%d-%s.img", i+1, d))
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				return err
			}
			if err := os.Truncate(f, 4<<30); err != nil {
				return err
			}
			drives = append(drives, f)
		}
		b.drives = append(b.drives, drives)
		if err := b.startNode(ctx, i); err != nil {
			return err
		}
	}
	b.api = client.New("http://"+h.IPv4.String()+":8080", tok)
	b.api.HTTP = spare.HTTPClient(60 * time.Second)
	return poll(ctx, time.Minute, func() (bool, error) {
		d, err := b.disks(ctx)
		return len(d) == 2*nodes, err
	})
}

func (b *bench) startNode(ctx context.Context, i int) error {
	h := b.hosts[i]
	args := []string{"--iface", h.Iface, "--key", b.key, "--driver", "sim", "--sim-hardware", "1x2x1,4G,0",
		"--state-dir", filepath.Join(b.work, fmt.Sprintf("n%d-state", i+1)),
		"--volume-dir", filepath.Join(b.work, fmt.Sprintf("n%d-volumes", i+1)),
		"--controller", b.ctl.MAC.String(), "--log-level", "warn", "--stats-interval", "0"}
	for _, d := range b.drives[i] {
		args = append(args, "--drive-file", d)
	}
	p, err := h.StartProcess(b.bin["mvnode"], args...)
	if err != nil {
		return err
	}
	b.procs[i] = p
	return p.WaitOutput(ctx, "answering on")
}

type diskView struct {
	ID, Node, Name string
}

func (b *bench) disks(ctx context.Context) ([]diskView, error) {
	var out struct{ Items []diskView }
	err := b.api.Do(ctx, "GET", "/api/disks", nil, &out)
	return out.Items, err
}

// diskIDs picks the disks whose file name holds drive, on node when given.
func diskIDs(disks []diskView, drive, node string) []string {
	var ids []string
	for _, d := range disks {
		if strings.Contains(d.Name, drive) && (node == "" || d.Node == node) {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func (b *bench) datastore(ctx context.Context, name string, replicas int, disks []string) (string, error) {
	var out struct{ ID string }
	err := b.api.Do(ctx, "POST", "/api/datastores", map[string]any{"name": name, "disks": disks, "replicas": replicas, "trigger_repair": "manual"}, &out)
	return out.ID, err
}

type repairView struct {
	Blocks   int   `json:"blocks"`
	Bytes    int64 `json:"bytes"`
	Duration int64 `json:"duration_ns"`
}

type volumeView struct {
	ID       string   `json:"id"`
	InSync   []string `json:"in_sync"`
	Replicas []struct{ Node string }
	// LastRepair is the controller's record of the last resync.
	LastRepair *repairView `json:"last_repair"`
}

func (v volumeView) replicaNodes() []string {
	var out []string
	for _, r := range v.Replicas {
		out = append(out, r.Node)
	}
	return out
}

func (b *bench) volume(ctx context.Context, name, ds string, sizeMB int) (volumeView, error) {
	var v volumeView
	err := b.api.Do(ctx, "POST", "/api/volumes", map[string]any{"name": name, "datastore": ds, "size_mb": sizeMB}, &v)
	return v, err
}

func (b *bench) get(ctx context.Context, id string) (volumeView, error) {
	var v volumeView
	err := b.api.Do(ctx, "GET", "/api/volumes/"+id, nil, &v)
	return v, err
}

// attach attaches a volume to node i, retrying while the replicas' nodes
// set up their exports, and returns its NBD socket.
func (b *bench) attach(ctx context.Context, id string, i int) (string, error) {
	var st struct{ Socket string }
	err := poll(ctx, time.Minute, func() (bool, error) {
		err := b.api.Do(ctx, "POST", "/api/volumes/"+id+"/attach", map[string]any{"node": b.hosts[i].MAC.NodeID()}, &st)
		return err == nil && st.Socket != "", err
	})
	return st.Socket, err
}

// fio runs one timed job and returns MB/s or IOPS.
func (b *bench) fio(ctx context.Context, rw, bs, unit string, target ...string) (float64, error) {
	r, err := b.fioOnce(ctx, rw, bs, append(target, "--time_based", fmt.Sprintf("--runtime=%dms", b.dur.Milliseconds()))...)
	if unit == "MB/s" {
		return r.MBps(), err
	}
	return r.IOPS, err
}

func (b *bench) fioOnce(ctx context.Context, rw, bs string, target ...string) (fio.Result, error) {
	// Dirty pages of the previous run must not be written back during
	// this one (a buffered local read once stalled for seconds behind it).
	syscall.Sync()
	return fio.Run(ctx, b.work, append([]string{"--rw=" + rw, "--bs=" + bs, "--iodepth=32"}, target...)...)
}

// poll calls fn every 100 ms until it returns true, or until limit.
func poll(ctx context.Context, limit time.Duration, fn func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		ok, err := fn()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond): // polling real processes
		}
	}
}
