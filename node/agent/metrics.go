package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/prom"
	"github.com/mvstack/mvstack/proto"
)

// counters are the node's performance counters (docs/perfc.md names them).
type counters struct {
	calls, errors    *perfc.Family[*perfc.Counter]
	latency          *perfc.Family[*perfc.Histogram]
	ops              *perfc.Family[*perfc.Counter]
	opErrors         *perfc.Counter
	events           *perfc.Family[*perfc.Counter]
	crashes          *perfc.Counter
	heartbeats       *perfc.Counter
	heartbeatsFailed *perfc.Counter
	termsRefused     *perfc.Counter
}

func newCounters(s *perfc.Set) counters {
	return counters{
		calls:            s.CounterFamily("node.rpc.calls", "calls", "Control requests handled, per method"),
		errors:           s.CounterFamily("node.rpc.errors", "calls", "Control requests refused or failed, per method"),
		latency:          s.HistogramFamily("node.rpc.latency", "ns", "Time to handle a control request, per method", nil),
		ops:              s.CounterFamily("node.domain.ops", "ops", "Domain life-cycle operations, per operation"),
		opErrors:         s.Counter("node.domain.op_errors", "ops", "Domain life-cycle operations that failed"),
		events:           s.CounterFamily("node.domain.events", "events", "Domain state changes reported by the driver, per new state"),
		crashes:          s.Counter("node.domain.crashes", "events", "Domains that crashed (their guest died unasked)"),
		heartbeats:       s.Counter("node.heartbeats.sent", "messages", "Heartbeats acknowledged by the controller"),
		heartbeatsFailed: s.Counter("node.heartbeats.failed", "messages", "Heartbeats the controller did not acknowledge"),
		termsRefused:     s.Counter("node.terms.refused", "calls", "Requests refused for carrying an older controller term"),
	}
}

// serveMetrics starts the /metrics server when an address is configured.
func (a *Agent) serveMetrics() error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	reg := prometheus.NewRegistry()
	pcfg := prom.DefaultConfig()
	pcfg.ConstLabels = prometheus.Labels{"node": a.inv.NodeID}
	col, err := prom.NewCollector(a.set, &pcfg)
	if err != nil {
		return err
	}
	if err := reg.Register(col); err != nil {
		return err
	}
	if err := reg.Register(newEndpointCollector(a.ep, a.inv.NodeID)); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("agent: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux}
	a.httpMu.Lock()
	a.httpSrv, a.httpLn = srv, ln
	a.httpMu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server", "err", err)
		}
	}()
	a.log.Info("serving /metrics", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr is the address /metrics listens on ("" without one).
func (a *Agent) MetricsAddr() string {
	a.httpMu.Lock()
	defer a.httpMu.Unlock()
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// endpointCollector exports the control endpoint's counters.
type endpointCollector struct {
	ep    *proto.Endpoint
	descs map[string]*prometheus.Desc
	drops *prometheus.Desc
}

var _ prometheus.Collector = (*endpointCollector)(nil)

var endpointCounters = []struct{ name, help string }{
	{"frames_in", "Control frames received"}, {"frames_out", "Control frames sent"},
	{"send_errors", "Control frames the link failed to send"},
	{"duplicates", "Segments received twice"}, {"retransmits", "Segments sent again"},
	{"fast_retransmits", "Segments sent again because later ones were acknowledged"},
	{"timeouts", "Retransmission timer expiries"}, {"peers_dead", "Peers declared dead"},
	{"peer_restarts", "Peers seen restarting"}, {"resets_sent", "RESET frames sent"},
	{"refused_sent", "REFUSED frames sent to peers with another key"},
	{"refused_received", "REFUSED frames received"}, {"messages_in", "Messages received"},
	{"messages_out", "Messages sent"}, {"calls_ok", "Calls made that got an answer"},
	{"calls_failed", "Calls made that failed"},
}

func newEndpointCollector(ep *proto.Endpoint, node string) *endpointCollector {
	c := &endpointCollector{ep: ep, descs: map[string]*prometheus.Desc{}}
	labels := prometheus.Labels{"node": node}
	for _, m := range endpointCounters {
		c.descs[m.name] = prometheus.NewDesc("mvstack_proto_"+m.name+"_total", m.help, nil, labels)
	}
	c.drops = prometheus.NewDesc("mvstack_proto_drops_total", "Control frames dropped, by reason", []string{"reason"}, labels)
	return c
}

func (c *endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.drops
}

func (c *endpointCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.ep.Stats()
	vals := map[string]uint64{
		"frames_in": s.FramesIn, "frames_out": s.FramesOut, "send_errors": s.SendErrors,
		"duplicates": s.Duplicates, "retransmits": s.Retransmits, "fast_retransmits": s.FastRetransmits,
		"timeouts": s.Timeouts, "peers_dead": s.PeersDead, "peer_restarts": s.PeerRestarts,
		"resets_sent": s.ResetsSent, "refused_sent": s.RefusedSent, "refused_received": s.RefusedReceived,
		"messages_in": s.MessagesIn, "messages_out": s.MessagesOut, "calls_ok": s.CallsOK, "calls_failed": s.CallsFailed,
	}
	for name, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(vals[name]))
	}
	for _, r := range proto.DropReasons() {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(s.Dropped(r)), r.String())
	}
}
