package rrd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// oracle drives one `rrdtool -` process: commands go to its stdin, each
// answered by its output and an "OK ..." or "ERROR: ..." line.
type oracle struct {
	t       testing.TB
	dir     string
	cmd     *exec.Cmd
	in      *bufio.Writer
	replies chan oracleReply
	close   func() // stops rrdtool (also done at cleanup)
}

type oracleReply struct {
	lines []string
	err   string // the ERROR line's text
	eof   error  // rrdtool's output ended
}

// needRRDTool skips when rrdtool is not installed.
func needRRDTool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("rrdtool")
	if err != nil {
		t.Skip("needs rrdtool (apt install rrdtool): not in PATH")
	}
	return p
}

// scratchDir is a temporary directory on tmpfs when there is one, so
// thousands of small files cost no disk I/O.
func scratchDir(t testing.TB) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "rrdtest")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func newOracle(t testing.TB) *oracle {
	t.Helper()
	bin := needRRDTool(t)
	dir := scratchDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "-")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	o0 := &oracle{}
	o0.close = func() {
		once.Do(func() {
			stdin.Close()
			cancel()
			cmd.Wait()
		})
	}
	t.Cleanup(o0.close)
	o := &oracle{t: t, dir: dir, cmd: cmd, in: bufio.NewWriter(stdin), replies: make(chan oracleReply, 1<<17), close: o0.close}
	// Read answers as they come, so rrdtool never blocks on a full pipe
	// while we are still writing commands.
	go func() {
		r := bufio.NewReaderSize(stdout, 1<<16)
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				o.replies <- oracleReply{lines: lines, eof: err}
				close(o.replies)
				return
			}
			l = strings.TrimRight(l, "\n")
			switch {
			case strings.HasPrefix(l, "OK u:"):
				o.replies <- oracleReply{lines: lines}
				lines = nil
			case strings.HasPrefix(l, "ERROR: "):
				o.replies <- oracleReply{lines: lines, err: strings.TrimPrefix(l, "ERROR: ")}
				lines = nil
			default:
				lines = append(lines, l)
			}
		}
	}()
	return o
}

// send queues one command line.
func (o *oracle) send(args ...string) {
	o.in.WriteString(strings.Join(args, " "))
	o.in.WriteByte('\n')
}

// reply reads one command's output; err is the ERROR line's text.
func (o *oracle) reply() (lines []string, errText string) {
	o.t.Helper()
	if err := o.in.Flush(); err != nil {
		o.t.Fatalf("rrdtool -: %v", err)
	}
	r, ok := <-o.replies
	if !ok || r.eof != nil {
		o.t.Fatalf("rrdtool -: output ended: %v", r.eof)
	}
	return r.lines, r.err
}

// fetched is a parsed `rrdtool fetch` answer.
type fetched struct {
	names []string
	times []int64
	rows  [][]float64
}

func parseFetch(lines []string) (fetched, error) {
	var f fetched
	if len(lines) < 2 {
		return f, fmt.Errorf("short fetch output %q", lines)
	}
	f.names = strings.Fields(lines[0])
	for _, l := range lines[2:] {
		ts, vals, ok := strings.Cut(l, ":")
		if !ok {
			return f, fmt.Errorf("fetch line %q", l)
		}
		t, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return f, fmt.Errorf("fetch line %q: %v", l, err)
		}
		var row []float64
		for _, v := range strings.Fields(vals) {
			x, err := parseCNumber(v)
			if err != nil {
				return f, fmt.Errorf("fetch line %q: %v", l, err)
			}
			row = append(row, x)
		}
		f.times = append(f.times, t)
		f.rows = append(f.rows, row)
	}
	return f, nil
}

// parseCNumber parses printf's %e output, including nan, -nan, inf.
func parseCNumber(s string) (float64, error) {
	switch s {
	case "nan", "-nan", "NaN":
		return math.NaN(), nil
	case "inf", "Inf":
		return math.Inf(1), nil
	case "-inf", "-Inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// close1e9 is the differential test's equality: NaN equals NaN, infinities
// equal themselves, numbers agree to 1e-9 relative.
func close1e9(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return a == b
	}
	d := math.Abs(a - b)
	m := math.Max(math.Abs(a), math.Abs(b))
	// rrdtool prints 11 significant digits: allow that rounding too.
	return d <= 1e-9*m || d < 1e-300
}

// compareFetch checks our result against rrdtool's printed one.
func compareFetch(ours *FetchResult, theirs fetched) error {
	if strings.Join(ours.DSNames, " ") != strings.Join(theirs.names, " ") {
		return fmt.Errorf("DS names: ours %q, rrdtool %q", ours.DSNames, theirs.names)
	}
	if len(ours.Rows) != len(theirs.rows) {
		return fmt.Errorf("rows: ours %d (start %d end %d step %d), rrdtool %d (%v)", len(ours.Rows), ours.Start, ours.End, ours.Step, len(theirs.rows), theirs.times)
	}
	for i, row := range ours.Rows {
		ts := ours.Start + int64(i+1)*int64(ours.Step)
		if ts != theirs.times[i] {
			return fmt.Errorf("row %d: time ours %d, rrdtool %d", i, ts, theirs.times[i])
		}
		for j, v := range row {
			if !close1e9(v, theirs.rows[i][j]) {
				return fmt.Errorf("row %d (%d) DS %d: ours %.12e, rrdtool %.12e", i, ts, j, v, theirs.rows[i][j])
			}
		}
	}
	return nil
}

func (o *oracle) path(name string) string { return filepath.Join(o.dir, name) }

var _ io.Writer = (*bufio.Writer)(nil)
