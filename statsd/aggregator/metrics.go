package aggregator

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the latest values of every series and the
// aggregator's own counters. Metric names are mvstats_<kind>_<ds>[unit];
// labels name the node, domain, cpu, numa, pool, vif and vbd.
type collector struct{ a *Aggregator }

var _ prometheus.Collector = (*collector)(nil)

// labelNames are the labels of each kind's metrics, in order.
var labelNames = map[Kind][]string{
	KindHost:   {"node"},
	KindPCPU:   {"node", "cpu"},
	KindNUMA:   {"node", "numa"},
	KindPool:   {"node", "pool"},
	KindDomain: {"node", "domain"},
	KindVCPU:   {"node", "domain", "cpu"},
	KindVIF:    {"node", "domain", "vif"},
	KindVBD:    {"node", "domain", "vbd", "device", "backing"},
}

type metricDef struct {
	desc  *prometheus.Desc
	vtype prometheus.ValueType
	scale float64
}

var (
	seriesDefs = func() map[Kind][]metricDef {
		out := map[Kind][]metricDef{}
		for k, defs := range schema {
			for _, d := range defs {
				name := "mvstats_" + string(k) + "_" + d.name + d.promSfx
				vt := prometheus.GaugeValue
				if d.promSfx == "_total" {
					vt = prometheus.CounterValue
				}
				scale := 1.0
				if k == KindPCPU && d.name == "busy" {
					// busy is kept in hundredths of a second; export seconds.
					name, vt, scale = "mvstats_pcpu_busy_seconds_total", prometheus.CounterValue, 0.01
				}
				out[k] = append(out[k], metricDef{prometheus.NewDesc(name, d.help+".", labelNames[k], nil), vt, scale})
			}
		}
		return out
	}()
	domainInfo     = prometheus.NewDesc("mvstats_domain_info", "A guest domain and its UUID.", []string{"node", "domain", "uuid"}, nil)
	lastUpdate     = prometheus.NewDesc("mvstats_last_update_timestamp_seconds", "Time of a series' last update.", []string{"node", "entity"}, nil)
	framesReceived = prometheus.NewDesc("mvstatsd_frames_received_total", "Stat frames received.", nil, nil)
	framesDropped  = prometheus.NewDesc("mvstatsd_frames_dropped_total", "Stat frames dropped, by reason.", []string{"reason"}, nil)
	recordsTotal   = prometheus.NewDesc("mvstatsd_records_total", "Records decoded from accepted frames.", nil, nil)
	recordsSkipped = prometheus.NewDesc("mvstatsd_records_skipped_total", "Records of unknown types skipped.", nil, nil)
	updatesWritten = prometheus.NewDesc("mvstatsd_updates_written_total", "Series updates written to RRD files.", nil, nil)
	updatesDropped = prometheus.NewDesc("mvstatsd_updates_dropped_total", "Series updates dropped, by reason.", []string{"reason"}, nil)
	commitsTotal   = prometheus.NewDesc("mvstatsd_commits_total", "Batched commits of the RRD files.", nil, nil)
	seriesGauge    = prometheus.NewDesc("mvstatsd_series", "Series known.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, defs := range seriesDefs {
		for _, d := range defs {
			ch <- d.desc
		}
	}
	for _, d := range []*prometheus.Desc{domainInfo, lastUpdate, framesReceived, framesDropped, recordsTotal,
		recordsSkipped, updatesWritten, updatesDropped, commitsTotal, seriesGauge} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.mu.Lock()
	for _, e := range a.entities {
		if e.kind == KindDomain && e.labels["uuid"] != "" {
			ch <- prometheus.MustNewConstMetric(domainInfo, prometheus.GaugeValue, 1, e.labels["node"], e.labels["domain"], e.labels["uuid"])
		}
		if e.latest == nil {
			continue
		}
		lv := make([]string, 0, 5)
		for _, l := range labelNames[e.kind] {
			lv = append(lv, e.labels[l])
		}
		for i, d := range seriesDefs[e.kind] {
			v := e.latest[i] * d.scale
			if math.IsNaN(v) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(d.desc, d.vtype, v, lv...)
		}
		ch <- prometheus.MustNewConstMetric(lastUpdate, prometheus.GaugeValue, float64(e.last)/1e9, e.labels["node"], e.name)
	}
	a.mu.Unlock()
	s := a.Stats()
	ch <- prometheus.MustNewConstMetric(framesReceived, prometheus.CounterValue, float64(s.FramesReceived))
	for _, r := range []string{DropAuth, DropReplay, DropTruncated, DropMalformed} {
		ch <- prometheus.MustNewConstMetric(framesDropped, prometheus.CounterValue, float64(s.FramesDropped[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(recordsTotal, prometheus.CounterValue, float64(s.Records))
	ch <- prometheus.MustNewConstMetric(recordsSkipped, prometheus.CounterValue, float64(s.RecordsSkipped))
	ch <- prometheus.MustNewConstMetric(updatesWritten, prometheus.CounterValue, float64(s.UpdatesWritten))
	for _, r := range []string{DropStale, DropOverflow, DropWrite, DropMirror} {
		ch <- prometheus.MustNewConstMetric(updatesDropped, prometheus.CounterValue, float64(s.UpdatesDropped[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(commitsTotal, prometheus.CounterValue, float64(s.Commits))
	ch <- prometheus.MustNewConstMetric(seriesGauge, prometheus.GaugeValue, float64(s.Series))
}
