// Package aggregator implements mvstatsd's core: it receives stat frames
// (EtherType 0x88B6) on a proto.Link, opens them with the cluster key,
// decodes their records (package statframe) and writes one round-robin
// database per entity through statsd/rrd's Store, in batches committed
// together; and it serves what it stored over HTTP: the list of series,
// fetches as JSON, graphs as PNG or SVG (gonum/plot), and the latest
// values as Prometheus metrics.
//
// # Entities
//
// Each metric group of seed 003 §2.6.1 is an entity kind, named by a path
// under the node id (the low 32 bits of the sender's MAC in hex):
//
//	NODE/host             host: pcpus pools numa_nodes guests mem_total mem_free load1 load5 load15
//	NODE/cpu/N            pcpu: time (s, cumulative) busy (%, DERIVE)
//	NODE/numa/N           numa: mem_total mem_free
//	NODE/pool/N           pool: load cpus guests
//	NODE/dnD              domain: mem_current mem_max (the UUID is a label)
//	NODE/dnD/vcpu/N       vcpu: util (%) time (s, cumulative)
//	NODE/dnD/vif/N        vif: rx_bytes rx_packets rx_errors rx_drops tx_bytes tx_packets tx_errors tx_drops (DERIVE)
//	NODE/dnD/vbd/N        vbd: outstanding rd_req wr_req rd_sectors wr_sectors (DERIVE but outstanding)
//
// The file of an entity is its name with ".rrd" under the data directory.
//
// # Drops
//
// Frames that fail authentication (wrong key, forged sender: the sender's
// MAC is bound into the seal), replays, and frames that do not decode are
// dropped and counted by reason ([Stats]); none of their records is
// stored. An update not later than the entity's last one is dropped too
// (counted as stale).
//
// An Aggregator is safe for concurrent use: Run reads the link, its
// handler serves HTTP at the same time.
package aggregator
