// Package prom exposes a perfc.Set to Prometheus: a collector (for
// client_golang) that turns every counter, gauge and histogram of the set
// and its domains into Prometheus metrics, so mvnode's /metrics carries the
// same counters mvctl-perfc reads over Ethernet.
//
// # Names
//
// A perfc name becomes a Prometheus name by prefixing the namespace and
// replacing dots with underscores; the unit follows Prometheus conventions:
// base units are suffixes (values in "ns" are converted to seconds and end
// in _seconds, "bytes" end in _bytes unless the name already has the word
// bytes), counters end in _total, and other
// units ("frames", "calls") stay in the HELP text. So
// proto.frames_in.control (frames) is mvstack_proto_frames_in_control_total,
// aoe.cmd.read.latency (ns, a histogram) is
// mvstack_aoe_cmd_read_latency_seconds and perf.sw.task_clock (ns) is
// mvstack_perf_sw_task_clock_seconds_total. The description is the HELP
// text. The set path of a metric ("" for the node, "dn5" for a domain)
// is the domain label.
//
// # Unsupported events
//
// An event the host cannot count has no sample: Prometheus has no way to
// say "unsupported" in a value, and a zero would lie. Instead
// mvstack_perfc_unavailable{domain,metric,state} is 1 for each such metric.
package prom
