// Command aoe benchmarks AoE over a veth pair between two network
// namespaces at MTU 9000: our initiator against our target and against
// vblade, beside the same file read and written locally (the limit), from
// the page cache and with O_DIRECT on a file on the machine's disk; and fio
// through the NBD front end beside fio on the local file. Each figure is
// printed beside its anchor measured in the same run.
//
//	sudo go run ./bench/aoe
//	sudo go run ./bench/aoe -seconds 1 -size 128
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/rawlink"
	"github.com/mvstack/mvstack/bench/fio"
	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/proto"
)

func main() {
	seconds := flag.Float64("seconds", 2, "duration of each measurement")
	sizeMiB := flag.Int("size", 256, "size of the backing file in MiB")
	dir := flag.String("dir", "/var/tmp", "directory on the machine's disk for the backing files")
	cpuprofile := flag.String("cpuprofile", "", "write the initiator's CPU profile here")
	only := flag.String("only", "", "run only workloads whose name contains this, against our target, page cache")
	directFlag := flag.Bool("direct", false, "with -only: serve the file with O_DIRECT (ours --direct, vblade -d)")
	prebuilt := flag.String("mvaoe", "", "use this mvaoe binary as our target instead of building ./cmd/mvaoe")
	rounds := flag.Int("rounds", 0, "with -only: measure our target and vblade alternately this many times each (page cache), instead of profiling")
	netpoll := flag.Bool("netpoll-link", false, "use proto's netpoller AF_PACKET link in our initiator and target instead of aoe/rawlink (for comparison)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Println("bench/aoe: needs root (CAP_NET_ADMIN to make namespaces, CAP_NET_RAW for raw sockets): skipped")
		return
	}
	b := &bench{dur: time.Duration(*seconds * float64(time.Second)), size: int64(*sizeMiB) << 20, dir: *dir, only: *only, netpoll: *netpoll, rounds: *rounds, direct: *directFlag, prebuilt: *prebuilt}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/aoe:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/aoe:", err)
		os.Exit(1)
	}
}

type bench struct {
	dur      time.Duration
	size     int64
	dir      string
	only     string
	netpoll  bool
	rounds   int
	direct   bool
	prebuilt string

	id    string
	ns    [2]string // initiator, target
	work  string
	mvaoe string
	link  interface {
		proto.Link
		Stats() (received, dropped uint32, err error)
	}
	in     *initiator.Initiator
	closer []func()
}

// workload is one access pattern.
type workload struct {
	name  string
	write bool
	seq   bool
	bs    int
	qd    int
	unit  string // "MB/s" or "IOPS"
}

var workloads = []workload{
	{"seq read 1 MiB", false, true, 1 << 20, 1, "MB/s"},
	{"seq write 1 MiB", true, true, 1 << 20, 1, "MB/s"},
	{"rand read 4 KiB QD1", false, false, 4096, 1, "IOPS"},
	{"rand read 4 KiB QD32", false, false, 4096, 32, "IOPS"},
	{"rand write 4 KiB QD1", true, false, 4096, 1, "IOPS"},
	{"rand write 4 KiB QD32", true, false, 4096, 32, "IOPS"},
}

func (b *bench) run() error {
	defer func() {
		for i := len(b.closer) - 1; i >= 0; i-- {
			b.closer[i]()
		}
	}()
	if err := b.setup(); err != nil {
		return err
	}
	cached := filepath.Join(b.work, "cached.img")
	direct := filepath.Join(b.work, "direct.img")
	for _, f := range []string{cached, direct} {
		if err := fill(f, b.size); err != nil {
			return err
		}
	}
	if b.only != "" && b.rounds > 0 {
		if b.direct {
			return b.compare(direct)
		}
		return b.compare(cached)
	}
	if b.only != "" {
		if b.direct {
			return b.profile(direct)
		}
		return b.profile(cached)
	}
	for _, mode := range []struct {
		name   string
		file   string
		direct bool
		vblade []string
		ours   []string
	}{
		{"page cache", cached, false, nil, []string{"--write-back"}},
		{"O_DIRECT", direct, true, []string{"-d"}, []string{"--direct", "--write-back"}},
	} {
		local, err := b.local(mode.file, mode.direct)
		if err != nil {
			return err
		}
		vb, err := b.remote(1, "vblade", append(append(mode.vblade, "1", "1", "eth0"), mode.file))
		if err != nil {
			return err
		}
		ours, err := b.remote(2, b.mvaoe, append(append([]string{"serve"}, mode.ours...), "2", "1", "eth0", mode.file))
		if err != nil {
			return err
		}
		var wt map[string]float64
		if !mode.direct {
			// Durable writes (the default) beside write-back.
			wt, err = b.remote(3, b.mvaoe, []string{"serve", "3", "1", "eth0", mode.file})
			if err != nil {
				return err
			}
		}
		t := report.Table{Title: fmt.Sprintf("AoE over veth, MTU 9000, %s (%d MiB file)", mode.name, b.size>>20)}
		for _, w := range workloads {
			note := ""
			switch {
			case mode.direct && w.name == "rand read 4 KiB QD32":
				// The disk caps every target: the local file is its limit.
				note = fmt.Sprintf("mark: ≥ 3 × vblade -d (%.0f); the local file does ×%.2f of vblade -d", 3*vb[w.name], local[w.name]/vb[w.name])
			case !mode.direct && !w.seq:
				note = fmt.Sprintf("mark: ≥ vblade (%.0f)", vb[w.name])
			case w.seq:
				note = fmt.Sprintf("mark: ≥ ½ local (%.0f)", local[w.name]/2)
			}
			vbName := "vblade"
			if mode.direct {
				vbName = "vblade -d"
			}
			t.Add(report.Row{What: "ours→ours " + w.name, Unit: w.unit, Ours: ours[w.name], AnchorName: vbName, Anchor: vb[w.name], Note: note})
			t.Add(report.Row{What: "ours→ours " + w.name, Unit: w.unit, Ours: ours[w.name], AnchorName: "local file", Anchor: local[w.name]})
			t.Add(report.Row{What: "ours→vblade " + w.name, Unit: w.unit, Ours: vb[w.name], AnchorName: "local file", Anchor: local[w.name]})
			if wt != nil && w.write {
				t.Add(report.Row{What: "ours→ours durable " + w.name, Unit: w.unit, Ours: wt[w.name], AnchorName: "ours write-back", Anchor: ours[w.name], Note: "fdatasync before every ack"})
			}
		}
		t.Print(os.Stdout)
	}
	if err := b.marks(cached, direct); err != nil {
		return err
	}
	return b.fio(cached)
}

// markRounds is how many times the marks table measures each side.
const markRounds = 3

// marks measures the marks again, each side alternately
// markRounds times, and prints the median figures and ratio: single
// figures on this shared machine swing by ±20%.
func (b *bench) marks(cached, direct string) error {
	byName := map[string]workload{}
	for _, w := range workloads {
		byName[w.name] = w
	}
	ours := func(path string, dir bool) measurer {
		args, _ := targetArgs(path, dir)
		return b.remoteOne(2, b.mvaoe, args)
	}
	vblade := func(path string, dir bool) measurer {
		_, args := targetArgs(path, dir)
		return b.remoteOne(1, "vblade", args)
	}
	marks := []struct {
		what, workload string
		ours, anchor   measurer
		anchorName     string
		scale          float64 // the mark: ours ≥ scale × anchor
	}{
		{"page cache, rand read 4 KiB QD1", "rand read 4 KiB QD1", ours(cached, false), vblade(cached, false), "vblade", 1},
		{"page cache, rand read 4 KiB QD32", "rand read 4 KiB QD32", ours(cached, false), vblade(cached, false), "vblade", 1},
		{"O_DIRECT, rand read 4 KiB QD32", "rand read 4 KiB QD32", ours(direct, true), vblade(direct, true), "vblade -d", 3},
		{"O_DIRECT, the local file (the disk's limit)", "rand read 4 KiB QD32", b.localOne(direct, true), vblade(direct, true), "vblade -d", 3},
		{"O_DIRECT, seq read 1 MiB", "seq read 1 MiB", ours(direct, true), b.localOne(direct, true), "local file", 0.5},
		{"page cache, seq read 1 MiB", "seq read 1 MiB", ours(cached, false), b.localOne(cached, false), "local file", 0.5},
	}
	t := report.Table{Title: fmt.Sprintf("AoE marks over veth, MTU 9000: medians of %d rounds alternating ours and the anchor", markRounds)}
	for _, m := range marks {
		w := byName[m.workload]
		var oursV, anchorV, ratios []float64
		for range markRounds {
			o, err := m.ours(w)
			if err != nil {
				return err
			}
			a, err := m.anchor(w)
			if err != nil {
				return err
			}
			oursV, anchorV, ratios = append(oursV, o), append(anchorV, a), append(ratios, o/a)
		}
		rounds := ""
		for _, r := range ratios {
			rounds += fmt.Sprintf(" ×%.2f", r)
		}
		mr := median(ratios)
		verdict := fmt.Sprintf("met (median round ×%.2f)", mr)
		if mr < m.scale {
			verdict = fmt.Sprintf("not met (median round ×%.2f)", mr)
		}
		t.Add(report.Row{What: m.what, Unit: w.unit, Ours: median(oursV), AnchorName: m.anchorName, Anchor: median(anchorV),
			Note: fmt.Sprintf("mark ≥ ×%g: %s; rounds%s", m.scale, verdict, rounds)})
	}
	t.Print(os.Stdout)
	return nil
}

// measurer measures one workload once.
type measurer func(workload) (float64, error)

// remoteOne measures a workload on a target started for it alone.
func (b *bench) remoteOne(shelf uint16, bin string, args []string) measurer {
	return func(w workload) (float64, error) {
		v, _, err := b.serveOne(shelf, bin, args, w)
		return v, err
	}
}

// serveOne starts a target, measures one workload on it and stops it; it
// also returns the path's smoothed round-trip time.
func (b *bench) serveOne(shelf uint16, bin string, args []string, w workload) (float64, time.Duration, error) {
	d, stop, err := b.serve(shelf, bin, args)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	v := b.one(d, d.Size(), w, func(n int) []byte { return make([]byte, n) })
	return v, d.Paths()[0].SRTT, nil
}

// targetArgs are the arguments of our target and of vblade serving path at
// shelf 2 and 1, with O_DIRECT when direct.
func targetArgs(path string, direct bool) (ours, vblade []string) {
	ours, vblade = []string{"serve", "--write-back", "2", "1", "eth0", path}, []string{"1", "1", "eth0", path}
	if direct {
		ours, vblade = append([]string{"serve", "--direct"}, ours[1:]...), append([]string{"-d"}, vblade...)
	}
	return ours, vblade
}

// median returns the middle of v (sorting a copy).
func median(v []float64) float64 {
	v = slices.Sorted(slices.Values(v))
	return v[len(v)/2]
}

// localOne measures a workload on the file itself, in this process.
func (b *bench) localOne(path string, direct bool) measurer {
	return func(w workload) (float64, error) {
		flags := os.O_RDWR
		if direct {
			flags |= unix.O_DIRECT
		}
		f, err := os.OpenFile(path, flags, 0)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		return b.one(f, b.size, w, aligned), nil
	}
}

// setup makes two namespaces joined by a veth pair at MTU 9000, builds
// mvaoe and opens the initiator's link in the first namespace.
func (b *bench) setup() error {
	b.id = fmt.Sprintf("mvaoeb%d", os.Getpid())
	b.ns = [2]string{b.id + "i", b.id + "t"}
	var err error
	if b.work, err = os.MkdirTemp(b.dir, "mvaoe-bench-"); err != nil {
		return err
	}
	b.closer = append(b.closer, func() { os.RemoveAll(b.work) })
	b.mvaoe = filepath.Join(b.work, "mvaoe")
	if b.prebuilt != "" {
		// Another build's target (an older commit, say) against this
		// initiator.
		b.mvaoe = b.prebuilt
	} else if out, err := exec.Command("go", "build", "-o", b.mvaoe, "./cmd/mvaoe").CombinedOutput(); err != nil {
		return fmt.Errorf("building mvaoe: %v\n%s", err, out)
	}
	for _, ns := range b.ns {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		b.closer = append(b.closer, func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	if err := ip("link", "add", b.id+"a", "mtu", "9000", "netns", b.ns[0], "type", "veth", "peer", "name", b.id+"b", "mtu", "9000", "netns", b.ns[1]); err != nil {
		return err
	}
	for i, v := range []string{b.id + "a", b.id + "b"} {
		if err := ip("-n", b.ns[i], "link", "set", v, "name", "eth0"); err != nil {
			return err
		}
		if err := ip("-n", b.ns[i], "link", "set", "eth0", "up"); err != nil {
			return err
		}
	}
	err = inNS(b.ns[0], func() (err error) {
		if b.netpoll {
			b.link, err = proto.OpenPacketLink("eth0", proto.EtherTypeAoE, nil)
		} else {
			b.link, err = rawlink.Open("eth0", proto.EtherTypeAoE)
		}
		return err
	})
	if err != nil {
		return err
	}
	b.closer = append(b.closer, func() { b.link.Close() })
	cfg := initiator.DefaultConfig()
	cfg.Links = []proto.Link{b.link}
	if b.in, err = initiator.New(cfg); err != nil {
		return err
	}
	b.closer = append(b.closer, func() { b.in.Close() })
	return nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// inNS runs fn on a locked thread inside the named namespace.
func inNS(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		h, err := netns.GetFromName(name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		res := fn()
		if netns.Set(home) == nil {
			runtime.UnlockOSThread()
		}
		errc <- res
	}()
	return <-errc
}

// fill writes size bytes of random data to path and syncs it, so reads hit
// allocated blocks.
func fill(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	return f.Sync()
}

// target is what a workload runs on.
type target interface {
	io.ReaderAt
	io.WriterAt
}

// measure runs every workload on t and returns figures by workload name.
func (b *bench) measure(t target, size int64, alignedBuf func(int) []byte) map[string]float64 {
	out := map[string]float64{}
	for _, w := range workloads {
		out[w.name] = b.one(t, size, w, alignedBuf)
	}
	return out
}

func (b *bench) one(t target, size int64, w workload, alignedBuf func(int) []byte) float64 {
	var ops, bytes atomic.Int64
	deadline := time.Now().Add(b.dur)
	start := time.Now()
	var seqNext atomic.Int64
	var wg sync.WaitGroup
	for q := range w.qd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := alignedBuf(w.bs)
			r := rand.New(rand.NewPCG(uint64(q), 9))
			blocks := size / int64(w.bs)
			for time.Now().Before(deadline) {
				var off int64
				if w.seq {
					off = (seqNext.Add(1) - 1) % blocks * int64(w.bs)
				} else {
					off = r.Int64N(blocks) * int64(w.bs)
				}
				var err error
				if w.write {
					_, err = t.WriteAt(buf, off)
				} else {
					_, err = t.ReadAt(buf, off)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					fmt.Fprintln(os.Stderr, "bench/aoe:", w.name, err)
					return
				}
				ops.Add(1)
				bytes.Add(int64(w.bs))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if w.unit == "MB/s" {
		return float64(bytes.Load()) / el / 1e6
	}
	return float64(ops.Load()) / el
}

func aligned(n int) []byte {
	raw := make([]byte, n+4096)
	off := (4096 - int(uintptrOf(raw)%4096)) % 4096
	return raw[off : off+n]
}

// local measures the file read and written in this process.
func (b *bench) local(path string, direct bool) (map[string]float64, error) {
	out := map[string]float64{}
	m := b.localOne(path, direct)
	for _, w := range workloads {
		v, err := m(w)
		if err != nil {
			return nil, err
		}
		out[w.name] = v
	}
	return out, nil
}

// remote starts a target in the target namespace, opens shelf.1 with our
// initiator and measures it.
func (b *bench) remote(shelf uint16, bin string, args []string) (map[string]float64, error) {
	d, stop, err := b.serve(shelf, bin, args)
	if err != nil {
		return nil, err
	}
	defer stop()
	res := b.measure(d, d.Size(), func(n int) []byte { return make([]byte, n) })
	if b.only != "" && b.rounds == 0 {
		for _, p := range d.Paths() {
			if r, dr, err := b.link.Stats(); err == nil {
				fmt.Printf("initiator socket: received %d dropped %d\n", r, dr)
			}
			fmt.Printf("path %s: window %d srtt %v rto %v sent %d retransmits %d replies %d\n", p.MAC, p.Window, p.SRTT, p.RTO, p.Sent, p.Retransmits, p.Replies)
		}
	}
	return res, nil
}

// serve starts a target in the target namespace and opens shelf.1 with
// our initiator; stop closes the device and stops the target.
func (b *bench) serve(shelf uint16, bin string, args []string) (*initiator.Device, func(), error) {
	if bin == b.mvaoe && b.netpoll {
		args = append([]string{"--netpoll-link"}, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", b.ns[1], bin}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if b.only != "" && b.rounds == 0 {
		cmd.Stderr = os.Stderr
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, err
	}
	var d *initiator.Device
	var err error
	for range 20 {
		if d, err = b.in.Open(context.Background(), shelf, 1); err == nil {
			break
		}
	}
	if err != nil {
		cancel()
		cmd.Wait()
		return nil, nil, fmt.Errorf("%s: %w", bin, err)
	}
	return d, func() { d.Close(); cancel(); cmd.Wait() }, nil
}

// fio runs fio's nbd engine through mvaoe nbd against our target, beside
// fio on the local file.
func (b *bench) fio(path string) error {
	if _, err := exec.LookPath("fio"); err != nil {
		fmt.Println("bench/aoe: fio not installed (apt-get install fio): NBD figures skipped")
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	global := []string{}
	if b.netpoll {
		global = append(global, "--netpoll-link")
	}
	srv := exec.CommandContext(ctx, "ip", append(append([]string{"netns", "exec", b.ns[1], b.mvaoe}, global...), "serve", "--write-back", "4", "1", "eth0", path)...)
	if err := srv.Start(); err != nil {
		cancel()
		return err
	}
	sock := filepath.Join(b.work, "nbd.sock")
	front := exec.CommandContext(ctx, "ip", append(append([]string{"netns", "exec", b.ns[0], b.mvaoe}, global...), "nbd", "--iface", "eth0", "4.1", sock)...)
	if err := front.Start(); err != nil {
		cancel()
		srv.Wait()
		return err
	}
	defer func() { cancel(); front.Wait(); srv.Wait() }()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling a real process, bounded
	}
	t := report.Table{Title: "fio through the NBD front end (AoE, MTU 9000, page cache) beside fio on the local file"}
	for _, j := range []struct {
		name, rw, bs string
		qd           int
		unit         string
	}{
		{"fio randread 4 KiB QD32", "randread", "4k", 32, "IOPS"},
		{"fio randwrite 4 KiB QD32", "randwrite", "4k", 32, "IOPS"},
		{"fio read 1 MiB QD4", "read", "1m", 4, "MB/s"},
	} {
		nbd, err := runFio(b.dur, "--ioengine=nbd", "--uri=nbd+unix:///aoe?socket="+sock, j.rw, j.bs, j.qd, j.unit)
		if err != nil {
			return err
		}
		loc, err := runFio(b.dur, "--ioengine=libaio", "--filename="+path, j.rw, j.bs, j.qd, j.unit)
		if err != nil {
			return err
		}
		t.Add(report.Row{What: j.name, Unit: j.unit, Ours: nbd, AnchorName: "fio libaio on the local file", Anchor: loc})
	}
	t.Print(os.Stdout)
	return nil
}

func runFio(dur time.Duration, engine, target, rw, bs string, qd int, unit string) (float64, error) {
	args := []string{engine, target, "--rw=" + rw, "--bs=" + bs, fmt.Sprintf("--iodepth=%d", qd),
		"--time_based", fmt.Sprintf("--runtime=%dms", dur.Milliseconds())}
	if !strings.Contains(engine, "nbd") {
		args = append(args, "--size=256m")
	}
	r, err := fio.Run(context.Background(), "", args...)
	if unit == "MB/s" {
		return r.MBps(), err
	}
	return r.IOPS, err
}

// profile runs the selected workloads against our target only, with the
// target writing a CPU profile next to the backing file.
func (b *bench) profile(path string) error {
	var sel []workload
	for _, w := range workloads {
		if strings.Contains(w.name, b.only) {
			sel = append(sel, w)
		}
	}
	workloads = sel
	prof := filepath.Join(filepath.Dir(b.dir+"/"), "mvaoe-target.pprof")
	args := []string{"--verbose", "serve", "--write-back", "--cpuprofile", prof, "2", "1", "eth0", path}
	if b.direct {
		args = append([]string{"--verbose", "serve", "--direct"}, args[2:]...)
	}
	res, err := b.remote(2, b.mvaoe, args)
	if err != nil {
		return err
	}
	for _, w := range sel {
		fmt.Printf("%s: %.0f %s\n", w.name, res[w.name], w.unit)
	}
	fmt.Println("target profile:", prof)
	return nil
}

// compare measures the selected workloads against our target and vblade
// (each serving the page-cached file alone: a target on the same
// interface would also receive the other's frames) alternately, workload
// by workload, b.rounds times each, so that noise on a shared machine
// shows as spread rather than as a verdict; it prints every pair and the
// median ratio.
func (b *bench) compare(path string) error {
	var sel []workload
	for _, w := range workloads {
		if strings.Contains(w.name, b.only) {
			sel = append(sel, w)
		}
	}
	oursArgs, vbArgs := targetArgs(path, b.direct)
	for _, w := range sel {
		var ratios []float64
		for r := range b.rounds {
			o, ort, err := b.serveOne(2, b.mvaoe, oursArgs, w)
			if err != nil {
				return err
			}
			v, vrt, err := b.serveOne(1, "vblade", vbArgs, w)
			if err != nil {
				return err
			}
			ratios = append(ratios, o/v)
			fmt.Printf("round %d %-24s ours %8.0f  vblade %8.0f %s  ×%.2f  (smoothed RTT %v, %v)\n", r+1, w.name, o, v, w.unit, o/v, ort, vrt)
		}
		fmt.Printf("median  %-24s ×%.2f\n", w.name, median(ratios))
	}
	return nil
}
