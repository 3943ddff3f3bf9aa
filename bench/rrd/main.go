// Command rrd measures sustained series updates/s persisted into our RRD
// files (package statsd/rrd, Store with its journal), beside rrdcached fed
// the same updates with BATCH (accepted, then flushed to disk) and
// `rrdtool update` through one librrd process, on the same machine and
// filesystem, in one run.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/mvstack/mvstack/bench/report"
	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/rrd/rrdcached"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/rrd:", err)
		os.Exit(1)
	}
}

type config struct {
	files, rounds  int
	nds            int // data sources (series) per file
	sync           string
	verbose        bool
	rrdtoolUpdates int
	dir            string
}

// specArgs is the definition every file gets: 10 s step, nds GAUGEs; a
// day of 10 s rows would be too big for a benchmark's disk, so an hour,
// and an average and a max at 1 min for 4 hours.
func specArgs(nds int) []string {
	var a []string
	for i := 0; i < nds; i++ {
		a = append(a, fmt.Sprintf("DS:v%d:GAUGE:20:U:U", i))
	}
	return append(a, "RRA:AVERAGE:0.5:1:360", "RRA:AVERAGE:0.5:6:240", "RRA:MAX:0.5:6:240")
}

const step = 10

// checkpointEvery is how many steps of updates both our store and
// rrdcached hold before writing the files (rrdcached's -w 300 at a 10 s
// step is 30).
const checkpointEvery = 30

func run(ctx context.Context, args []string, w io.Writer) error {
	var c config
	fs := flag.NewFlagSet("rrd", flag.ContinueOnError)
	fs.IntVar(&c.files, "files", 10000, "files in the one-series-per-file scenario (the entity scenario has a fifth as many with 20 series each)")
	fs.IntVar(&c.rounds, "rounds", 60, "updates per series (one per step)")
	fs.IntVar(&c.rrdtoolUpdates, "rrdtool-updates", 20000, "updates sent through rrdtool update")
	fs.BoolVar(&c.verbose, "v", false, "print where our time goes")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run here")
	only := fs.Int("only", -1, "run only this scenario (0: one series per file, 1: twenty)")
	fs.StringVar(&c.sync, "sync", "fs", "how our store syncs: fs (syncfs), each (fsync per file) or none (diagnosis: not durable)")
	fs.StringVar(&c.dir, "dir", "", "directory on the filesystem to measure (default: a temporary one under /var/tmp)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	base := c.dir
	if base == "" {
		d, err := os.MkdirTemp("/var/tmp", "bench-rrd")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		base = d
	}
	t := report.Table{Title: "RRD: sustained series updates/s into files on disk (one run, same filesystem; both write the files every 30 steps)"}
	scenarios := []struct {
		name       string
		files, nds int
	}{
		{"1 series per file", c.files, 1},
		{"20 series per file (one file per entity)", max(1, c.files/5), 20},
	}
	for i, sc := range scenarios {
		if *only >= 0 && i != *only {
			continue
		}
		cc := c
		cc.files, cc.nds = sc.files, sc.nds
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := scenario(ctx, w, &t, sc.name, dir, cc); err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		os.RemoveAll(dir)
	}
	if _, err := exec.LookPath("rrdtool"); err != nil {
		fmt.Fprintf(w, "  rrdtool update: not installed\n")
	} else if *only < 0 {
		cc := c
		cc.nds = 1
		start := time.Now().Unix()/step*step - int64(c.rounds+10)*step
		tool, err := benchRRDTool(ctx, filepath.Join(base, "rrdtool"), start, cc)
		if err != nil {
			return fmt.Errorf("rrdtool update: %w", err)
		}
		if len(t.Rows) > 0 {
			t.Add(report.Row{What: "series updates persisted, 1 series per file", Unit: "updates/s",
				Ours: t.Rows[0].Ours, AnchorName: "rrdtool update, one librrd process", Anchor: float64(c.rrdtoolUpdates) / tool.Seconds()})
		}
	}
	t.Print(w)
	return nil
}

func scenario(ctx context.Context, w io.Writer, t *report.Table, name, base string, c config) error {
	spec := rrd.Spec{Step: step}
	for _, a := range specArgs(c.nds) {
		if strings.HasPrefix(a, "DS:") {
			d, _ := rrd.ParseDS(a)
			spec.DS = append(spec.DS, d)
		} else {
			r, _ := rrd.ParseRRA(a)
			spec.RRA = append(spec.RRA, r)
		}
	}
	start := time.Now().Unix()/step*step - int64(c.rounds+10)*step
	total := float64(c.files * c.nds * c.rounds)
	fmt.Fprintf(w, "bench/rrd: %s: %d files × %d series × %d updates (step %d s) in %s\n", name, c.files, c.nds, c.rounds, step, base)

	ours, commits, err := benchOurs(ctx, filepath.Join(base, "ours"), spec, start, c)
	if err != nil {
		return fmt.Errorf("ours: %w", err)
	}
	fmt.Fprintf(w, "  ours: %.2f s for %.0f series updates in %d commits\n", ours.Seconds(), total, commits)
	oursRate := total / ours.Seconds()
	if _, err := exec.LookPath("rrdcached"); err != nil {
		fmt.Fprintf(w, "  rrdcached: not installed\n")
		t.Add(report.Row{What: "series updates persisted, " + name, Unit: "updates/s", Ours: oursRate})
		return nil
	}
	accepted, persisted, err := benchRRDCached(ctx, filepath.Join(base, "cached"), start, c)
	if err != nil {
		return fmt.Errorf("rrdcached: %w", err)
	}
	fmt.Fprintf(w, "  rrdcached: %.2f s in BATCH, on disk after %.2f s\n", accepted.Seconds(), persisted.Seconds())
	t.Add(report.Row{What: "series updates persisted, " + name, Unit: "updates/s",
		Ours: oursRate, AnchorName: "rrdcached BATCH + FLUSHALL + sync", Anchor: total / persisted.Seconds(),
		Note: "first mark: ≥ rrdcached"})
	t.Add(report.Row{What: "series updates persisted, " + name, Unit: "updates/s",
		Ours: oursRate, AnchorName: "rrdcached BATCH accepted (time in BATCH only)", Anchor: total / accepted.Seconds()})
	return nil
}

// benchOurs: a Store with its journal; one commit per step (every series
// gets one update), checkpoints as configured, a final checkpoint so
// everything is in the files.
func benchOurs(ctx context.Context, dir string, spec rrd.Spec, start int64, c config) (time.Duration, int, error) {
	cfg := rrd.DefaultStoreConfig(dir)
	cfg.CheckpointEvery = checkpointEvery
	switch c.sync {
	case "fs":
	case "each":
		cfg.Sync = rrd.SyncEach
	case "none":
		cfg.Sync = rrd.SyncNone
	default:
		return 0, 0, fmt.Errorf("-sync %q: want fs, each or none", c.sync)
	}
	s, err := rrd.OpenStore(cfg)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	names := make([]string, c.files)
	for i := range names {
		names[i] = fmt.Sprintf("s%d.rrd", i)
	}
	// Create one file and copy it: creating is not what is measured.
	tmpl := filepath.Join(dir, "template")
	if err := rrd.Create(tmpl, spec, rrd.Time{Sec: start}, nil); err != nil {
		return 0, 0, err
	}
	img, err := os.ReadFile(tmpl)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), img, 0o644); err != nil {
			return 0, 0, err
		}
	}
	if err := exec.CommandContext(ctx, "sync", "-f", dir).Run(); err != nil {
		return 0, 0, fmt.Errorf("sync -f: %w", err)
	}
	for _, n := range names {
		if err := s.Open(n); err != nil {
			return 0, 0, err
		}
	}
	// One batch per step, as the aggregator hands them over; the store
	// applies each shard's share in parallel.
	batch := make([]rrd.Update, len(names))
	for i := range batch {
		batch[i] = rrd.Update{Name: names[i], Values: make([]rrd.Value, c.nds)}
	}
	committed := make(chan error, 1)
	committed <- nil
	var feeding, waiting time.Duration
	t0 := time.Now()
	commits := 0
	for r := 0; r < c.rounds; r++ {
		ts := rrd.Time{Sec: start + int64(r+1)*step}
		tf := time.Now()
		for i := range batch {
			batch[i].Time = ts
			for k := range batch[i].Values {
				batch[i].Values[k] = rrd.Float(float64((i + r + k) % 100))
			}
		}
		if err := s.UpdateBatch(batch); err != nil {
			return 0, 0, err
		}
		tw := time.Now()
		feeding += tw.Sub(tf)
		// Commit this step while the next one comes in (one commit in
		// flight at a time, as the aggregator would).
		if err := <-committed; err != nil {
			return 0, 0, err
		}
		waiting += time.Since(tw)
		go func() { committed <- s.Commit(ctx) }()
		commits++
	}
	if err := <-committed; err != nil {
		return 0, 0, err
	}
	tc := time.Now()
	if err := s.Checkpoint(ctx); err != nil {
		return 0, 0, err
	}
	if c.verbose {
		fmt.Printf("    ours: feeding %v, waiting for commits %v, final checkpoint %v\n", feeding, waiting, time.Since(tc))
	}
	return time.Since(t0), commits, nil
}

// benchRRDCached: the same updates as BATCH commands, one batch per step;
// then FLUSHALL until the queue is empty, then syncfs.
func benchRRDCached(ctx context.Context, dir string, start int64, c config) (accepted, persisted time.Duration, err error) {
	data, journal := filepath.Join(dir, "data"), filepath.Join(dir, "journal")
	os.MkdirAll(data, 0o755)
	os.MkdirAll(journal, 0o755)
	if err := makeRRDToolFiles(ctx, data, start, c.files, c.nds); err != nil {
		return 0, 0, err
	}
	sock := filepath.Join(dir, "sock")
	cmd := exec.CommandContext(ctx, "rrdcached", "-g", "-l", "unix:"+sock, "-b", data, "-B", "-j", journal,
		"-w", "3600", "-f", "7200", "-t", "4", "-p", filepath.Join(dir, "pid"), "-o", filepath.Join(dir, "log"))
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var cl *rrdcached.Client
	for deadline := time.Now().Add(10 * time.Second); ; {
		if cl, err = rrdcached.Dial(ctx, rrdcached.Config{Addr: "unix:" + sock, DialTimeout: time.Second}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("rrdcached did not start: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer cl.Close()
	cmds := make([]string, c.files)
	t0 := time.Now()
	for r := 0; r < c.rounds; r++ {
		ts := strconv.FormatInt(start+int64(r+1)*step, 10)
		for i := range cmds {
			b := []byte("UPDATE s" + strconv.Itoa(i) + ".rrd " + ts)
			for k := 0; k < c.nds; k++ {
				b = append(b, ':')
				b = strconv.AppendInt(b, int64((i+r+k)%100), 10)
			}
			cmds[i] = string(b)
		}
		t1 := time.Now()
		errs, err := cl.Batch(ctx, cmds)
		if err != nil {
			return 0, 0, err
		}
		accepted += time.Since(t1)
		if len(errs) > 0 {
			return 0, 0, fmt.Errorf("%d updates refused, first: %+v", len(errs), errs[0])
		}
		// Write the files as often as our store checkpoints.
		if (r+1)%checkpointEvery == 0 || r == c.rounds-1 {
			if err := flushAll(ctx, cl, uint64(c.files)*uint64(r+1)); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := exec.CommandContext(ctx, "sync", "-f", data).Run(); err != nil {
		return 0, 0, fmt.Errorf("sync -f: %w", err)
	}
	return accepted, time.Since(t0), nil
}

// flushAll asks rrdcached to write everything and waits until it has
// written `want` updates.
func flushAll(ctx context.Context, cl *rrdcached.Client, want uint64) error {
	if err := cl.FlushAll(ctx); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Minute); ; {
		st, err := cl.Stats(ctx)
		if err != nil {
			return err
		}
		if st["QueueLength"] == 0 && st["DataSetsWritten"] >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rrdcached did not flush in 10 minutes: %v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// makeRRDToolFiles creates one real .rrd and copies it n times.
func makeRRDToolFiles(ctx context.Context, dir string, start int64, n, nds int) error {
	tmpl := filepath.Join(dir, "template.rrd")
	args := append([]string{"create", tmpl, "--start", strconv.FormatInt(start, 10), "--step", strconv.Itoa(step)}, specArgs(nds)...)
	if out, err := exec.CommandContext(ctx, "rrdtool", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("rrdtool create: %v: %s", err, out)
	}
	img, err := os.ReadFile(tmpl)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%d.rrd", i)), img, 0o644); err != nil {
			return err
		}
	}
	if err := exec.CommandContext(ctx, "sync", "-f", dir).Run(); err != nil {
		return fmt.Errorf("sync -f: %w", err)
	}
	return nil
}

// benchRRDTool sends c.rrdtoolUpdates updates through one `rrdtool -`
// process (librrd opens, updates and closes the file each time), then
// syncs.
func benchRRDTool(ctx context.Context, dir string, start int64, c config) (time.Duration, error) {
	os.MkdirAll(dir, 0o755)
	nfiles := min(c.files, 1000)
	if err := makeRRDToolFiles(ctx, dir, start, nfiles, 1); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "rrdtool", "-")
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ERROR") {
				done <- fmt.Errorf("rrdtool: %s", sc.Text())
				return
			}
			n++
		}
		done <- nil
	}()
	t0 := time.Now()
	bw := bufio.NewWriter(stdin)
	for k := 0; k < c.rrdtoolUpdates; k++ {
		f, r := k%nfiles, k/nfiles
		fmt.Fprintf(bw, "update s%d.rrd %d:%d\n", f, start+int64(r+1)*step, (f+r)%100)
	}
	bw.Flush()
	stdin.Close()
	if err := <-done; err != nil {
		return 0, err
	}
	if err := exec.CommandContext(ctx, "sync", "-f", dir).Run(); err != nil {
		return 0, fmt.Errorf("sync -f: %w", err)
	}
	return time.Since(t0), nil
}
