package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHelpAndBadArgumentsNameTheProblem(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mvaoe", "serve", "1", "2"}, "serve wants SHELF SLOT IFACE FILE"},
		{[]string{"mvaoe", "serve", "70000", "1", "eth0", "f"}, `shelf "70000"`},
		{[]string{"mvaoe", "serve", "1", "255", "eth0", "f"}, `slot "255"`},
		{[]string{"mvaoe", "nbd", "--iface", "lo", "1x2", "/tmp/s"}, `address "1x2"`},
		{[]string{"mvaoe", "serve", "--mac-mask", "zz", "1", "1", "eth0", "f"}, "--mac-mask"},
		{[]string{"mvaoe", "epoch", "--iface", "lo", "1.1", "x"}, `epoch "x"`},
		{[]string{"mvaoe", "epoch", "--iface", "lo"}, "epoch wants SHELF.SLOT [N]"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"mvaoe", "--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "discover", "stat", "nbd", "epoch"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("--help does not list %s:\n%s", cmd, out.String())
		}
	}
}

func TestSubcommandHelpNamesTheEpochFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mvaoe", "serve", "--help"}, "--epoch"},
		{[]string{"mvaoe", "epoch", "--help"}, "SHELF.SLOT [N]"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), c.args, &out, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("%v does not mention %q:\n%s", c.args, c.want, out.String())
		}
	}
}
