package prom

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mvstack/mvstack/perfc"
)

// unsupportedCycles stands for a domain's PMU events on a host without a
// PMU.
type unsupportedCycles struct{}

func (unsupportedCycles) Read(dst []perfc.Metric, _ func(string) bool) []perfc.Metric {
	return append(dst, perfc.Metric{Name: "perf.hw.cycles", Unit: "cycles", Desc: "CPU cycles (PMU)", State: perfc.StateUnsupported})
}

func exampleSet(t *testing.T) *perfc.Set {
	t.Helper()
	s, err := perfc.NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Counter("proto.frames_in.control", "frames", "Control frames received").Add(3)
	s.Counter("aoe.read.bytes", "bytes", "Bytes read from AoE targets").Add(4096)
	s.Gauge("proto.sessions.open", "sessions", "Control sessions open").Set(2)
	h := s.Histogram("aoe.cmd.read.latency", "ns", "AoE read command latency", []int64{1000, 1000000})
	h.Observe(500)
	h.Observe(2000)
	h.Observe(5000000)
	dn5 := s.Child("dn5")
	dn5.Counter("perf.sw.task_clock", "ns", "CPU time of the domain's threads").Add(1500000000)
	dn5.Counter("proto.frames_in.control", "frames", "Control frames received").Add(1)
	if _, err := dn5.Attach(unsupportedCycles{}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCollectorExposesCountersWithHelpUnitsAndDomains(t *testing.T) {
	c, err := NewCollector(exampleSet(t), &Config{Namespace: "mvstack", DomainLabel: "domain", ConstLabels: prometheus.Labels{"node": "7a77f9af"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP mvstack_aoe_cmd_read_latency_seconds AoE read command latency
# TYPE mvstack_aoe_cmd_read_latency_seconds histogram
mvstack_aoe_cmd_read_latency_seconds_bucket{domain="",node="7a77f9af",le="1e-06"} 1
mvstack_aoe_cmd_read_latency_seconds_bucket{domain="",node="7a77f9af",le="0.001"} 2
mvstack_aoe_cmd_read_latency_seconds_bucket{domain="",node="7a77f9af",le="+Inf"} 3
mvstack_aoe_cmd_read_latency_seconds_sum{domain="",node="7a77f9af"} 0.0050025
mvstack_aoe_cmd_read_latency_seconds_count{domain="",node="7a77f9af"} 3
# HELP mvstack_aoe_read_bytes_total Bytes read from AoE targets
# TYPE mvstack_aoe_read_bytes_total counter
mvstack_aoe_read_bytes_total{domain="",node="7a77f9af"} 4096
# HELP mvstack_perf_sw_task_clock_seconds_total CPU time of the domain's threads
# TYPE mvstack_perf_sw_task_clock_seconds_total counter
mvstack_perf_sw_task_clock_seconds_total{domain="dn5",node="7a77f9af"} 1.5
# HELP mvstack_perfc_unavailable 1 for each perfc metric the host cannot give (state unsupported or denied); such metrics have no sample.
# TYPE mvstack_perfc_unavailable gauge
mvstack_perfc_unavailable{domain="dn5",metric="perf.hw.cycles",node="7a77f9af",state="unsupported"} 1
# HELP mvstack_proto_frames_in_control_total Control frames received [frames]
# TYPE mvstack_proto_frames_in_control_total counter
mvstack_proto_frames_in_control_total{domain="",node="7a77f9af"} 3
mvstack_proto_frames_in_control_total{domain="dn5",node="7a77f9af"} 1
# HELP mvstack_proto_sessions_open Control sessions open [sessions]
# TYPE mvstack_proto_sessions_open gauge
mvstack_proto_sessions_open{domain="",node="7a77f9af"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestMetricsPageParsesAndCountsMove(t *testing.T) {
	set := exampleSet(t)
	c, err := NewCollector(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	scrape := func() float64 {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Accept", "text/plain; version=0.0.4")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(res.Body)
		if err != nil {
			t.Fatalf("the /metrics page does not parse: %v", err)
		}
		f := fams["mvstack_proto_frames_in_control_total"]
		if f == nil || f.GetHelp() != "Control frames received [frames]" {
			t.Fatalf("frames family = %v", f)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "domain" && l.GetValue() == "dn5" {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatal("no dn5 sample")
		return 0
	}
	if got := scrape(); got != 1 {
		t.Errorf("dn5 frames = %v, want 1", got)
	}
	set.Child("dn5").Counter("proto.frames_in.control", "frames", "Control frames received").Add(41)
	if got := scrape(); got != 42 {
		t.Errorf("after 41 more, dn5 frames = %v, want 42", got)
	}
	if n := testutil.CollectAndCount(c, "mvstack_proto_frames_in_control_total"); n != 2 {
		t.Errorf("%d frame samples, want one per set (node, dn5)", n)
	}
}

func TestNamesFollowPrometheusConventions(t *testing.T) {
	c, err := NewCollector(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, unit string
		kind       perfc.Kind
		want       string
		div        float64
	}{
		{"proto.drops.bad_mac", "frames", perfc.KindCounter, "mvstack_proto_drops_bad_mac_total", 1},
		{"aoe.write.bytes", "bytes", perfc.KindCounter, "mvstack_aoe_write_bytes_total", 1},
		{"proto.mtu", "bytes", perfc.KindGauge, "mvstack_proto_mtu_bytes", 1},
		{"proto.bytes_in.control", "bytes", perfc.KindCounter, "mvstack_proto_bytes_in_control_total", 1},
		{"proto.rpc.latency.ping", "ns", perfc.KindHistogram, "mvstack_proto_rpc_latency_ping_seconds", 1e9},
		{"perf.sw.task_clock", "ns", perfc.KindCounter, "mvstack_perf_sw_task_clock_seconds_total", 1e9},
		{"node.uptime", "seconds", perfc.KindGauge, "mvstack_node_uptime_seconds", 1},
	} {
		got, div := c.Name(tc.name, tc.kind, tc.unit)
		if got != tc.want || div != tc.div {
			t.Errorf("Name(%s, %s, %s) = %s /%g, want %s /%g", tc.name, tc.kind, tc.unit, got, div, tc.want, tc.div)
		}
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, cfg := range []Config{
		{Namespace: "mv-stack", DomainLabel: "domain"},
		{Namespace: "mvstack", DomainLabel: ""},
		{Namespace: "mvstack", DomainLabel: "__name__"},
		{Namespace: "mvstack", DomainLabel: "domain", ConstLabels: prometheus.Labels{"domain": "x"}},
	} {
		if _, err := NewCollector(nil, &cfg); err == nil || !strings.Contains(err.Error(), "Config.") {
			t.Errorf("%+v: %v, want an error naming the field", cfg, err)
		}
	}
}
