// Command statsd measures the end-to-end rate of the stats aggregator:
// sealed stat frames from many simulated nodes → authentication → record
// decoding → series updates → RRD files committed to disk, in series
// updates per second, beside rrdcached (Debian package rrdcached) fed the
// same updates with BATCH, accepted and flushed to disk, in the same run.
// The RRD engine alone (and rrdtool update) is measured by bench/rrd.
//
//	go run ./bench/statsd [-nodes 100] [-rounds 40]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/rrd/rrdcached"
	"github.com/mvstack/mvstack/statsd/statframe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/statsd:", err)
		os.Exit(1)
	}
}

// Shape of one simulated node: 1 host, 4 pCPUs, 1 NUMA node, 1 pool and 4
// domains with 2 vCPUs, 1 VIF and 2 VBDs each: 31 series.
const (
	pcpus, domains, vcpus, vifs, vbds = 4, 4, 2, 1, 2
	seriesPerNode                     = 1 + pcpus + 1 + 1 + domains*(1+vcpus+vifs+vbds)
	step                              = 10
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench/statsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 100, "simulated nodes")
	rounds := fs.Int("rounds", 40, "samples per node measured (one every 10 s of RRD time; the store checkpoints every 30 commits)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the in-process figure to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-statsd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	k, _ := proto.NewKey(1)
	keys, _ := proto.NewKeyring(k)
	aggMAC := proto.MAC{2, 0, 0, 0, 0, 0xaa}
	cfg := aggregator.DefaultConfig(filepath.Join(dir, "ours"))
	cfg.Keys = keys
	cfg.RRA = benchRRA()
	cfg.Step, cfg.Heartbeat = step, 3*step

	// The frames every node sends, sealed ahead: the sender's cost is not
	// the aggregator's.
	start := time.Now().Add(-time.Duration(*rounds+2) * step * time.Second).Truncate(step * time.Second)
	// Round 0 creates the files, rounds 1..R are measured with durable
	// commits, R+1..2R without syncing (as rrdcached writes).
	frames := make([][]frame, 2**rounds+1)
	sealers := make([]*proto.Sealer, *nodes)
	for n := range sealers {
		sealers[n], _ = proto.NewSealer(keys, emitter.Purpose, nodeMAC(n))
	}
	var total int // updates in measured rounds
	for r := range frames {
		t := start.Add(time.Duration(r) * step * time.Second)
		for n := range *nodes {
			recs := nodeRecords(n, r, t)
			packed, err := statframe.Pack(t.UnixNano(), recs, 1500-proto.DatagramOverhead)
			if err != nil {
				return err
			}
			for _, p := range packed {
				frames[r] = append(frames[r], frame{sealers[n].Seal(nil, aggMAC, p), nodeMAC(n), aggMAC})
			}
		}
		if r > 0 && r <= *rounds {
			total += *nodes * seriesPerNode
		}
	}
	later := frames[*rounds+1:]
	frames = frames[:*rounds+1]

	// Ours: every frame through Ingest, one Flush (create, update, commit
	// to disk) per round, as mvstatsd does every flush interval.
	agg, err := aggregator.New(cfg)
	if err != nil {
		return err
	}
	defer agg.Close()
	var updates [][]rrd.Update // the same updates, for rrdcached
	for _, fr := range frames {
		var round []rrd.Update
		for _, f := range fr {
			var sf statframe.Frame
			o := proto.NewOpener(keys, emitter.Purpose)
			body, err := o.Open(append([]byte(nil), f.b...), f.src, f.dst)
			if err != nil {
				return err
			}
			if err := sf.UnmarshalBinary(body); err != nil {
				return err
			}
			round = append(round, aggregator.Updates(f.src.NodeID(), &sf)...)
		}
		updates = append(updates, round)
	}
	// Ingest opens frames in place: it gets copies, the socket figures
	// below the originals.
	copies := make([][]frame, len(frames)+len(later))
	for r, fr := range append(frames[:len(frames):len(frames)], later...) {
		for _, f := range fr {
			copies[r] = append(copies[r], frame{bytes.Clone(f.b), f.src, f.dst})
		}
	}
	fmt.Fprintf(stderr, "%d nodes × %d series, %d frames per round; creating files\n", *nodes, seriesPerNode, len(frames[0]))
	for _, f := range copies[0] {
		agg.Ingest(f.b, f.src, f.dst)
	}
	if err := agg.Flush(ctx); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	t0 := time.Now()
	var ingest, flush time.Duration
	for _, fr := range copies[1 : *rounds+1] {
		t1 := time.Now()
		for _, f := range fr {
			agg.Ingest(f.b, f.src, f.dst)
		}
		t2 := time.Now()
		if err := agg.Flush(ctx); err != nil {
			return err
		}
		ingest, flush = ingest+t2.Sub(t1), flush+time.Since(t2)
	}
	fmt.Fprintf(stderr, "ingest %v, flush (update, commit, checkpoints) %v\n", ingest, flush)
	ours := float64(total) / time.Since(t0).Seconds()
	pprof.StopCPUProfile()
	st := agg.Stats()
	drops := len(st.FramesDropped) + len(st.UpdatesDropped)
	for _, m := range []map[string]uint64{st.FramesDropped, st.UpdatesDropped} {
		for r, n := range m {
			fmt.Fprintf(stderr, "DROPPED %d (%s)\n", n, r)
		}
	}
	if got := st.UpdatesWritten; got != uint64(total+len(updates[0])) {
		fmt.Fprintf(stderr, "wrote %d updates, want %d\n", got, total+len(updates[0]))
		drops++
	}
	fmt.Fprintf(stderr, "ours: %.0f updates/s\n", ours)

	// The same without syncing, on the same files: what the write path
	// costs apart from the disk's flushes.
	if err := agg.Close(); err != nil {
		return err
	}
	nsCfg := cfg
	nsCfg.Sync = rrd.SyncNone
	if agg, err = aggregator.New(nsCfg); err != nil {
		return err
	}
	t0 = time.Now()
	for _, fr := range copies[*rounds+1:] {
		for _, f := range fr {
			agg.Ingest(f.b, f.src, f.dst)
		}
		if err := agg.Flush(ctx); err != nil {
			return err
		}
	}
	noSync := float64(total) / time.Since(t0).Seconds()
	if st := agg.Stats(); st.UpdatesWritten != uint64(total) {
		fmt.Fprintf(stderr, "without sync: wrote %d updates, want %d\n", st.UpdatesWritten, total)
		drops++
	}
	fmt.Fprintf(stderr, "ours without sync: %.0f updates/s\n", noSync)

	anchor, err := rrdcachedRate(ctx, filepath.Join(dir, "rrdcached"), cfg, updates, stderr)
	note := fmt.Sprintf("%d nodes × %d series, commit per 10 s round; issue's first mark: ≥ rrdcached", *nodes, seriesPerNode)
	if drops > 0 {
		note += "; DROPS, see stderr"
	}
	anchorName := "rrdcached BATCH + flush"
	if err != nil {
		fmt.Fprintf(stderr, "rrdcached anchor: %v\n", err)
		anchorName, anchor = "rrdcached: "+err.Error(), 0
	}
	t := report.Table{Title: "stats aggregator: sealed frames → RRD files on disk"}
	t.Add(report.Row{What: "series updates persisted, frames in", Unit: "updates/s", Ours: ours,
		AnchorName: anchorName, Anchor: anchor, Note: note})
	perRound := *nodes * seriesPerNode
	sock, bare, lost, err := socketRates(ctx, dir, cfg, frames, perRound, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "socket figures: %v\n", err)
		t.Add(report.Row{What: "same over veth (AF_PACKET, recvmmsg)", Unit: "updates/s", Note: "not measured: " + err.Error()})
	} else {
		note := "frames lost in the socket: " + strconv.FormatUint(uint64(lost), 10)
		if sock < bare/2 {
			note += "; the socket is not the limit (TPACKET_V3 would not help)"
		}
		t.Add(report.Row{What: "same, frames over veth (AF_PACKET, recvmmsg)", Unit: "updates/s", Ours: sock,
			AnchorName: "bare socket reading the frames", Anchor: bare, Note: note})
	}
	t.Add(report.Row{What: "same, commits not synced (rrdcached does not sync)", Unit: "updates/s", Ours: noSync,
		AnchorName: anchorName, Anchor: anchor, Note: "the durable row's gap to this one is the disk's flushes"})
	t.Print(stdout)
	return nil
}

// benchRRA keeps the files small enough to create thousands quickly, with
// the default's shape: a fine AVERAGE and four coarser functions.
func benchRRA() []rrd.RRA {
	out := []rrd.RRA{{CF: rrd.Average, XFF: 0.5, Steps: 1, Rows: 360}}
	for _, cf := range []rrd.CF{rrd.Average, rrd.Min, rrd.Max, rrd.Last} {
		out = append(out, rrd.RRA{CF: cf, XFF: 0.5, Steps: 6, Rows: 240})
	}
	return out
}

// frame is one sealed stat frame as a node sends it.
type frame struct {
	b        []byte
	src, dst proto.MAC
}

func nodeMAC(n int) proto.MAC {
	return proto.MAC{0x0c, 0xc4, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// nodeRecords is node n's sample r at t.
func nodeRecords(n, r int, t time.Time) []statframe.Record {
	ts := t.UnixNano()
	u := uint64(r + 1)
	recs := []statframe.Record{&statframe.Host{Time: ts, PCPUs: pcpus, Pools: 1, NUMANodes: 1, Guests: domains,
		MemTotal: 64 << 30, MemFree: 32<<30 - u<<20, Load1: 1.5, Load5: 1.2, Load15: 1}}
	for c := range pcpus {
		recs = append(recs, &statframe.PCPU{ID: uint16(c), Time: ts, CPUTime: u * 5e9})
	}
	recs = append(recs, &statframe.NUMA{ID: 0, MemTotal: 64 << 30, MemFree: 32 << 30},
		&statframe.Pool{ID: 0, Load: 1.5, CPUs: pcpus, Guests: domains})
	for d := range domains {
		id := uint32(d + 1)
		recs = append(recs, &statframe.Domain{Domain: id, UUID: [16]byte{byte(n), byte(d)}},
			&statframe.Memory{Domain: id, Time: ts, Current: 1 << 30, Max: 2 << 30})
		for v := range vcpus {
			recs = append(recs, &statframe.VCPU{Domain: id, ID: uint16(v), Time: ts, Util: 30, CPUTime: u * 3e9})
		}
		for v := range vifs {
			recs = append(recs, &statframe.VIF{Domain: id, ID: uint16(v), Time: ts, RxBytes: u * 1e6, RxPackets: u * 1e3,
				TxBytes: u * 5e5, TxPackets: u * 500})
		}
		for v := range vbds {
			recs = append(recs, &statframe.VBD{Domain: id, ID: uint16(v), Time: ts, Backing: statframe.BackingNBD,
				Device: "vda", Outstanding: 1, ReadReqs: u * 100, WriteReqs: u * 50, ReadSectors: u * 800, WriteSectors: u * 400})
		}
	}
	return recs
}

// rrdcachedRate creates the same files through rrdcached, then times the
// measured rounds' updates sent with BATCH until rrdcached has written
// every one of them to disk.
func rrdcachedRate(ctx context.Context, dir string, cfg aggregator.Config, rounds [][]rrd.Update, log io.Writer) (float64, error) {
	if _, err := exec.LookPath("rrdcached"); err != nil {
		return 0, errors.New("not installed (Debian package rrdcached)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	sock := filepath.Join(dir, "rrdcached.sock")
	cmd := exec.CommandContext(ctx, "rrdcached", "-g", "-B", "-b", dir, "-l", "unix:"+sock,
		"-p", filepath.Join(dir, "rrdcached.pid"), "-w", "3600", "-z", "1", "-f", "7200", "-t", "4")
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	var c *rrdcached.Client
	var err error
	for range 100 { // rrdcached starting: bounded retries against a real process
		ccfg := rrdcached.DefaultConfig()
		ccfg.Addr = "unix:" + sock
		if c, err = rrdcached.Dial(ctx, ccfg); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	file := func(name string) string { return strings.ReplaceAll(name, "/", "_") }
	created := map[string]bool{}
	for _, u := range rounds[0] {
		if created[u.Name] {
			continue
		}
		created[u.Name] = true
		k, err := aggregator.KindOf(u.Name)
		if err != nil {
			return 0, err
		}
		if err := c.Create(ctx, file(u.Name), cfg.Spec(k), u.Time.Sec-1, false); err != nil {
			return 0, fmt.Errorf("create %s: %w", u.Name, err)
		}
	}
	send := func(us []rrd.Update) error {
		cmds := make([]string, 0, len(us))
		for _, u := range us {
			cmds = append(cmds, "UPDATE "+file(u.Name)+" "+rrdcached.FormatUpdate(u.Time, u.Values))
		}
		for len(cmds) > 0 {
			n := min(len(cmds), 20000)
			errs, err := c.Batch(ctx, cmds[:n])
			if err != nil {
				return err
			}
			if len(errs) > 0 {
				return fmt.Errorf("%d updates refused, first: %s", len(errs), errs[0].Message)
			}
			cmds = cmds[n:]
		}
		return nil
	}
	if err := send(rounds[0]); err != nil {
		return 0, err
	}
	written := func() (uint64, error) {
		st, err := c.Stats(ctx)
		return st["DataSetsWritten"], err
	}
	if err := c.FlushAll(ctx); err != nil {
		return 0, err
	}
	base := uint64(len(rounds[0]))
	for deadline := time.Now().Add(time.Minute); ; {
		if n, err := written(); err != nil || n >= base {
			break
		}
		if time.Now().After(deadline) {
			return 0, errors.New("rrdcached did not write the first round")
		}
		time.Sleep(10 * time.Millisecond)
	}
	base, _ = written()
	total := uint64(0)
	t0 := time.Now()
	for _, r := range rounds[1:] {
		if err := send(r); err != nil {
			return 0, err
		}
		total += uint64(len(r))
	}
	if err := c.FlushAll(ctx); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(5 * time.Minute); ; {
		n, err := written()
		if err != nil {
			return 0, err
		}
		if n-base >= total {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("rrdcached wrote %d of %d updates in 5 minutes", n-base, total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rate := float64(total) / time.Since(t0).Seconds()
	fmt.Fprintf(log, "rrdcached: %.0f updates/s\n", rate)
	return rate, nil
}
