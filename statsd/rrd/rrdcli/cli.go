package rrdcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mvstack/mvstack/statsd/rrd"
)

// ErrUsage reports bad command-line arguments.
var ErrUsage = errors.New("usage")

// Runner runs rrd commands. The zero value uses the wall clock.
type Runner struct {
	// Now returns the current time (for N, now and defaults); nil: time.Now.
	Now func() time.Time
}

// Run runs one command with rrdtool's syntax: args[0] is the command
// (create, update, fetch, dump, restore, info, last, first). Output goes
// to stdout; on failure Run prints "ERROR: <reason>" to stderr, as
// rrdtool does, and returns the error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return Runner{}.Run(ctx, args, stdout, stderr)
}

const usage = `Usage: rrd COMMAND [options]

Commands (rrdtool syntax, on mvstack RRD files):
  create FILE [--start|-b TIME] [--step|-s SECONDS] [--no-overwrite|-O] DS:name:TYPE:heartbeat:min:max... RRA:CF:xff:steps:rows...
  update FILE [--template|-t ds[:ds]...] N|TIME:value[:value...]...
  fetch FILE CF [--resolution|-r SECONDS] [--start|-s TIME] [--end|-e TIME] [--align-start|-a]
  dump FILE [OUTPUT.xml]            rrdtool XML (rrdtool restore reads it)
  restore FILE.xml FILE [--force-overwrite|-f]
  info FILE
  last FILE
  first FILE [--rraindex N]

TYPE: GAUGE COUNTER DERIVE ABSOLUTE DCOUNTER DDERIVE; CF: AVERAGE MIN MAX LAST; U is unknown.
TIME: seconds since the epoch, N/now, or offsets like -1d, now-2h, end-30min.
`

// Run runs one command; see the package function Run.
func (r Runner) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := r.run(ctx, args, stdout)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		if errors.Is(err, ErrUsage) {
			fmt.Fprint(stderr, usage)
		}
	}
	return err
}

var errHelp = errors.New("help")

func (r Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r Runner) run(ctx context.Context, args []string, w io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", ErrUsage)
	}
	cmd, rest := args[0], args[1:]
	for _, a := range args {
		if a == "--help" || a == "-h" && cmd != "dump" {
			return errHelp
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch cmd {
	case "help":
		return errHelp
	case "create":
		return r.create(rest)
	case "update":
		return r.update(rest)
	case "fetch":
		return r.fetch(rest, w)
	case "dump":
		return dump(rest, w)
	case "restore":
		return restore(rest)
	case "info":
		return info(rest, w)
	case "last":
		return last(rest, w)
	case "first":
		return firstCmd(rest, w)
	}
	return fmt.Errorf("%w: unknown command %q", ErrUsage, cmd)
}

// opts splits rrdtool-style arguments into options and positionals.
// spec maps every option name (long and short) to its canonical name and
// whether it takes a value.
type optSpec map[string]struct {
	name  string
	value bool
}

func parseOpts(args []string, spec optSpec) (map[string]string, []string, error) {
	opts := map[string]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || isNumber(a) {
			pos = append(pos, a)
			continue
		}
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		key, val, hasVal := strings.Cut(a, "=")
		o, ok := spec[key]
		if !ok {
			return nil, nil, fmt.Errorf("%w: unknown option %q", ErrUsage, key)
		}
		if o.value && !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("%w: option %s needs a value", ErrUsage, key)
			}
			i++
			val = args[i]
		}
		opts[o.name] = val
	}
	return opts, pos, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func (r Runner) create(args []string) error {
	opts, pos, err := parseOpts(args, optSpec{
		"--start": {"start", true}, "-b": {"start", true},
		"--step": {"step", true}, "-s": {"step", true},
		"--no-overwrite": {"O", false}, "-O": {"O", false},
	})
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return fmt.Errorf("%w: create needs a file name", ErrUsage)
	}
	file := pos[0]
	now := nowSec(r.now())
	spec := rrd.Spec{Step: 300}
	if v, ok := opts["step"]; ok {
		if spec.Step, err = parseStep(v); err != nil {
			return err
		}
	}
	start := now - 10
	if v, ok := opts["start"]; ok {
		if start, err = parseTime(v, now, now, nil); err != nil {
			return fmt.Errorf("start: %w", err)
		}
	}
	for _, a := range pos[1:] {
		switch {
		case strings.HasPrefix(a, "DS:"):
			d, err := rrd.ParseDS(a)
			if err != nil {
				return err
			}
			spec.DS = append(spec.DS, d)
		case strings.HasPrefix(a, "RRA:"):
			ra, err := rrd.ParseRRA(a)
			if err != nil {
				return err
			}
			spec.RRA = append(spec.RRA, ra)
		default:
			return fmt.Errorf("%w: can't parse argument %q", ErrUsage, a)
		}
	}
	_, noOverwrite := opts["O"]
	return rrd.Create(file, spec, rrd.Time{Sec: start}, &rrd.CreateOptions{Overwrite: !noOverwrite})
}

func parseStep(v string) (uint64, error) {
	mult := uint64(1)
	for suffix, m := range map[string]uint64{"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800} {
		if strings.HasSuffix(v, suffix) {
			v, mult = strings.TrimSuffix(v, suffix), m
			break
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: step %q", ErrUsage, v)
	}
	return n * mult, nil
}

func (r Runner) update(args []string) error {
	opts, pos, err := parseOpts(args, optSpec{
		"--template": {"template", true}, "-t": {"template", true},
		"--skip-past-updates": {"skip", false}, "-s": {"skip", false},
	})
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("%w: update needs a file name and at least one TIME:value", ErrUsage)
	}
	f, err := rrd.Open(pos[0])
	if err != nil {
		return err
	}
	spec := f.Spec()
	order := make([]int, len(spec.DS))
	for i := range order {
		order[i] = i
	}
	if t, ok := opts["template"]; ok {
		order = order[:0]
		for _, name := range strings.Split(t, ":") {
			idx := -1
			for i, d := range spec.DS {
				if d.Name == name {
					idx = i
				}
			}
			if idx < 0 {
				f.Close()
				return fmt.Errorf("unknown DS name '%s'", name)
			}
			order = append(order, idx)
		}
	}
	_, skip := opts["skip"]
	var uerr error
	for _, a := range pos[1:] {
		if uerr = r.updateOne(f, spec, order, a, skip); uerr != nil {
			break
		}
	}
	// Like rrdtool, the updates before a bad one stay.
	if err := f.Close(); uerr == nil {
		uerr = err
	}
	return uerr
}

func (r Runner) updateOne(f *rrd.File, spec rrd.Spec, order []int, a string, skip bool) error {
	fields := strings.Split(a, ":")
	if len(fields)-1 != len(order) {
		return fmt.Errorf("%s: found extra data on update argument: %s", f.Path(), a)
	}
	var t rrd.Time
	if fields[0] == "N" {
		n := r.now()
		t = rrd.Time{Sec: n.Unix(), Usec: int64(n.Nanosecond() / 1000)}
	} else {
		ts, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(ts) || math.IsInf(ts, 0) {
			return fmt.Errorf("%s: expected timestamp not found in data source from %s", f.Path(), a)
		}
		t = rrd.TimeOf(ts)
	}
	vals := make([]rrd.Value, len(spec.DS))
	for i, idx := range order {
		v, err := rrd.ParseValue(fields[i+1])
		if err != nil {
			return fmt.Errorf("%s: %w", f.Path(), err)
		}
		vals[idx] = v
	}
	if skip && !f.Last().Before(t) {
		return nil
	}
	if err := f.Update(t, vals...); err != nil {
		return fmt.Errorf("%s: %w", f.Path(), err)
	}
	return nil
}

func (r Runner) fetch(args []string, w io.Writer) error {
	opts, pos, err := parseOpts(args, optSpec{
		"--resolution": {"res", true}, "-r": {"res", true},
		"--start": {"start", true}, "-s": {"start", true},
		"--end": {"end", true}, "-e": {"end", true},
		"--align-start": {"align", false}, "-a": {"align", false},
	})
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: fetch needs a file name and a consolidation function", ErrUsage)
	}
	cf, err := rrd.ParseCF(pos[1])
	if err != nil {
		return fmt.Errorf("unknown consolidation function '%s'", pos[1])
	}
	now := nowSec(r.now())
	end, start := now, int64(0)
	sv, hasStart := opts["start"]
	ev, hasEnd := opts["end"]
	if hasEnd && !strings.Contains(strings.ToLower(ev), "s") {
		if end, err = parseTime(ev, now, now, nil); err != nil {
			return fmt.Errorf("end time: %w", err)
		}
	}
	if hasStart {
		if start, err = parseTime(sv, now, end, map[string]int64{"end": end}); err != nil {
			return fmt.Errorf("start time: %w", err)
		}
	} else {
		start = end - 86400
	}
	if hasEnd && strings.Contains(strings.ToLower(ev), "s") {
		if end, err = parseTime(ev, now, now, map[string]int64{"start": start}); err != nil {
			return fmt.Errorf("end time: %w", err)
		}
	}
	var res uint64 = 1
	if v, ok := opts["res"]; ok {
		if res, err = strconv.ParseUint(v, 10, 64); err != nil || res == 0 {
			return fmt.Errorf("resolution: value must be positive")
		}
	}
	if _, ok := opts["align"]; ok {
		d := start % int64(res)
		start, end = start-d, end-d
	}
	if start > end {
		return fmt.Errorf("start (%d) should be less than end (%d)", start, end)
	}
	return withFile(pos[0], func(f *rrd.File) error {
		fr, err := f.Fetch(cf, start, end, res)
		if err != nil {
			if errors.Is(err, rrd.ErrNoRRA) {
				return fmt.Errorf("the RRD does not contain an RRA matching the chosen CF")
			}
			return err
		}
		return WriteFetch(w, fr)
	})
}

// withFile opens an RRD file for fn and closes it after.
func withFile(path string, fn func(*rrd.File) error) error {
	f, err := rrd.Open(path)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFetch prints a fetch result the way rrdtool fetch does.
func WriteFetch(w io.Writer, fr *rrd.FetchResult) error {
	var b strings.Builder
	b.WriteString("           ")
	for _, n := range fr.DSNames {
		fmt.Fprintf(&b, "%20s", n)
	}
	b.WriteString("\n\n")
	for i, row := range fr.Rows {
		fmt.Fprintf(&b, "%d:", fr.Start+int64(i+1)*int64(fr.Step))
		for _, v := range row {
			b.WriteByte(' ')
			b.WriteString(cNum(v))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cNum formats like C's "%0.10e" (rrdtool fetch), NaN as nan or -nan by
// its sign.
func cNum(v float64) string {
	if math.IsNaN(v) {
		if math.Signbit(v) {
			return "-nan"
		}
		return "nan"
	}
	return rrd.FormatNumber(v)
}

func dump(args []string, w io.Writer) error {
	_, pos, err := parseOpts(args, optSpec{
		"--header": {"header", true}, "-h": {"header", true},
		"--no-header": {"noheader", false}, "-n": {"noheader", false},
	})
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fmt.Errorf("%w: dump needs a file name (and optionally an output file)", ErrUsage)
	}
	return withFile(pos[0], func(f *rrd.File) error {
		if len(pos) == 1 {
			return f.DumpXML(w)
		}
		out, err := os.Create(pos[1])
		if err != nil {
			return err
		}
		if err := f.DumpXML(out); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func restore(args []string) error {
	opts, pos, err := parseOpts(args, optSpec{
		"--force-overwrite": {"force", false}, "-f": {"force", false},
		"--range-check": {"range", false}, "-r": {"range", false},
	})
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: restore needs an XML file and an RRD file", ErrUsage)
	}
	in, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := rrd.RestoreXML(in)
	if err != nil {
		return err
	}
	if _, ok := opts["range"]; ok {
		clampRows(r)
	}
	_, force := opts["force"]
	return r.Save(pos[1], &rrd.CreateOptions{Overwrite: force})
}

// clampRows makes values outside each DS's min/max unknown (restore -r).
func clampRows(r *rrd.RRD) {
	nds := len(r.Spec.DS)
	for _, d := range r.Data {
		for i, v := range d {
			ds := r.Spec.DS[i%nds]
			if !math.IsNaN(ds.Min) && v < ds.Min || !math.IsNaN(ds.Max) && v > ds.Max {
				d[i] = math.Copysign(math.NaN(), -1)
			}
		}
	}
}

func info(args []string, w io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: info needs a file name", ErrUsage)
	}
	var spec rrd.Spec
	var st rrd.State
	if err := withFile(args[0], func(f *rrd.File) error {
		spec, st = f.Spec(), f.State()
		return nil
	}); err != nil {
		return err
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("filename = %q\n", args[0])
	p("rrd_version = \"0003\"\n")
	p("step = %d\n", spec.Step)
	p("last_update = %d\n", st.LastUp.Sec)
	for i, d := range spec.DS {
		pd := st.PDP[i]
		p("ds[%s].index = %d\n", d.Name, i)
		p("ds[%s].type = \"%s\"\n", d.Name, d.Type)
		p("ds[%s].minimal_heartbeat = %d\n", d.Name, d.Heartbeat)
		p("ds[%s].min = %s\n", d.Name, infoNum(d.Min))
		p("ds[%s].max = %s\n", d.Name, infoNum(d.Max))
		p("ds[%s].last_ds = \"%s\"\n", d.Name, pd.LastDS)
		p("ds[%s].value = %s\n", d.Name, infoNum(pd.Value))
		p("ds[%s].unknown_sec = %d\n", d.Name, pd.UnknownSec)
	}
	nds := len(spec.DS)
	for r, a := range spec.RRA {
		p("rra[%d].cf = \"%s\"\n", r, a.CF)
		p("rra[%d].rows = %d\n", r, a.Rows)
		p("rra[%d].cur_row = %d\n", r, st.CurRow[r])
		p("rra[%d].pdp_per_row = %d\n", r, a.Steps)
		p("rra[%d].xff = %s\n", r, infoNum(a.XFF))
		for d := 0; d < nds; d++ {
			c := st.CDP[r*nds+d]
			p("rra[%d].cdp_prep[%d].value = %s\n", r, d, infoNum(c.Value))
			p("rra[%d].cdp_prep[%d].unknown_datapoints = %d\n", r, d, c.UnknownPDP)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func infoNum(v float64) string { return rrd.FormatNumber(v) }

func last(args []string, w io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: last needs a file name", ErrUsage)
	}
	return withFile(args[0], func(f *rrd.File) error {
		_, err := fmt.Fprintf(w, "%d\n", f.Last().Sec)
		return err
	})
}

func firstCmd(args []string, w io.Writer) error {
	opts, pos, err := parseOpts(args, optSpec{"--rraindex": {"rra", true}})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: first needs a file name", ErrUsage)
	}
	idx := 0
	if v, ok := opts["rra"]; ok {
		if idx, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("%w: --rraindex %q", ErrUsage, v)
		}
	}
	return withFile(pos[0], func(f *rrd.File) error {
		t, err := f.First(idx)
		if err != nil {
			return fmt.Errorf("invalid rraindex number")
		}
		_, err = fmt.Fprintf(w, "%d\n", t)
		return err
	})
}
