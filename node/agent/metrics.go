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
