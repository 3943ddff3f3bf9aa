// Package emitter implements the node side of stat frames: every interval
// it samples the host from /proc and /sys (package prometheus/procfs) and
// the node's domains from a [DomainSource], packs the records of seed 003
// §2.6.1 into frames up to the link MTU (package statframe), seals them
// with the cluster key (proto.Sealer, purpose [Purpose]) and sends them on
// a proto.Link of EtherType proto.EtherTypeStats to the aggregator's MAC
// or to broadcast.
//
// # Use
//
//	link, _ := proto.OpenPacketLink(iface, proto.EtherTypeStats, nil)
//	cfg := emitter.DefaultConfig()
//	cfg.Link, cfg.Keys, cfg.Source = link, keys, src // src adapts the driver's stats
//	cfg.Interval = 10 * time.Second                  // 1 s to 1 h
//	e, err := emitter.New(cfg)
//	go e.Run(ctx) // sends at once, then every Interval, until ctx ends
//
// A source that also implements [PoolSource] reports the node's CPU pools;
// otherwise the whole host is one pool, 0. vCPU utilisation is computed by
// the emitter from the CPU time of consecutive samples (unknown, NaN, in the
// first one).
//
// # Time
//
// The emitter uses package time's clock and ticker only, so it runs under
// testing/synctest; Config.Now overrides the sample timestamps.
//
// An Emitter is safe for concurrent use; Run may be called once.
package emitter
