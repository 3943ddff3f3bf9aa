// Package rrd implements an embedded round-robin database with rrdtool
// 1.7's semantics: data sources (GAUGE, COUNTER, DERIVE, ABSOLUTE,
// DCOUNTER, DDERIVE) with heartbeat and bounds, primary data points
// normalised to the step with rrdtool's unknown-time rules, archives
// consolidated with AVERAGE, MIN, MAX and LAST under an xfiles factor, and
// fetch with rrdtool's choice of archive and time alignment.
//
// It was written from rrdtool's documentation and from black-box
// comparison with rrdtool 1.7.2 (the differential tests run both on the
// same inputs); docs/rrd.md lists the rules, including rrdtool's quirks
// that it reproduces on purpose.
//
// # Layers
//
// [Spec] and [State] hold an RRD's definition and its small mutable part;
// rows live elsewhere: in memory ([RRD]), or in a crash-safe file ([File],
// [Store] for many files committed together). XML dump and restore in
// rrdtool's format let real rrdtool read our data and the other way round.
//
// Nothing here is safe for concurrent use unless its documentation says
// so.
package rrd
