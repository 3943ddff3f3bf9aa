package rrd

import (
	"testing"
)

func mustParse[T any](t testing.TB, parse func(string) (T, error), s []string) []T {
	t.Helper()
	var out []T
	for _, x := range s {
		v, err := parse(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func mustDS(t testing.TB, s ...string) []DS { t.Helper(); return mustParse(t, ParseDS, s) }

func mustRRA(t testing.TB, s ...string) []RRA { t.Helper(); return mustParse(t, ParseRRA, s) }

func u(ts string, vals ...string) upd { return upd{ts: ts, vals: vals} }

// TestDifferentialHandWritten runs hand-written sequences through rrdtool
// and our engine: every fetch must agree to 1e-9 relative.
func TestDifferentialHandWritten(t *testing.T) {
	o := newOracle(t)
	allRRA := mustRRA(t, "RRA:AVERAGE:0.5:1:20", "RRA:AVERAGE:0.5:3:10", "RRA:MIN:0.5:3:10", "RRA:MAX:0.2:2:10", "RRA:LAST:0.9:4:8", "RRA:AVERAGE:0:5:6")
	cases := []*seq{
		{name: "gauge basic", spec: Spec{Step: 10, DS: mustDS(t, "DS:g:GAUGE:20:U:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000010", "1"), u("1700000020", "2"), u("1700000030", "3"), u("1700000040", "4"), u("1700000055", "5"), u("1700000061", "6")}},
		{name: "unknown seconds rule", spec: Spec{Step: 10, DS: mustDS(t, "DS:g:GAUGE:20:U:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000004", "U"), u("1700000012", "5"), u("1700000013", "U"), u("1700000022.5", "7"), u("1700000031.25", "U"), u("1700000039.75", "8"), u("1700000043", "9"), u("1700000046", "U"), u("1700000052", "3")}},
		{name: "heartbeat gap", spec: Spec{Step: 10, DS: mustDS(t, "DS:g:GAUGE:25:U:U", "DS:c:COUNTER:25:U:U"), RRA: allRRA}, start: 1700000003,
			updates: []upd{u("1700000010", "1", "100"), u("1700000020", "2", "200"), u("1700000050", "3", "300"), u("1700000060", "4", "400"), u("1700000084", "5", "500"), u("1700000110", "6", "600")}},
		{name: "long jump within heartbeat", spec: Spec{Step: 10, DS: mustDS(t, "DS:g:GAUGE:1000:U:U", "DS:d:DERIVE:1000:U:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000010", "1", "10"), u("1700000333", "2", "1000"), u("1700000337", "U", "1010"), u("1700000900", "3", "900")}},
		{name: "jump over whole archives", spec: Spec{Step: 10, DS: mustDS(t, "DS:g:GAUGE:100000:U:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000010", "1"), u("1700003333", "2"), u("1700003340", "3")}},
		{name: "counter wraps", spec: Spec{Step: 10, DS: mustDS(t, "DS:c32:COUNTER:20:U:U", "DS:c64:COUNTER:20:U:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000010", "4294967000", "18446744073709550000"), u("1700000020", "100", "100"), u("1700000030", "4294967295", "18446744073709551615"), u("1700000040", "0", "0"), u("1700000050", "5", "5"), u("1700000060", "3", "3"), u("1700000070", "U", "7"), u("1700000080", "9", "U")}},
		{name: "min max bounds", spec: Spec{Step: 10, DS: mustDS(t, "DS:g:GAUGE:20:0:100", "DS:c:COUNTER:20:0:10", "DS:a:ABSOLUTE:20:1:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000010", "50", "0", "20"), u("1700000020", "100", "100", "5"), u("1700000030", "101", "200", "10"), u("1700000040", "-1", "201", "30"), u("1700000050", "0", "301", "9")}},
		{name: "derive and d-types", spec: Spec{Step: 5, DS: mustDS(t, "DS:d:DERIVE:20:U:U", "DS:dc:DCOUNTER:20:U:U", "DS:dd:DDERIVE:20:U:U"), RRA: allRRA}, start: 1700000001,
			updates: []upd{u("1700000003", "-5", "1.5", "1.5"), u("1700000008", "-7", "2.5", "0.5"), u("1700000013", "5", "2", "-3.25"), u("1700000018", "10", "10.125", "U"), u("1700000023", "3", "20", "4"), u("1700000029", "U", "U", "5")}},
		{name: "fractional times", spec: Spec{Step: 7, DS: mustDS(t, "DS:g:GAUGE:14:U:U", "DS:c:COUNTER:14:U:U"), RRA: allRRA}, start: 1700000000,
			updates: []upd{u("1700000000.5", "1", "1"), u("1700000003.1", "2", "5"), u("1700000007.999999", "3", "9"), u("1700000008.000001", "4", "11"), u("1700000013.37", "U", "15"), u("1700000020.2", "5", "21"), u("1700000041.1", "6", "50")}},
	}
	for _, c := range cases {
		last := c.start
		if n := len(c.updates); n > 0 {
			tm, _ := parseTS(c.updates[n-1].ts)
			last = tm.Sec
		}
		c.fetches = fetchesFor(c.spec, c.start-100, last, nil)
		c.fetches = append(c.fetches, fetchReq{Average, c.start - 1000, last + 100, 1}, fetchReq{Max, last - 7, last - 3, 0})
	}
	runSeqs(t, o, cases, 0)
}
