package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/perfcrpc"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

func TestBadCommandLinesNameTheInput(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"no mode", []string{"--mvmac", "0cc47a77f9af"}, "exactly one of --perfc-dump"},
		{"two modes", []string{"--mvmac", "0cc47a77f9af", "--perfc-dump", "--perf-reset"}, "exactly one of"},
		{"no node", []string{"--perfc-dump"}, "--mvmac is required"},
		{"bad node", []string{"--mvmac", "0cc47a77f9", "--perfc-dump"}, "--mvmac"},
		{"empty name", []string{"--mvmac", "0cc47a77f9af", "--perfc-get", ""}, "--perfc-get needs a counter name"},
		{"bad name", []string{"--mvmac", "0cc47a77f9af", "--perfc-get", "Proto.Drops"}, `"Proto.Drops"`},
		{"bad domain", []string{"--mvmac", "0cc47a77f9af", "--perfc-dump", "-d", "web1"}, `-d "web1"`},
		{"reset at an interval", []string{"--mvmac", "0cc47a77f9af", "--perf-reset", "--interval", "1s"}, "not --perf-reset"},
		{"count alone", []string{"--mvmac", "0cc47a77f9af", "--perfc-dump", "--count", "3"}, "--count needs --interval"},
		{"stray argument", []string{"--mvmac", "0cc47a77f9af", "--perfc-dump", "dump"}, `unexpected argument "dump"`},
		{"no key file", []string{"--mvmac", "0cc47a77f9af", "--perfc-dump", "--key", "/nonexistent/cluster.key"}, "/nonexistent/cluster.key"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), append([]string{"mvctl-perfc"}, tc.args...), &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("mvctl-perfc %s: got %v, want an error saying %q", strings.Join(tc.args, " "), err, tc.want)
			}
		})
	}
}

func TestDomainIDs(t *testing.T) {
	for in, want := range map[string]string{"": "", "5": "dn5", "dn5": "dn5", "dn007": "dn7"} {
		got, err := domain(in)
		if err != nil || got != want {
			t.Errorf("domain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// servedNode is a node on an in-memory segment serving PERFC from set, and
// a client on the same segment. Make it inside a synctest bubble.
func servedNode(t *testing.T, set *perfc.Set) (proto.MAC, *perfcrpc.Client) {
	t.Helper()
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	sw := linktest.NewSwitch(linktest.Config{})
	t.Cleanup(sw.Close)
	open := func(mac proto.MAC) *proto.Endpoint {
		cfg := proto.DefaultConfig()
		cfg.Keys = keys
		ep, err := proto.NewEndpoint(sw.Link(mac, proto.EtherTypeControl), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		return ep
	}
	node := open(proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf})
	perfcrpc.Register(node, set)
	return node.Addr(), perfcrpc.NewClient(open(proto.MAC{2, 0, 0, 0, 0, 1}))
}

func TestIntervalPrintsIncreasesAndRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, err := perfc.NewSet(nil)
		if err != nil {
			t.Fatal(err)
		}
		events := set.Counter("test.events", "events", "Events")
		set.Gauge("test.level", "items", "A level").Set(7)
		node, client := servedNode(t, set)
		ctx, cancel := context.WithCancel(t.Context())
		// 10 events every 100 ms, between the 1 s ticks: 100 per second.
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			time.Sleep(50 * time.Millisecond)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				events.Add(10)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		defer func() { cancel(); <-stopped }()
		o := options{node: node, req: perfc.Request{Op: perfc.OpGet, Query: perfc.Query{Prefix: "test"}}, json: true, interval: time.Second, count: 2}
		var out bytes.Buffer
		if err := poll(ctx, client, o, &out); err != nil {
			t.Fatal(err)
		}
		var got []interval
		dec := json.NewDecoder(&out)
		for dec.More() {
			var iv interval
			if err := dec.Decode(&iv); err != nil {
				t.Fatal(err)
			}
			got = append(got, iv)
		}
		perSec := 100.0
		want := []interval{
			{Time: 1, Seconds: 1, Rates: []rate{{Name: "test.events", Unit: "events", Count: 100, PerSec: &perSec}, {Name: "test.level", Kind: perfc.KindGauge, Unit: "items", Count: 7}}},
			{Time: 2, Seconds: 1, Rates: []rate{{Name: "test.events", Unit: "events", Count: 100, PerSec: &perSec}, {Name: "test.level", Kind: perfc.KindGauge, Unit: "items", Count: 7}}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("intervals (-want +got):\n%s", diff)
		}

		out.Reset()
		o.json, o.count = false, 1
		if err := poll(ctx, client, o, &out); err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"1.000000            100        100.0/s  events     test.events", "1.000000              7                 items      test.level"} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("text output lacks %q:\n%s", line, out.String())
			}
		}
	})
}

func TestResetPrintsWhatItTookAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		set, err := perfc.NewSet(nil)
		if err != nil {
			t.Fatal(err)
		}
		set.Child("dn5").Counter("node.domain.start", "ops", "Domain starts").Add(3)
		node, client := servedNode(t, set)
		o := options{node: node, req: perfc.Request{Op: perfc.OpReset, Domain: "dn5"}}
		d, err := client.Do(t.Context(), node, o.req)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := printDump(&out, o, d); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"reset 1 counters of node 7a77f9af domain dn5", "node.domain.start", "3", "ops", "Domain starts"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("output lacks %q:\n%s", s, out.String())
			}
		}
		o.json = true
		out.Reset()
		if err := printDump(&out, o, d); err != nil {
			t.Fatal(err)
		}
		var r report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		want := report{Node: "0c:c4:7a:77:f9:af", NodeID: "7a77f9af", Op: "reset", Domain: "dn5",
			Metric: []perfc.Metric{{Name: "node.domain.start", Unit: "ops", Desc: "Domain starts", Value: 3}}}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("--json (-want +got):\n%s", diff)
		}
	})
}
