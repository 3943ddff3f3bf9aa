// Package rrdcached is a client for rrdcached's text protocol (UPDATE,
// BATCH, FLUSH, FLUSHALL, STATS, CREATE, PING) over a unix socket, and a
// Backend that sends a Store's worth of series updates to it, so sites
// that want real .rrd files can have rrdcached write them.
//
// A Client holds one connection and is safe for concurrent use (commands
// are serialised).
package rrdcached
