package replica

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	applies *prometheus.CounterVec
	latency prometheus.Histogram
}

func newMetrics(r *Replica, reg prometheus.Registerer) *metrics {
	m := &metrics{
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mvcontroller_raft_applies_total", Help: "Commands proposed by this replica, by result.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mvcontroller_raft_apply_seconds", Help: "Time from proposing a command to it being applied.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.applies, m.latency,
		gauge("mvcontroller_raft_leader", "1 when this replica is the raft leader.", func() float64 {
			if r.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("mvcontroller_raft_term", "Current raft term.", func() float64 { return float64(r.raft.CurrentTerm()) }),
		gauge("mvcontroller_raft_commit_index", "Raft commit index.", func() float64 { return float64(r.raft.CommitIndex()) }),
		gauge("mvcontroller_raft_applied_index", "Index of the last entry applied to the FSM.", func() float64 { return float64(r.raft.AppliedIndex()) }),
		gauge("mvcontroller_raft_last_contact_seconds", "Seconds since the leader was last heard from (0 on the leader).", func() float64 {
			if r.raft.State() == raft.Leader {
				return 0
			}
			lc := r.raft.LastContact()
			if lc.IsZero() {
				return -1
			}
			return time.Since(lc).Seconds()
		}),
	)
	return m
}

func (m *metrics) observe(start time.Time, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.applies.WithLabelValues(res).Inc()
	m.latency.Observe(time.Since(start).Seconds())
}
