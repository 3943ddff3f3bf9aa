package rrdcli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func fixedNow() time.Time { return time.Unix(1700001000, 0) }

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Runner{Now: fixedNow}.Run(context.Background(), args, &out, &errb)
	if err != nil && !strings.HasPrefix(errb.String(), "ERROR: ") {
		t.Fatalf("error without an ERROR line: %v, stderr %q", err, errb.String())
	}
	return out.String(), err
}

func rrdtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("rrdtool", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rrdtool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestCLIMatchesRRDTool runs the same command lines through rrdtool and
// through Run and compares what they print.
func TestCLIMatchesRRDTool(t *testing.T) {
	if _, err := exec.LookPath("rrdtool"); err != nil {
		t.Skip("needs rrdtool (apt install rrdtool): not in PATH")
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.rrd")
	theirs := "theirs.rrd"
	create := []string{"--start", "1700000000", "--step", "10", "DS:temp:GAUGE:20:U:U", "DS:bytes:COUNTER:20:0:U", "RRA:AVERAGE:0.5:1:20", "RRA:MAX:0.5:3:10", "RRA:LAST:0.5:6:5"}
	if _, err := run(t, append([]string{"create", ours}, create...)...); err != nil {
		t.Fatal(err)
	}
	rrdtool(t, dir, append([]string{"create", theirs}, create...)...)
	updates := []string{"1700000010:1:100", "1700000020:2:300", "1700000035:U:600", "1700000041.5:4:700", "1700000090:5:4294967000", "1700000100:6:200"}
	if _, err := run(t, append([]string{"update", ours}, updates...)...); err != nil {
		t.Fatal(err)
	}
	rrdtool(t, dir, append([]string{"update", theirs}, updates...)...)
	tmpl := []string{"-t", "bytes:temp", "1700000110:900:7"}
	if _, err := run(t, append([]string{"update", ours}, tmpl...)...); err != nil {
		t.Fatal(err)
	}
	rrdtool(t, dir, append([]string{"update", theirs}, tmpl...)...)
	for _, args := range [][]string{
		{"AVERAGE", "-s", "1700000000", "-e", "1700000110"},
		{"MAX", "--start", "1700000000", "--end", "1700000110", "-r", "30"},
		{"LAST", "-s", "1699999000", "-e", "1700000110", "-r", "60"},
		{"AVERAGE", "-s", "end-100", "-e", "1700000110"},
		{"AVERAGE", "-s", "1700000001", "-e", "1700000099", "-a", "-r", "30"},
	} {
		got, err := run(t, append([]string{"fetch", ours}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		want := rrdtool(t, dir, append([]string{"fetch", theirs}, args...)...)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("fetch %v (-rrdtool +ours):\n%s", args, d)
		}
	}
	for _, c := range [][]string{{"last"}, {"first"}, {"first", "--rraindex", "2"}} {
		got, err := run(t, append([]string{c[0], ours}, c[1:]...)...)
		if err != nil {
			t.Fatal(err)
		}
		want := rrdtool(t, dir, append([]string{c[0], theirs}, c[1:]...)...)
		if got != want {
			t.Errorf("%v: ours %q, rrdtool %q", c, got, want)
		}
	}
	// info: the same keys and values, except what describes rrdtool's own
	// file (header_size) and the ring position (cur_row, random in rrdtool).
	got, _ := run(t, "info", ours)
	want := rrdtool(t, dir, "info", theirs)
	filter := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "filename") || strings.HasPrefix(l, "header_size") || strings.Contains(l, "cur_row") {
				continue
			}
			keep = append(keep, l)
		}
		return strings.Join(keep, "\n")
	}
	if d := cmp.Diff(filter(want), filter(got)); d != "" {
		t.Errorf("info (-rrdtool +ours):\n%s", d)
	}
	// Our dump restores with rrdtool; rrdtool's dump restores with ours.
	xml, err := run(t, "dump", ours)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ours.xml"), []byte(xml), 0o644)
	rrdtool(t, dir, "restore", "ours.xml", "back.rrd")
	fa := []string{"AVERAGE", "-s", "1700000000", "-e", "1700000110"}
	a := rrdtool(t, dir, append([]string{"fetch", "back.rrd"}, fa...)...)
	b, _ := run(t, append([]string{"fetch", ours}, fa...)...)
	if a != b {
		t.Errorf("fetch after rrdtool restore of our dump:\n%s\nours:\n%s", a, b)
	}
	rrdtool(t, dir, "dump", theirs, "theirs.xml")
	if _, err := run(t, "restore", filepath.Join(dir, "theirs.xml"), filepath.Join(dir, "imported.rrd")); err != nil {
		t.Fatal(err)
	}
	c, _ := run(t, append([]string{"fetch", filepath.Join(dir, "imported.rrd")}, fa...)...)
	if c != b {
		t.Errorf("fetch of rrdtool's dump restored by us:\n%s\nwant:\n%s", c, b)
	}
	if _, err := run(t, "restore", filepath.Join(dir, "theirs.xml"), filepath.Join(dir, "imported.rrd")); err == nil {
		t.Error("restore over an existing file without -f succeeded")
	}
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "x.rrd")
	if _, err := run(t, "create", f, "--step", "10", "DS:a:GAUGE:20:U:U", "RRA:AVERAGE:0.5:1:10"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc string
		args []string
	}{
		{"unknown command", []string{"graph", f}},
		{"bad DS type", []string{"create", f + "2", "DS:a:GAUGEX:20:U:U", "RRA:AVERAGE:0.5:1:10"}},
		{"time not after last", []string{"update", f, "1000:1"}},
		{"too many values", []string{"update", f, "N:1:2"}},
		{"bad CF", []string{"fetch", f, "MEDIAN"}},
		{"start after end", []string{"fetch", f, "AVERAGE", "-s", "now", "-e", "now-1h"}},
		{"bad time", []string{"fetch", f, "AVERAGE", "-s", "yesterday"}},
		{"missing file", []string{"last", filepath.Join(dir, "nope.rrd")}},
	} {
		if _, err := run(t, c.args...); err == nil {
			t.Errorf("%s: %v succeeded", c.desc, c.args)
		}
	}
	out, err := run(t, "--help")
	if err != nil || !strings.Contains(out, "fetch FILE CF") {
		t.Errorf("--help: %v %q", err, out)
	}
	if _, err := run(t); !errors.Is(err, ErrUsage) {
		t.Errorf("no args: %v, want ErrUsage", err)
	}
}

func TestParseTime(t *testing.T) {
	now := int64(1700000000)
	refs := map[string]int64{"end": now - 100}
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"1699999000", 1699999000},
		{"now", now},
		{"N", now},
		{"-1d", now - 86400},
		{"now-2h", now - 7200},
		{"now-1h+30min", now - 1800},
		{"end-1w", now - 100 - 604800},
		{"-300", now - 300},
	} {
		got, err := parseTime(c.in, now, now, refs)
		if err != nil || got != c.want {
			t.Errorf("parseTime(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}
