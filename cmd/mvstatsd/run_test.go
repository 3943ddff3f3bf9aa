package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// `mvstatsd rrd` is rrdtool's syntax on our files: create, update, fetch.
func TestRRDCommands(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.rrd")
	ctx := context.Background()
	var out, errb bytes.Buffer
	for _, args := range [][]string{
		{"create", f, "--start", "1000", "--step", "10", "DS:v:GAUGE:20:U:U", "RRA:AVERAGE:0.5:1:10"},
		{"update", f, "1010:1", "1020:2", "1030:3"},
	} {
		if err := run(ctx, append([]string{"mvstatsd", "rrd"}, args...), &out, &errb); err != nil {
			t.Fatalf("rrd %v: %v (%s)", args, err, errb.String())
		}
	}
	out.Reset()
	if err := run(ctx, []string{"mvstatsd", "rrd", "fetch", f, "AVERAGE", "--start", "1000", "--end", "1030"}, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	if !strings.Contains(out.String(), "1030: 3.0000000000e+00") {
		t.Errorf("fetch printed:\n%s", out.String())
	}
	errb.Reset()
	if err := run(ctx, []string{"mvstatsd", "rrd", "fetch", f}, &out, &errb); err == nil || !strings.HasPrefix(errb.String(), "ERROR:") {
		t.Errorf("fetch without CF: %v, stderr %q", err, errb.String())
	}
}

func TestServeNamesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "iface"},
		{[]string{"serve", "--iface", "lo", "--sync", "sometimes"}, "--sync"},
		{[]string{"serve", "--iface", "lo", "--rra", "RRA:MEDIAN:0.5:1:10"}, "--rra"},
		{[]string{"serve", "--iface", "lo", "--key", "/nonexistent/key"}, "--key"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"mvstatsd"}, c.args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}
