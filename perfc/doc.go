// Package perfc implements mvstack's performance counters: sets of named
// counters, gauges and latency histograms that are cheap enough for hot
// paths, read, dumped and reset by name over the control protocol
// (seed 003 §2.6.2: mvctl-perfc --perfc-dump, --perfc-get, --perf-reset).
//
// # Sets
//
// A [Set] belongs to an instance: a node daemon makes one and passes it to
// the components it builds (there is no package-level registry). A set holds
// child sets, one per domain ("dn5"), which hold the domain's own counters
// and its PMU events (package perfc/perfevent attaches them as a [Source]).
// A nil *Set is valid: it hands out nil metrics whose methods do nothing, so
// a component whose config leaves the set out needs no checks on its hot
// path.
//
// # Names
//
// A metric's name is hierarchical: lower-case segments of [a-z0-9_], each
// starting with a letter, joined by dots, component first:
// proto.frames_in.control, proto.drops.bad_mac, aoe.cmd.read.latency. A name
// may be both a metric and the prefix of others (aoe.cmd.read counts
// commands, aoe.cmd.read.latency is their latency). Every metric has a unit
// ("frames", "bytes", "ns", …) and a one-line description. docs/perfc.md
// lists the names mvstack's components register.
//
// Per-method and per-type metrics (proto.rpc.calls.<method>,
// aoe.cmd.<type>.latency) come from a [Family], which makes each on first use.
//
// # Cost
//
// A [Counter] is spread over a small fixed number of cache-line-padded
// atomic shards (Config.Shards); an increment picks a shard from the
// address of the calling goroutine's stack, so a goroutine keeps hitting
// the same shard and goroutines on different CPUs rarely share a cache
// line. A [Histogram] is sharded the same way. A [Gauge] is one atomic word.
// bench/perfc measures the cost of each beside a plain and a shared atomic
// increment.
//
// # Reset
//
// [Set.Reset] zeroes counters and histograms (not gauges, which are
// levels) and returns the values it took away. Each shard is swapped to
// zero atomically, so an increment that races with a reset is counted
// exactly once: either in the returned values or in the counter after the
// reset, never in both and never lost. A reader that runs during the reset
// may see some shards already zeroed and others not. A histogram's count,
// buckets and sum are swapped one word at a time, so an observation racing
// with the reset may land its bucket on one side and its sum on the other.
//
// # Dumps
//
// [Set.Dump] returns a [Dump]: a flat list of [Metric] values (domain,
// name, kind, unit, description, value or histogram, state) sorted by
// domain and name, which marshals compactly as CBOR (MarshalBinary) for the
// PERFC_DUMP/PERFC_GET/PERFC_RESET replies, and prints as a table
// ([Dump.WriteText]) or JSON. A [Request] (op, domain, [Query]) is what
// those commands carry, and [Handle] answers one from the node's set. A
// metric a host cannot count, such as a PMU
// hardware event on a VM without a PMU, has State [StateUnsupported]
// instead of a zero value.
package perfc
