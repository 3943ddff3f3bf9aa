package aggregator

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mvstack/mvstack/statsd/rrd"
	"github.com/mvstack/mvstack/statsd/statframe"
)

// Kind is an entity kind: one metric group of seed 003 §2.6.1.
type Kind string

// Entity kinds.
const (
	KindHost   Kind = "host"
	KindPCPU   Kind = "pcpu"
	KindNUMA   Kind = "numa"
	KindPool   Kind = "pool"
	KindDomain Kind = "domain"
	KindVCPU   Kind = "vcpu"
	KindVIF    Kind = "vif"
	KindVBD    Kind = "vbd"
)

// Kinds lists every kind, in the order of §2.6.1.
var Kinds = []Kind{KindHost, KindPCPU, KindNUMA, KindPool, KindDomain, KindVCPU, KindVIF, KindVBD}

// dsDef is one data source of a kind.
type dsDef struct {
	name    string
	derive  bool   // a counter stored as its rate (DERIVE, min 0)
	scale   uint64 // derive: the raw counter is divided by this before storing
	help    string
	promSfx string // suffix of the Prometheus metric name (unit)
}

var schema = map[Kind][]dsDef{
	KindHost: {
		{name: "pcpus", help: "physical CPUs"},
		{name: "pools", help: "CPU pools"},
		{name: "numa_nodes", help: "NUMA nodes"},
		{name: "guests", help: "guest domains"},
		{name: "mem_total", help: "total memory", promSfx: "_bytes"},
		{name: "mem_free", help: "free memory", promSfx: "_bytes"},
		{name: "load1", help: "load average over 1 minute"},
		{name: "load5", help: "load average over 5 minutes"},
		{name: "load15", help: "load average over 15 minutes"},
	},
	KindPCPU: {
		{name: "time", help: "CPU time spent busy since boot", promSfx: "_seconds"},
		// busy: the CPU time in hundredths of a second, stored as its rate:
		// percent busy.
		{name: "busy", derive: true, scale: 1e7, help: "busy time in hundredths of a second (rate: percent busy)"},
	},
	KindNUMA: {
		{name: "mem_total", help: "NUMA node total memory", promSfx: "_bytes"},
		{name: "mem_free", help: "NUMA node free memory", promSfx: "_bytes"},
	},
	KindPool: {
		{name: "load", help: "CPU pool average load"},
		{name: "cpus", help: "CPUs in the pool"},
		{name: "guests", help: "guest domains in the pool"},
	},
	KindDomain: {
		{name: "mem_current", help: "domain memory in use", promSfx: "_bytes"},
		{name: "mem_max", help: "domain memory available", promSfx: "_bytes"},
	},
	KindVCPU: {
		{name: "util", help: "vCPU utilisation over the sender's interval", promSfx: "_percent"},
		{name: "time", help: "vCPU time since the domain started", promSfx: "_seconds"},
	},
	KindVIF: {
		{name: "rx_bytes", derive: true, scale: 1, help: "bytes received", promSfx: "_total"},
		{name: "rx_packets", derive: true, scale: 1, help: "packets received", promSfx: "_total"},
		{name: "rx_errors", derive: true, scale: 1, help: "receive errors", promSfx: "_total"},
		{name: "rx_drops", derive: true, scale: 1, help: "received packets dropped", promSfx: "_total"},
		{name: "tx_bytes", derive: true, scale: 1, help: "bytes sent", promSfx: "_total"},
		{name: "tx_packets", derive: true, scale: 1, help: "packets sent", promSfx: "_total"},
		{name: "tx_errors", derive: true, scale: 1, help: "transmit errors", promSfx: "_total"},
		{name: "tx_drops", derive: true, scale: 1, help: "packets to send dropped", promSfx: "_total"},
	},
	KindVBD: {
		{name: "outstanding", help: "outstanding I/O requests"},
		{name: "rd_req", derive: true, scale: 1, help: "read requests", promSfx: "_total"},
		{name: "wr_req", derive: true, scale: 1, help: "write requests", promSfx: "_total"},
		{name: "rd_sectors", derive: true, scale: 1, help: "sectors read", promSfx: "_total"},
		{name: "wr_sectors", derive: true, scale: 1, help: "sectors written", promSfx: "_total"},
	},
}

// DSNames returns the data source names of a kind.
func DSNames(k Kind) []string {
	var out []string
	for _, d := range schema[k] {
		out = append(out, d.name)
	}
	return out
}

// sample is one record turned into an entity update.
type sample struct {
	name string
	kind Kind
	// Labels the name does not hold: the domain's UUID, a VBD's device
	// and backing type.
	uuid, device, backing string
	t                     int64     // Unix ns
	raw                   []float64 // as sent (counters as counts); nil for label-only records
	ints                  []uint64  // raw integers of derive sources
}

// rrdTime converts Unix ns to an update time.
func rrdTime(ns int64) rrd.Time {
	sec := ns / 1e9
	us := (ns % 1e9) / 1e3
	if us < 0 {
		sec--
		us += 1e6
	}
	return rrd.Time{Sec: sec, Usec: us}
}

// values turns a sample into the update values of its file.
func (s *sample) values() []rrd.Value {
	defs := schema[s.kind]
	out := make([]rrd.Value, len(defs))
	for i, d := range defs {
		if d.derive {
			out[i] = rrd.Uint(s.ints[i] / d.scale)
			continue
		}
		out[i] = rrd.Float(s.raw[i])
	}
	return out
}

func itoa[T ~uint16 | ~uint32](v T) string { return strconv.FormatUint(uint64(v), 10) }

// samples turns a frame's records into entity samples.
func samples(node string, f *statframe.Frame) []sample {
	out := make([]sample, 0, len(f.Records))
	dom := func(d uint32) string { return "dn" + itoa(d) }
	for _, r := range f.Records {
		var s sample
		switch r := r.(type) {
		case *statframe.Host:
			s = sample{name: node + "/host", kind: KindHost, t: r.Time,
				raw: []float64{float64(r.PCPUs), float64(r.Pools), float64(r.NUMANodes), float64(r.Guests),
					float64(r.MemTotal), float64(r.MemFree), r.Load1, r.Load5, r.Load15}}
		case *statframe.PCPU:
			s = sample{name: node + "/cpu/" + itoa(r.ID), kind: KindPCPU, t: r.Time,
				raw:  []float64{float64(r.CPUTime) / 1e9, float64(r.CPUTime) / 1e7},
				ints: []uint64{0, r.CPUTime}}
		case *statframe.NUMA:
			s = sample{name: node + "/numa/" + itoa(r.ID), kind: KindNUMA, t: f.Time,
				raw: []float64{float64(r.MemTotal), float64(r.MemFree)}}
		case *statframe.Pool:
			s = sample{name: node + "/pool/" + itoa(r.ID), kind: KindPool, t: f.Time,
				raw: []float64{r.Load, float64(r.CPUs), float64(r.Guests)}}
		case *statframe.Domain:
			s = sample{name: node + "/" + dom(r.Domain), kind: KindDomain, t: f.Time, uuid: r.UUIDString()}
		case *statframe.Memory:
			s = sample{name: node + "/" + dom(r.Domain), kind: KindDomain, t: r.Time,
				raw: []float64{float64(r.Current), float64(r.Max)}}
		case *statframe.VCPU:
			s = sample{name: node + "/" + dom(r.Domain) + "/vcpu/" + itoa(r.ID), kind: KindVCPU, t: r.Time,
				raw: []float64{r.Util, float64(r.CPUTime) / 1e9}}
		case *statframe.VIF:
			c := r.Counters()
			s = sample{name: node + "/" + dom(r.Domain) + "/vif/" + itoa(r.ID), kind: KindVIF, t: r.Time,
				ints: c[:]}
			for _, v := range c {
				s.raw = append(s.raw, float64(v))
			}
		case *statframe.VBD:
			s = sample{name: node + "/" + dom(r.Domain) + "/vbd/" + itoa(r.ID), kind: KindVBD, t: r.Time,
				device: r.Device, backing: r.Backing.String(),
				ints: []uint64{0, r.ReadReqs, r.WriteReqs, r.ReadSectors, r.WriteSectors}}
			s.raw = []float64{float64(r.Outstanding), float64(r.ReadReqs), float64(r.WriteReqs),
				float64(r.ReadSectors), float64(r.WriteSectors)}
		default:
			continue
		}
		out = append(out, s)
	}
	return out
}

// kindOf recovers an entity's kind from its name.
func kindOf(name string) (Kind, error) {
	p := strings.Split(name, "/")
	switch {
	case len(p) == 2 && p[1] == "host":
		return KindHost, nil
	case len(p) == 3 && p[1] == "cpu":
		return KindPCPU, nil
	case len(p) == 3 && p[1] == "numa":
		return KindNUMA, nil
	case len(p) == 3 && p[1] == "pool":
		return KindPool, nil
	case len(p) == 2 && strings.HasPrefix(p[1], "dn"):
		return KindDomain, nil
	case len(p) == 4 && strings.HasPrefix(p[1], "dn"):
		switch p[2] {
		case "vcpu":
			return KindVCPU, nil
		case "vif":
			return KindVIF, nil
		case "vbd":
			return KindVBD, nil
		}
	}
	return "", fmt.Errorf("aggregator: %q is not an entity name", name)
}

// labelsOf recovers the labels an entity's name holds.
func labelsOf(name string, k Kind) map[string]string {
	p := strings.Split(name, "/")
	l := map[string]string{"node": p[0]}
	switch k {
	case KindPCPU:
		l["cpu"] = p[2]
	case KindNUMA:
		l["numa"] = p[2]
	case KindPool:
		l["pool"] = p[2]
	case KindDomain:
		l["domain"] = p[1]
	case KindVCPU:
		l["domain"], l["cpu"] = p[1], p[3]
	case KindVIF:
		l["domain"], l["vif"] = p[1], p[3]
	case KindVBD:
		l["domain"], l["vbd"] = p[1], p[3]
	}
	return l
}

// spec is the RRD definition of a kind's files.
func spec(k Kind, step, heartbeat uint64, rras []rrd.RRA) rrd.Spec {
	s := rrd.Spec{Step: step, RRA: rras}
	for _, d := range schema[k] {
		ds := rrd.DS{Name: d.name, Type: rrd.Gauge, Heartbeat: heartbeat, Min: math.NaN(), Max: math.NaN()}
		if d.derive {
			ds.Type, ds.Min = rrd.Derive, 0
		}
		s.DS = append(s.DS, ds)
	}
	return s
}

// Updates returns the series updates the aggregator makes of a frame from
// a node (its id, proto.MAC.NodeID): one per entity record, named as the
// files are ("7a77f9af/dn1/vif/0.rrd"). Benchmarks and tools use it to
// feed other stores the same updates.
func Updates(node string, f *statframe.Frame) []rrd.Update {
	ss := samples(node, f)
	out := make([]rrd.Update, 0, len(ss))
	for i := range ss {
		if ss[i].raw != nil {
			out = append(out, rrd.Update{Name: ss[i].name + ".rrd", Time: rrdTime(ss[i].t), Values: ss[i].values()})
		}
	}
	return out
}

// KindOf returns the kind of an entity or file name.
func KindOf(name string) (Kind, error) { return kindOf(strings.TrimSuffix(name, ".rrd")) }

// Spec returns the RRD definition of a kind's new files.
func (c Config) Spec(k Kind) rrd.Spec { return spec(k, c.Step, c.Heartbeat, c.RRA) }
